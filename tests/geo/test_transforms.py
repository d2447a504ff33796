"""Per-variable normalising transforms: statistics, pretraining targets and reconstruction in physical units."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lamina.geo
from lamina.errors import InputError
from lamina.geo.data.grid import Grid, Variable
from lamina.geo.data.rasters import Field, RasterStack
from lamina.geo.data.readers import ArrayReader
from lamina.geo.data.transforms import forward, inverse
from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig


@pytest.mark.parametrize("name", ["identity", "log1p", "sqrt"])
def test_round_trip_on_non_negative_values(name):
    x = np.array([0.0, 0.5, 3.0, 640.0, 3195.0])
    np.testing.assert_allclose(inverse(name, forward(name, x)), x, rtol=1e-12, atol=1e-12)


def test_known_values_and_bad_names():
    assert forward("log1p", np.array([np.e - 1.0]))[0] == pytest.approx(1.0)
    assert forward("sqrt", np.array([9.0]))[0] == 3.0
    assert inverse("sqrt", np.array([-2.0]))[0] == 0.0  # precipitation is never negative
    assert np.isnan(forward("sqrt", np.array([np.nan]))[0])
    with pytest.raises(InputError, match="transform"):
        forward("cube", np.ones(2))
    with pytest.raises(InputError, match="p: transform"):
        Variable("p", "mm", transform="cube")


def test_statistics_are_those_of_the_transformed_values():
    rng = np.random.default_rng(0)
    data = rng.gamma(0.5, 80.0, size=(12, 18, 36)).astype(np.float32)  # skewed, like precipitation
    grid = Grid.global_grid(10.0)
    stack = RasterStack([Field(Variable("p", "mm", transform="sqrt"), ArrayReader(data, grid)),
                         Field(Variable("q", "mm"), ArrayReader(data, grid))])
    st = stack.statistics()
    assert st.mean[0] == pytest.approx(np.sqrt(data.astype(np.float64)).mean(), rel=1e-9)
    assert st.std[0] == pytest.approx(np.sqrt(data.astype(np.float64)).std(ddof=1), rel=1e-6)
    assert st.mean[1] == pytest.approx(data.astype(np.float64).mean(), rel=1e-9)


def _constant_encoder(transform: str) -> ClimateEncoder:
    """Head outputs exactly 1.0 everywhere (zero weights, unit bias): the normalised value is known."""
    torch.manual_seed(0)
    module = ClimateModule(EncoderConfig(n_variables=2, dim_hidden=16, num_layers=2, dim_embedding=8))
    with torch.no_grad():
        module.head.weight.zero_()
        module.head.bias.fill_(1.0)
    variables = [Variable("tp", "mm month-1", transform=transform), Variable("t", "degC")]
    return ClimateEncoder(module, variables, [4.0, 10.0], [2.0, 5.0])


def test_reconstruct_inverts_the_transform_and_survives_save_load(tmp_path):
    enc = _constant_encoder("sqrt")
    rec = enc.reconstruct(lon=[0.0, 100.0], lat=[0.0, -40.0], month=3)
    # normalised 1.0 -> 1.0 * 2 + 4 = 6 in sqrt space -> 36 mm/month; identity: 1 * 5 + 10 = 15 degC
    np.testing.assert_allclose(rec, [[36.0, 15.0], [36.0, 15.0]], rtol=1e-6)
    enc.save(tmp_path / "ck")
    doc = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert doc["metadata"]["variables"][0]["transform"] == "sqrt"
    again = lamina.geo.load(tmp_path / "ck")
    assert again.transforms == ["sqrt", "identity"]
    np.testing.assert_allclose(again.reconstruct(lon=[0.0], lat=[0.0], month=3), [[36.0, 15.0]], rtol=1e-6)


def test_checkpoint_without_transforms_loads_as_identity(tmp_path):
    enc = _constant_encoder("log1p")
    enc.save(tmp_path / "ck")
    doc = json.loads((tmp_path / "ck" / "config.json").read_text())
    for v in doc["metadata"]["variables"]:  # as written before transforms existed
        v.pop("transform"), v.pop("support")
    doc.pop("content_sha256")  # nor did the content digest
    (tmp_path / "ck" / "config.json").write_text(json.dumps(doc))
    old = lamina.geo.load(tmp_path / "ck")
    assert old.transforms == ["identity", "identity"]
    np.testing.assert_allclose(old.reconstruct(lon=[0.0], lat=[0.0], month=3), [[6.0, 15.0]], rtol=1e-6)
