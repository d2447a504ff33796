"""NOAA fields shipped by the Debian package ferret-datasets: ETOPO5 relief, COADS marine climatology, FNOC winds.

============================  =========================================================  ==================
loader                        what (file, grid, decoding)                                package
============================  =========================================================  ==================
:func:`etopo5`                elevation / bathymetry (m), 5 arc-min, ``etopo5.cdf``       ferret-datasets
:func:`coads`                 COADS monthly marine climatology, 2 degrees: SST, air       ferret-datasets
                              temperature (degC), specific humidity (g/kg), wind speed,
                              u, v (m/s), sea-level pressure (hPa); NaN over land
:func:`navy_winds`            FNOC surface wind u, v (m/s), 2.5 degrees, 1980-1990        ferret-datasets
                              monthly means averaged into a 12-month climatology
============================  =========================================================  ==================
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from lamina._validation import check_choice
from lamina.errors import InputError
from lamina.geo.data.grid import Grid, Variable
from lamina.geo.data.rasters import Field
from lamina.geo.data.readers import ArrayReader

FERRET_DATA = Path("/usr/share/ferret-vis/data")
NOAA_LICENCE = "NOAA data, public domain (U.S. Government work); distributed with Debian ferret-datasets"

COADS_VARIABLES = {
    "SST": ("sst", "degC", "sea surface temperature"),
    "AIRT": ("air_temperature", "degC", "air temperature over the ocean"),
    "SPEH": ("specific_humidity", "g kg-1", "specific humidity over the ocean"),
    "WSPD": ("wind_speed", "m s-1", "scalar wind speed over the ocean"),
    "UWND": ("coads_u_wind", "m s-1", "zonal wind over the ocean"),
    "VWND": ("coads_v_wind", "m s-1", "meridional wind over the ocean"),
    "SLP": ("sea_level_pressure", "hPa", "sea-level pressure over the ocean"),
}
"""COADS file variable -> (lamina name, units, long name)."""


def _ferret_file(name: str) -> Path:
    path = FERRET_DATA / name
    if not path.is_file():
        raise InputError(
            f"{name}: not found in {FERRET_DATA}; install the Debian package: apt-get install ferret-datasets"
        )
    return path


def _netcdf_array(name: str, variable: str) -> tuple[np.ndarray, Grid]:
    import netCDF4

    with netCDF4.Dataset(_ferret_file(name)) as ds:
        var = ds.variables[variable]
        data = np.ma.filled(var[...].astype(np.float32), np.nan)
        dims = var.dimensions
        lat = np.asarray(ds.variables[dims[-2]][:], dtype=np.float64)
        lon = np.asarray(ds.variables[dims[-1]][:], dtype=np.float64)
    data[np.abs(data) > 1e30] = np.nan
    return data, Grid.from_centres(lon, lat)


@functools.lru_cache(maxsize=1)
def etopo5() -> Field:
    """ETOPO5 relief of the Earth's surface (m, bathymetry negative), 5 arc-minutes, from ferret-datasets.

    The file is point-registered (2161 rows from 90 S to 90 N, 4320 columns from 0 E); lamina treats each point
    as the centre of a 5-arc-minute pixel.
    """
    data, grid = _netcdf_array("etopo5.cdf", "ROSE")
    var = Variable("elevation", "m", "surface elevation, negative below sea level (ETOPO5)",
                   "NOAA NGDC ETOPO5 (1988), ferret-datasets etopo5.cdf", NOAA_LICENCE, monthly=False)
    return Field(var, ArrayReader(data, grid, axes="hw"))


@functools.lru_cache(maxsize=8)
def coads(variable: str) -> Field:
    """One variable of the COADS monthly marine climatology (2 degrees; NaN over land), ferret-datasets.

    Args:
        variable: one of SST, AIRT, SPEH, WSPD, UWND, VWND, SLP (file names); values are already in physical
            units (degC, g/kg, m/s, hPa), missing value -1e34 -> NaN.
    """
    check_choice("variable", variable, sorted(COADS_VARIABLES))
    data, grid = _netcdf_array("coads_climatology.cdf", variable)
    name, units, long_name = COADS_VARIABLES[variable]
    var = Variable(name, units, long_name, f"COADS monthly climatology (1946-1989), ferret-datasets "
                   f"coads_climatology.cdf:{variable}", NOAA_LICENCE, monthly=True, support="ocean")
    return Field(var, ArrayReader(data, grid, axes="lhw"), interpolation="bilinear")


@functools.lru_cache(maxsize=2)
def navy_winds(component: str) -> Field:
    """FNOC (U.S. Navy) surface wind climatology, 2.5 degrees, land and ocean, from ferret-datasets.

    ``monthly_navy_winds.cdf`` holds 132 monthly means from January 1980 to December 1990; lamina averages the
    11 values of each calendar month into a 12-month climatology.

    Args:
        component: ``"u"`` (zonal, m/s) or ``"v"`` (meridional, m/s).
    """
    check_choice("component", component, ("u", "v"))
    data, grid = _netcdf_array("monthly_navy_winds.cdf", "UWND" if component == "u" else "VWND")
    if data.shape[0] % 12:
        raise InputError(f"monthly_navy_winds.cdf: {data.shape[0]} time steps is not whole years")
    clim = np.nanmean(data.reshape(-1, 12, *data.shape[1:]), axis=0).astype(np.float32)  # (12, H, W)
    var = Variable(f"wind_{component}", "m s-1", f"{'zonal' if component == 'u' else 'meridional'} surface wind",
                   "FNOC monthly surface winds 1980-1990, ferret-datasets monthly_navy_winds.cdf, "
                   "averaged by calendar month", NOAA_LICENCE, monthly=True)
    return Field(var, ArrayReader(clim, grid, axes="lhw"), interpolation="bilinear")
