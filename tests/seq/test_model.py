import warnings

import numpy as np
import pytest
import torch

from lamina.errors import CheckpointError, InputError
from lamina.seq.construct import dense_param_count
from lamina.seq.model import (
    OutOfDomainWarning,
    SeqConfig,
    SingleLayerTransformer,
    forward_numpy,
    load_model,
    save_model,
)

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


def _gather_model():
    from lamina.seq.construct import construct
    from lamina.seq.targets import MovingAverage

    return construct(MovingAverage(3, 2, window=2, domain=(-1.0, 2.0)), eps=0.05)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused_on_every_call(bad):
    c = _gather_model()
    x = np.zeros((2, 3, 2))
    x[1, 2, 0] = bad
    calls = {
        "predict": lambda: c.model.predict(x),
        "__call__": lambda: c.model(torch.as_tensor(x)),
        "forward": lambda: c.model.forward(torch.as_tensor(x)),
        "__call__ on NumPy": lambda: c.model(x),
        "forward_numpy": lambda: forward_numpy(c.model.numpy_params(), c.model.config, x),
        "construction": lambda: c(x),
    }
    for name, call in calls.items():
        with pytest.raises(InputError, match="x: contains NaN or infinite values"):
            call()
            pytest.fail(f"{name} accepted a non-finite input")
    untrained = SingleLayerTransformer(SeqConfig(n_ctx=3, d_in=2, d_model=8))  # no domain recorded: still refused
    with pytest.raises(InputError, match="NaN or infinite"):
        untrained.predict(x)


def test_inputs_outside_the_constructed_domain_warn_and_inside_do_not():
    c = _gather_model()
    assert c.model.config.domain == (-1.0, 2.0)
    inside = np.random.default_rng(0).uniform(-1.0, 2.0, size=(4, 3, 2))
    inside[0, 0, 0], inside[0, 1, 1] = -1.0, 2.0  # the closed box
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c.model.predict(inside)
        c(inside)
    outside = inside.copy()
    outside[2, 1, 0] = 2.5
    for call in (lambda: c.model.predict(outside), lambda: c(outside),
                 lambda: c.model(torch.as_tensor(outside))):
        with pytest.warns(OutOfDomainWarning, match=r"outside the domain \[-1, 2\]"):
            call()


def test_training_records_the_domain_and_checkpoints_keep_it(tmp_path):
    from lamina.seq.icl import InContextRegression
    from lamina.seq.targets import MovingAverage
    from lamina.seq.train import TrainConfig, train

    cfg = TrainConfig(steps=2, batch_size=4, num_train=None, num_test=10, eval_every=2, threads=1, warmup_steps=0)
    task = MovingAverage(3, 1, domain=(0.5, 3.0))
    result = train(SingleLayerTransformer(SeqConfig(n_ctx=3, d_in=1, d_model=8)), task, cfg, progress=False)
    assert result.model.config.domain == (0.5, 3.0)
    save_model(result.model, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    assert loaded.config.domain == (0.5, 3.0)
    with pytest.warns(OutOfDomainWarning, match=r"\[0.5, 3\]"):
        loaded.predict(np.zeros((1, 3, 1)))
    tenth = SingleLayerTransformer(SeqConfig(n_ctx=3, d_in=1, d_model=8, domain=(0.0, 0.1)))  # float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0.1 rounds up in float32, but is the box's own edge
        tenth.predict(np.full((1, 3, 1), 0.1))
    with pytest.warns(OutOfDomainWarning):
        tenth.predict(np.full((1, 3, 1), 0.1001))
    icl = InContextRegression(n_context=3, d=1)  # Gaussian inputs: no box, nothing recorded
    model = SingleLayerTransformer(SeqConfig(n_ctx=4, d_in=2, d_model=8))
    assert train(model, icl, cfg, progress=False).model.config.domain is None


@pytest.mark.parametrize("domain", [(1.0, 0.0), (0.0, float("inf")), (True, 2.0), "ab"])
def test_config_rejects_a_bad_domain(domain):
    with pytest.raises(InputError, match="domain"):
        SeqConfig(n_ctx=3, d_in=1, domain=domain)


def test_the_module_also_takes_numpy_and_lists():
    c = _gather_model()
    x = np.random.default_rng(0).uniform(-1.0, 2.0, size=(2, 3, 2))
    with torch.no_grad():
        np.testing.assert_allclose(c.model(x).numpy(), c(x), atol=1e-12)
        np.testing.assert_allclose(c.model(x.tolist()).numpy(), c(x), atol=1e-12)
    with pytest.raises(InputError, match="x: expected numbers"):
        c.model([["a", "b"]])


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc.pop("config"),  # missing
        lambda doc: doc["config"].pop("n_ctx"),  # a required key missing
        lambda doc: doc.update(config=[1, 2]),  # wrong type
        lambda doc: doc.update(config=7),
        lambda doc: doc["config"].update(n_heads="four"),  # a field of the wrong type
        lambda doc: doc["config"].update(domain=5),
        lambda doc: doc["config"].update(colour="red"),  # an unknown key
    ],
)
def test_a_config_json_of_the_wrong_content_is_a_checkpoint_error(tmp_path, edit):
    import json

    from lamina._io import content_sha256

    save_model(SingleLayerTransformer(SeqConfig(n_ctx=3, d_in=1, d_model=8)), tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    doc = json.loads(path.read_text())
    edit(doc)
    doc["content_sha256"] = content_sha256(doc)  # a consistent digest: only the content is wrong
    path.write_text(json.dumps(doc))  # valid JSON, and the weights' sha256 still matches
    with pytest.raises(CheckpointError, match=r"^checkpoint: .* has an unreadable model config"):
        load_model(tmp_path / "m")
