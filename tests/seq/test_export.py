"""TransformerLens export (optional extra): skipped only when TransformerLens is not installed."""

import numpy as np
import pytest
import torch

from lamina.errors import InputError
from lamina.seq.model import SeqConfig, SingleLayerTransformer

pytest.importorskip("transformer_lens")

from lamina.seq.export import to_transformer_lens, transformer_lens_input


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(layer_norm=True, positional="learned"), dict(d_ff=0, n_heads=2, d_head=3, attn_scale=2.5)],
)
def test_exported_hooked_transformer_computes_the_same_map(kw):
    torch.manual_seed(0)
    model = SingleLayerTransformer(SeqConfig(n_ctx=6, d_in=3, d_out=2, d_model=16, **kw)).double()
    x = np.random.default_rng(0).uniform(size=(5, 6, 3))
    hooked = to_transformer_lens(model)
    with torch.no_grad():
        y = hooked(transformer_lens_input(model, x), start_at_layer=0)
    np.testing.assert_allclose(y.numpy(), model.predict(x), atol=1e-12)
    assert hooked.cfg.n_layers == 1 and hooked.cfg.attention_dir == "bidirectional"


def test_linear_attention_cannot_be_exported():
    model = SingleLayerTransformer(SeqConfig(n_ctx=4, d_in=2, d_model=8, attention="linear"))
    with pytest.raises(InputError, match="softmax attention only"):
        to_transformer_lens(model)
