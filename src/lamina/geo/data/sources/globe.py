"""The GLOBE 30-arc-second land mask (global-land-mask package) as a 5-arc-minute land-fraction field."""

from __future__ import annotations

import functools

from lamina.geo.data.grid import GRID_5MIN, Variable
from lamina.geo.data.rasters import Field
from lamina.geo.data.readers import ArrayReader


@functools.lru_cache(maxsize=1)
def globe_land_fraction() -> Field:
    """Fraction of land in each 5-arc-minute pixel, from the GLOBE 30-arc-second mask (global-land-mask)."""
    from lamina.geo.data.landmask import land_fraction

    var = Variable("land_fraction", "1", "fraction of land in the 5 arc-minute pixel",
                   "GLOBE 1 km land mask (NOAA NGDC), global-land-mask package", "global-land-mask: MIT; "
                   "GLOBE data: NOAA, public domain", monthly=False)
    return Field(var, ArrayReader(land_fraction(GRID_5MIN), GRID_5MIN, axes="hw"))
