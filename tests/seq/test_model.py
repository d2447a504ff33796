import numpy as np
import pytest
import torch

from lamina.errors import CheckpointError, InputError
from lamina.seq.construct import dense_param_count
from lamina.seq.model import SeqConfig, SingleLayerTransformer, forward_numpy, load_model, save_model

VARIANTS = [
    dict(positional="onehot"),
    dict(positional="learned", layer_norm=True),
    dict(positional="sinusoidal", attention="linear"),
    dict(positional="none", d_ff=0, n_heads=3, d_head=2, attn_scale=3.0),
]


@pytest.mark.parametrize("kw", VARIANTS)
def test_numpy_forward_agrees_with_torch(kw):
    torch.manual_seed(0)
    cfg = SeqConfig(n_ctx=7, d_in=3, d_out=2, d_model=12, **kw)
    model = SingleLayerTransformer(cfg).double()
    x = np.random.default_rng(0).uniform(-1, 1, size=(5, 6, 3))  # shorter than n_ctx on purpose
    with torch.no_grad():
        y_t, a_t = model(torch.as_tensor(x), return_attention=True)
    y_n, a_n = forward_numpy(model.numpy_params(), cfg, x, return_attention=True)
    np.testing.assert_allclose(y_n, y_t.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a_n, a_t.numpy(), rtol=1e-10, atol=1e-12)
    assert y_n.shape == (5, 6, 2) and a_n.shape == (5, cfg.n_heads, 6, 6)
    assert model.n_params == dense_param_count(cfg)


def test_without_positions_the_map_is_permutation_equivariant_and_with_them_it_is_not():
    torch.manual_seed(1)
    x = np.random.default_rng(1).uniform(size=(4, 6, 2))
    perm = np.array([3, 0, 5, 1, 4, 2])
    for positional, equivariant in (("none", True), ("onehot", False), ("sinusoidal", False)):
        cfg = SeqConfig(n_ctx=6, d_in=2, d_model=8, n_heads=2, d_ff=16, positional=positional)
        model = SingleLayerTransformer(cfg).double()
        y, y_perm = model.predict(x), model.predict(x[:, perm])
        assert cfg.equivariant == equivariant
        assert np.allclose(y[:, perm], y_perm, atol=1e-12) == equivariant


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(n_ctx=0), "n_ctx"),
        (dict(d_in=1.5), "d_in"),
        (dict(positional="rotary"), "positional"),
        (dict(attention="hard"), "attention"),
        (dict(d_ff=-1), "d_ff"),
        (dict(attn_scale=float("nan")), "attn_scale"),
        (dict(n_heads=True), "n_heads"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    base = dict(n_ctx=4, d_in=2)
    with pytest.raises(InputError, match=match):
        SeqConfig(**{**base, **kw})


def test_config_round_trip_and_unknown_keys():
    cfg = SeqConfig(n_ctx=4, d_in=2, n_heads=2, d_model=8)
    assert SeqConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.d_head == 4 and cfg.attn_scale == pytest.approx(0.5)
    with pytest.raises(InputError, match="unknown keys"):
        SeqConfig.from_dict({**cfg.to_dict(), "depth": 2})


def test_forward_rejects_wrong_shapes():
    model = SingleLayerTransformer(SeqConfig(n_ctx=4, d_in=2, d_model=8))
    with pytest.raises(InputError, match="x: expected shape"):
        model(torch.zeros(2, 5, 2))
    with pytest.raises(InputError, match="x: expected shape"):
        forward_numpy(model.numpy_params(), model.config, np.zeros((2, 3, 3)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checkpoint_round_trip_keeps_dtype_and_outputs(tmp_path, dtype):
    torch.manual_seed(2)
    model = SingleLayerTransformer(SeqConfig(n_ctx=5, d_in=2, d_model=8, positional="learned")).to(dtype)
    save_model(model, tmp_path / "m", metadata={"note": "test"})
    loaded, meta = load_model(tmp_path / "m")
    x = np.random.default_rng(0).uniform(size=(3, 5, 2))
    assert loaded.dtype == dtype and meta == {"note": "test"}
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(tmp_path / "m")
