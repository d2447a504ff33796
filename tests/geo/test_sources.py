"""The real offline fields: decoded values checked against independent readings at known places."""

import numpy as np
import pandas as pd
import pytest

from lamina.geo.data import sources
from lamina.geo.data.landmask import is_land


def test_linke_turbidity_matches_pvlib_lookup():
    import pvlib

    f = sources.linke_turbidity()
    lon, lat = np.array([8.55, -105.0, 31.2, 151.2]), np.array([47.37, 40.0, 30.0, -33.9])
    for month in (1, 7):
        ours = f.values_at(lon, lat, np.full(4, month))
        times = pd.DatetimeIndex([f"2020-{month:02d}-15"])
        ref = [pvlib.clearsky.lookup_linke_turbidity(times, la, lo, interp_turbidity=False).iloc[0]
               for lo, la in zip(lon, lat, strict=True)]
        np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert f.variable.units == "1" and "pvlib" in f.variable.source


def test_pvlib_altitude_matches_pvlib_lookup():
    from pvlib.location import lookup_altitude

    f = sources.pvlib_altitude()
    lon, lat = np.array([8.55, 86.9, -70.0]), np.array([47.37, 28.0, -15.0])
    ours = f.values_at(lon, lat, np.ones(3, int))
    ref = [lookup_altitude(la, lo) for lo, la in zip(lon, lat, strict=True)]
    np.testing.assert_allclose(ours, ref)


def test_etopo5_knows_mountains_and_trenches():
    f = sources.etopo5()
    v = f.values_at(np.array([86.925, 142.2, -150.0, 8.55]), np.array([27.99, 11.35, 0.0, 47.37]), np.ones(4, int))
    assert v[0] > 5000  # Everest region (5' pixel mean)
    assert v[1] < -8000  # Mariana trench
    assert -6000 < v[2] < -3000  # central Pacific abyssal plain
    assert 300 < v[3] < 800  # Zurich
    assert f.variable.units == "m"


def test_coads_is_marine_and_seasonal():
    sst = sources.coads("SST")
    airt = sources.coads("AIRT")
    lon, lat = np.array([-150.0, 20.0]), np.array([0.0, 10.0])  # equatorial Pacific, Chad (land)
    v = sst.values_at(lon, lat, np.array([1, 1]))
    assert 25 < v[0] < 30 and np.isnan(v[1])
    north_atlantic = [airt.values_at(np.array([-30.0]), np.array([50.0]), np.array([m]))[0] for m in (2, 8)]
    assert north_atlantic[1] > north_atlantic[0] + 4  # summer warmer than winter
    with pytest.raises(ValueError, match="expected one of"):
        sources.coads("XYZ")


def test_navy_winds_climatology_covers_land():
    u = sources.navy_winds("u")
    assert u.monthly and u.reader.n_layers == 12
    # trade winds blow from the east over the tropical Pacific; westerlies at 45 S
    v = u.values_at(np.array([-140.0, 0.0]), np.array([12.0, -47.0]), np.array([1, 1]))
    assert v[0] < -3 and v[1] > 5
    sahara = u.values_at(np.array([10.0]), np.array([25.0]), np.array([1]))
    assert np.isfinite(sahara).all()


def test_land_mask_and_fraction():
    assert is_land([8.55, -30.0, 0.0, 180.0], [47.37, 30.0, -89.0, 0.0]).tolist() == [True, False, True, False]
    f = sources.globe_land_fraction()
    v = f.values_at(np.array([8.55, -30.0]), np.array([47.37, 30.0]), np.ones(2, int))
    np.testing.assert_allclose(v, [1.0, 0.0])


def test_default_stack_has_units_and_provenance():
    s = sources.load_default_stack()
    assert s.names == list(sources.DEFAULT_VARIABLES)
    for v in s.variables:
        assert v.units and v.source and v.licence
    vals = s.values_at(lon=[8.55, -150.0], lat=[47.37, 0.0], month=7)
    names = s.names
    assert np.isnan(vals[0, names.index("sst")]) and np.isfinite(vals[1, names.index("sst")])
    assert np.isfinite(vals[:, names.index("linke_turbidity")]).all()
