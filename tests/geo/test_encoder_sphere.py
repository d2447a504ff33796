"""Encoder options of the ERA5 default: a location input continuous on the sphere, a month-free path for static
variables, NaN where a variable has no support, and the old (direct) checkpoint unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina.geo
from lamina.errors import InputError
from lamina.geo.data.grid import Variable
from lamina.geo.data.sources.chelsa import chelsa_stack
from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig

LATS = np.linspace(-80.0, 80.0, 33)


def _encoder(seed=0, variables=None, **cfg) -> ClimateEncoder:
    """An UNTRAINED encoder of a realistic first layer (w0_initial = 30, H-SIREN)."""
    variables = variables or [Variable("t", "degC"), Variable("elevation", "m", monthly=False)]
    torch.manual_seed(seed)
    config = EncoderConfig(n_variables=len(variables), dim_hidden=64, num_layers=4, dim_embedding=32, **cfg)
    return ClimateEncoder(ClimateModule(config), variables, [10.0] * len(variables), [5.0] * len(variables))


def _pair_distance(enc, lon_a, lon_b, month=6) -> np.ndarray:
    a = enc.embed(lon=np.full(LATS.size, lon_a), lat=LATS, month=month)
    b = enc.embed(lon=np.full(LATS.size, lon_b), lat=LATS, month=month)
    return np.linalg.norm(a - b, axis=1)  # (len(LATS),)


@pytest.mark.parametrize("seed", [0, 1])
def test_sphere_encoding_is_continuous_across_the_antimeridian(seed):
    enc = _encoder(seed, location_encoding="sphere")
    across = np.median(_pair_distance(enc, 179.99, -179.99))
    # two points 0.02 degrees apart elsewhere, at longitudes all around (a random network is more sensitive in some
    # input directions than others, so the pair at 180 is compared with the spread of pairs elsewhere)
    elsewhere = [np.median(_pair_distance(enc, lon - 0.01, lon + 0.01)) for lon in range(-135, 136, 45)]
    assert across <= 1.1 * max(elsewhere)
    assert across <= 1.5 * np.median(elsewhere)


def test_direct_encoding_jumps_at_the_antimeridian():
    """The paper's (lon / 180, lat / 90) input: the same criterion fails by orders of magnitude."""
    enc = _encoder(0, location_encoding="direct")
    across = np.median(_pair_distance(enc, 179.99, -179.99))
    elsewhere = np.median(_pair_distance(enc, 9.99, 10.01))
    assert across > 50 * elsewhere


def test_sphere_encoding_is_the_same_point_at_the_poles():
    enc = _encoder(0, location_encoding="sphere")
    e = enc.embed(lon=[-170.0, 0.0, 60.0, 179.0], lat=[90.0] * 4, month=3)
    np.testing.assert_allclose(e, np.repeat(e[:1], 4, axis=0), atol=1e-4)


def test_static_variables_do_not_vary_with_the_month():
    enc = _encoder(0, location_encoding="sphere", static_variables=[1])
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 200), rng.uniform(-90, 90, 200)
    rec = np.stack([enc.reconstruct(lon=lon, lat=lat, month=m) for m in range(1, 13)])  # (12, N, 2)
    assert np.all(rec[:, :, 1] == rec[:1, :, 1])  # static: identical in every month, by construction
    assert np.median(rec[:, :, 0].std(axis=0)) > 0.01  # the monthly variable does move
    # the training forward uses the same month-free path
    x = enc.module.encode_inputs(torch.from_numpy(np.repeat(lon[:5], 12)), torch.from_numpy(np.repeat(lat[:5], 12)),
                                 torch.from_numpy(np.tile(np.arange(1, 13), 5)))
    with torch.no_grad():
        pred = enc.module(x)[1].numpy().reshape(5, 12, 2)
    assert np.all(pred[:, :, 1] == pred[:, :1, 1])
    np.testing.assert_allclose(pred[:, 0, 1] * 5.0 + 10.0, rec[0, :5, 1], rtol=1e-4, atol=1e-4)


def test_without_static_path_elevation_moves_with_the_month():
    enc = _encoder(0, location_encoding="sphere")
    rec = np.stack([enc.reconstruct(lon=[8.55], lat=[47.37], month=m)[0, 1] for m in range(1, 13)])
    assert rec.std() > 0.0


