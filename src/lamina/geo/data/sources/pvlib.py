"""Fields shipped with pvlib-python: the Linke turbidity climatology and a coarse altitude grid, 5 arc-minutes.

==========================  =========================================================  ==================
loader                      what (file, grid, decoding)                                package
==========================  =========================================================  ==================
:func:`linke_turbidity`     monthly Linke turbidity TL (dimensionless), 5 arc-min,     pvlib (PyPI)
                            ``data/LinkeTurbidities.h5`` uint8, TL = raw / 20
:func:`pvlib_altitude`      elevation (m), 5 arc-min, ``data/Altitude.h5`` uint8,       pvlib (PyPI)
                            alt = raw * 28 - 450, 255 = no data
==========================  =========================================================  ==================
"""

from __future__ import annotations

import functools
from pathlib import Path

from lamina.errors import InputError
from lamina.geo.data.grid import GRID_5MIN, Variable
from lamina.geo.data.rasters import Field
from lamina.geo.data.readers import ArrayReader

PVLIB_LICENCE = "distributed with pvlib-python (BSD-3-Clause)"


def _pvlib_file(name: str) -> Path:
    import pvlib

    path = Path(pvlib.__file__).parent / "data" / name
    if not path.is_file():
        raise InputError(f"{name}: not found in the installed pvlib ({path}); reinstall pvlib")
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
                   PVLIB_LICENCE, monthly=True)
    return Field(var, ArrayReader(raw, GRID_5MIN, axes="hwl", scale=1.0 / 20.0, nodata=0))


@functools.lru_cache(maxsize=1)
def pvlib_altitude() -> Field:
    """Elevation (m) at 5 arc-minutes from pvlib's ``Altitude.h5``: uint8 code, metres = code * 28 - 450."""
    import h5py

    with h5py.File(_pvlib_file("Altitude.h5"), "r") as h5:
        raw = h5["Altitude"][...]
    var = Variable("pvlib_altitude", "m", "surface altitude (28 m steps, sea level and below coded low)",
                   "pvlib data/Altitude.h5", PVLIB_LICENCE, monthly=False)
    return Field(var, ArrayReader(raw, GRID_5MIN, axes="hw", scale=28.0, offset=-450.0, nodata=255))
