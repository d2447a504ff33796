"""The bundled MiniLM text encoder (offline) and the weight-text aligner (synthetic representations)."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.text import TextAligner, embed_text


def test_minilm_embeds_offline_and_means_something():
    e = embed_text(["a photo of a sneaker, upside down", "a photo of a sneaker", "a photo of a dress, zoomed in"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2]  # the sneaker prompts are closer than sneaker vs dress
    with pytest.raises(InputError, match="non-empty"):
        embed_text([" "])


def test_aligner_generalises_to_an_unseen_prompt():
    # synthetic: model representations are the sum of hidden category codes; category texts are noisy linear
    # images of those codes, so a held-out category's text should still point at its models
    rng = np.random.default_rng(0)
    c, r, n = 30, 8, 600
    codes = rng.standard_normal((c, r))
    text = codes @ rng.standard_normal((r, 384)) + 0.05 * rng.standard_normal((c, 384))
    y = (rng.random((n, c)) < 0.3).astype(np.float32)
    z = y @ codes + 0.1 * rng.standard_normal((n, r))
    al = TextAligner(joint=8, epochs=300, weight_decay=0.0).fit(z[:400], y[:400, :-1], text[:-1])
    s = al.decision_function(z[400:], text[-1:])[:, 0]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[400:, -1], s) > 0.8
    assert al.model_embedding(z[:3]).shape == (3, 8)