def test_ocean_only_variables_are_nan_over_land():
    variables = [Variable("sst", "degC", support="ocean"), Variable("elevation", "m", monthly=False)]
    enc = _encoder(0, variables=variables, location_encoding="sphere", static_variables=[1])
    # Ulaanbaatar, Quito, Zurich (land); mid-Pacific, South Atlantic (sea)
    lon, lat = [106.9, -78.5, 8.55, -150.0, -20.0], [47.9, -0.2, 47.37, 0.0, -30.0]
    rec = enc.reconstruct(lon=lon, lat=lat, month=1)
    assert np.isnan(rec[:3, 0]).all() and np.isfinite(rec[3:, 0]).all()
    assert np.isfinite(rec[:, 1]).all()  # global support: a value everywhere


def test_config_round_trip_and_validation(tmp_path):
    enc = _encoder(0, location_encoding="sphere", static_variables=[1])
    enc.save(tmp_path / "ck")
    again = lamina.geo.load(tmp_path / "ck")
    assert again.config.location_encoding == "sphere" and again.config.static_variables == (1,)
    x = dict(lon=[5.0, -179.9], lat=[6.0, 60.0], month=7)
    np.testing.assert_array_equal(again.reconstruct(**x), enc.reconstruct(**x))
    with pytest.raises(InputError, match="static_variables"):
        EncoderConfig(n_variables=2, static_variables=[2])
    with pytest.raises(InputError, match="location_encoding"):
        EncoderConfig(location_encoding="mercator")


def test_old_bundled_checkpoint_gives_the_same_outputs():
    """Values recorded from the bundled default before these options existed (direct input, no static path); it is
    shipped as ``bundled:offline10`` for comparison."""
    enc = lamina.geo.load("bundled:offline10")
    assert enc.config.location_encoding == "direct" and enc.config.static_variables == ()
    assert all(v.transform == "identity" and v.support == "global" for v in enc.variables)
    lon = np.array([8.55, -70.0, 150.0, 179.99, -179.99])
    lat = np.array([47.37, -15.0, -80.0, 60.0, 60.0])
    e = enc.embed(lon=lon, lat=lat, month=7)
    np.testing.assert_allclose(e[:, :4], [[-0.38379949, 0.41917861, -0.6116671, 0.39635265],
                                          [-0.03443952, 0.19621915, 0.57746094, -0.08839315],
                                          [0.06342863, 0.36167389, 0.79256153, -0.97768044],
                                          [0.22067292, -0.43937701, 0.42006722, 0.3877376],
                                          [0.34097585, -0.34386951, 0.85268265, 1.20958912]], atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), [9.946961, 10.541469, 12.635627, 8.900199, 9.572471],
                               rtol=1e-5)
    rec = enc.reconstruct(lon=lon, lat=lat, month=7)
    names = enc.variable_names
    # elevation (m) and air temperature (degC): the old checkpoint still reconstructs COADS over land
    np.testing.assert_allclose(rec[:, names.index("elevation")], [480.533295, 1802.40051, 2257.35107, -2553.68848,
                                                                  -1523.44531], rtol=1e-4, atol=0.5)
    np.testing.assert_allclose(rec[:, names.index("air_temperature")], [20.3326378, 18.0299263, 2.99839401,
                                                                        7.4576745, 7.67454338], rtol=1e-4, atol=1e-3)


def test_pretraining_with_the_static_path_and_sphere_input(tiny_chelsa, tmp_path):
    """A short run on SYNTHETIC CHELSA-named files (conftest): a monthly and a static variable."""
    from lamina.geo.pretrain import PretrainConfig, pretrain

    stack = chelsa_stack(tiny_chelsa, ["tas", "bio1"])
    cfg = EncoderConfig(n_variables=2, dim_hidden=32, num_layers=3, dim_embedding=8, location_encoding="sphere",
                        static_variables=[1])
    pcfg = PretrainConfig(max_steps=60, batch_size=256, lr=3e-3, eval_every=30, checkpoint_every=30, n_val=512,
                          n_windows=8, val_fraction=0.25, patience=100, months_per_window=3)
    enc = pretrain(stack, cfg, pcfg, tmp_path / "run", progress=False)
    again = lamina.geo.load(tmp_path / "run" / "final")
    assert again.config.static_variables == (1,) and again.config.location_encoding == "sphere"
    rec = np.stack([enc.reconstruct(lon=[10.0, -100.0], lat=[20.0, -40.0], month=m) for m in range(1, 13)])
    assert np.all(rec[:, :, 1] == rec[:1, :, 1])
    metrics = again.metadata["heldout_metrics"]["per_variable"]
    assert metrics["bio1"]["n"] == 512 and metrics["bio1"]["rmse"] > 0 and metrics["tas"]["rmse"] > 0
