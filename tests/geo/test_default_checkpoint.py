"""The bundled default checkpoint: loads offline, strictly, and reconstructs the real fields it was trained on."""

from __future__ import annotations

import numpy as np
import pytest

import lamina.geo
from lamina.geo.encoder import default_checkpoint_path


@pytest.fixture(scope="module")
def enc():
    return lamina.geo.load()


def test_bundled_checkpoint_is_small_and_described(enc):
    folder = default_checkpoint_path()
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    assert size < 20 * 2**20
    names = [v.name for v in enc.variables]
    assert {"elevation", "air_temperature", "sst", "linke_turbidity"} <= set(names)
    assert all(v.units for v in enc.variables)
    metrics = enc.metadata["heldout_metrics"]["per_variable"]
    assert set(metrics) >= set(names)


def test_bundled_embeddings_shapes_and_determinism(enc):
    D = enc.embedding_dim
    lon, lat = [8.55, -70.0, 150.0], [47.37, -15.0, -80.0]
    e = enc.embed(lon=lon, lat=lat, month=6)
    assert e.shape == (3, D) and e.dtype == np.float32 and np.isfinite(e).all()
    assert np.array_equal(e, enc.embed(lon=lon, lat=lat, month=6))
    four = enc.embed(lon=lon, lat=lat)
    assert four.shape == (3, 4 * D)
    np.testing.assert_allclose(four[:, D : 2 * D], e, rtol=1e-5, atol=1e-6)
    # a month changes the embedding, and nearby places are more alike than far ones
    assert not np.allclose(enc.embed(lon=lon, lat=lat, month=1), e)
    near = enc.embed(lon=[8.60], lat=[47.40], month=6)[0]
    assert np.linalg.norm(near - e[0]) < np.linalg.norm(e[1] - e[0])


def test_bundled_reconstruction_is_physically_plausible(enc):
    names = [v.name for v in enc.variables]
    # Tibetan plateau, mid-Pacific, Sahara, equatorial Pacific (July)
    rec = enc.reconstruct(lon=[88.0, -150.0, 5.0, -140.0], lat=[32.0, 20.0, 24.0, 0.0], month=7)
    elev = rec[:, names.index("elevation")]
    assert elev[0] > 3000.0 and elev[1] < -2000.0 and 0.0 < elev[2] < 1500.0
    land = rec[:, names.index("land_fraction")]
    assert land[0] > 0.8 and land[2] > 0.8 and land[1] < 0.2
    sst = rec[3, names.index("sst")]
    assert 22.0 < sst < 32.0


def test_bundled_reconstruction_matches_the_source_fields(enc):
    """R^2 against the real source values at random sea points, for COADS air temperature (July)."""
    from lamina.geo.data.sources import coads

    field = coads("AIRT")
    rng = np.random.default_rng(0)
    lon = rng.uniform(-180, 180, 4000)
    lat = rng.uniform(-60, 60, 4000)
    truth = field.values_at(lon, lat, np.full(4000, 7))
    ok = np.isfinite(truth)
    assert ok.sum() > 1000
    pred = enc.reconstruct(lon=lon[ok], lat=lat[ok], month=7)[:, enc.variable_names.index("air_temperature")]
    r2 = 1 - np.mean((pred - truth[ok]) ** 2) / np.var(truth[ok])
    assert r2 > 0.9
