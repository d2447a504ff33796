import json

import numpy as np
import pytest
import torch

import lamina.geo
from lamina._io import content_sha256
from lamina.errors import CheckpointError, InputError
from lamina.geo.data.grid import Variable
from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig


def tiny_encoder(seed=0, **cfg) -> ClimateEncoder:
    """An UNTRAINED small encoder (random weights): for API tests only."""
    torch.manual_seed(seed)
    config = EncoderConfig(n_variables=2, dim_hidden=32, num_layers=3, dim_embedding=8, **cfg)
    return ClimateEncoder(ClimateModule(config), [Variable("t", "degC"), Variable("p", "mm")], [10.0, 50.0],
                          [5.0, 20.0], {"note": "synthetic"})


def test_embed_shapes_and_months():
    enc = tiny_encoder()
    e = enc.embed(lon=[8.55, -70.0, 0.0], lat=[47.37, -15.0, 0.0], month=6)
    assert e.shape == (3, 8) and e.dtype == np.float32
    per_point = enc.embed(lon=[8.55, -70.0, 0.0], lat=[47.37, -15.0, 0.0], month=[6, 6, 6])
    np.testing.assert_array_equal(e, per_point)
    full = enc.embed(lon=[8.55, -70.0, 0.0], lat=[47.37, -15.0, 0.0])
    assert full.shape == (3, 32)
    np.testing.assert_allclose(full[:, 8:16], e, rtol=1e-6)  # months 3, 6, 9, 12: block 2 is June
    assert not np.allclose(full[:, :8], e)
    assert enc.embed(lon=[], lat=[], month=1).shape == (0, 8)


def test_embed_matches_training_forward_in_chunks():
    enc = tiny_encoder()
    rng = np.random.default_rng(0)
    lon, lat, month = rng.uniform(-180, 180, 3000), rng.uniform(-90, 90, 3000), rng.integers(1, 13, 3000)
    x = enc.module.encode_inputs(torch.from_numpy(lon), torch.from_numpy(lat), torch.from_numpy(month))
    with torch.no_grad():
        ref = enc.module(x)[0].numpy()
    np.testing.assert_allclose(enc.embed(lon=lon, lat=lat, month=month, chunk=256), ref, rtol=1e-5, atol=1e-6)
    bf = enc.embed(lon=lon, lat=lat, month=month, precision="bfloat16")
    assert np.abs(bf - ref).max() < 0.05 * np.abs(ref).max()
    with pytest.raises(InputError, match="precision"):
        enc.embed(lon=[0.0], lat=[0.0], month=1, precision="float16")


def test_reconstruct_is_in_physical_units():
    enc = tiny_encoder()
    rec = enc.reconstruct(lon=[1.0, 2.0], lat=[3.0, 4.0], month=2)
    emb = torch.from_numpy(enc.embed(lon=[1.0, 2.0], lat=[3.0, 4.0], month=2))
    with torch.no_grad():
        z = enc.module.head(emb).numpy()
    np.testing.assert_allclose(rec, z * np.array([5.0, 20.0]) + np.array([10.0, 50.0]), rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lon": [0.0], "lat": [91.0], "month": 1}, r"lat: must lie in \[-90, 90\]"),
        ({"lon": [181.0], "lat": [0.0], "month": 1}, "wrap"),
        ({"lon": [float("nan")], "lat": [0.0], "month": 1}, "NaN"),
        ({"lon": [0.0], "lat": [0.0], "month": 0}, "month"),
        ({"lon": [0.0, 1.0], "lat": [0.0], "month": 1}, "same length"),
        ({"lon": [0.0, 1.0], "lat": [0.0, 1.0], "month": [1, 2, 3]}, "one per point"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        tiny_encoder().embed(**kwargs)


def test_wrap_lon():
    enc = tiny_encoder()
    np.testing.assert_allclose(enc.embed(lon=[190.0], lat=[0.0], month=1, wrap_lon=True),
                               enc.embed(lon=[-170.0], lat=[0.0], month=1), rtol=1e-6)


def test_save_load_round_trip_and_strictness(tmp_path):
    enc = tiny_encoder()
    enc.save(tmp_path / "ck")
    doc = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert doc["kind"] == "geo.ClimateEncoder" and doc["config"]["dim_hidden"] == 32
    assert doc["metadata"]["variables"][0] == Variable("t", "degC").to_dict()
    assert "lon" in doc["metadata"]["input_contract"]
    again = lamina.geo.load(tmp_path / "ck")
    x = dict(lon=[5.0], lat=[6.0], month=7)
    np.testing.assert_array_equal(again.embed(**x), enc.embed(**x))
    # a config that does not match the tensors is refused
    doc["config"]["dim_hidden"] = 64
    doc["content_sha256"] = content_sha256(doc)  # consistent: the content itself is what is wrong
    (tmp_path / "ck" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="does not match its config"):
        lamina.geo.load(tmp_path / "ck")
    doc["config"]["dim_hidden"] = 32
    doc["config"]["mystery"] = 1
    doc["content_sha256"] = content_sha256(doc)
    (tmp_path / "ck" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="unknown fields"):
        lamina.geo.load(tmp_path / "ck")


def test_foreign_checkpoint_is_refused(tmp_path):
    from lamina._io import save_checkpoint

    save_checkpoint(tmp_path / "other", {"w": torch.zeros(2)}, kind="weights.ProbeX", config={})
    with pytest.raises(CheckpointError, match="expected a 'geo.ClimateEncoder'"):
        lamina.geo.load(tmp_path / "other")


def test_untrained_copy_has_same_architecture_and_new_weights():
    enc = tiny_encoder()
    rnd = enc.untrained(seed=1)
    assert rnd.config == enc.config and rnd.variable_names == enc.variable_names
    assert not np.allclose(rnd.embed(lon=[1.0], lat=[1.0], month=1), enc.embed(lon=[1.0], lat=[1.0], month=1))
    np.testing.assert_array_equal(enc.untrained(seed=1).embed(lon=[1.0], lat=[1.0], month=1),
                                  rnd.embed(lon=[1.0], lat=[1.0], month=1))


def test_config_validation():
    with pytest.raises(InputError, match="num_layers"):
        EncoderConfig(num_layers=0)
    with pytest.raises(InputError, match="location_encoding"):
        EncoderConfig(location_encoding="polar")
    sh = EncoderConfig(location_encoding="spherical_harmonics", sh_degree=4)
    assert sh.dim_in == 25 + 2
