"""Terrain inputs of the climate encoder: land elevation and land fraction on a 0.25-degree grid.

Temperature falls about 6.5 degC per km of height and rain follows relief and coasts, but a network that reads
only (lon, lat) must learn every mountain from its targets, and it cannot know the mountains of a place no
sample reached. With ``EncoderConfig(terrain=True)`` the encoder also reads two fixed values of the place,
interpolated from the table built here and stored in the checkpoint (float16, 4.2 MB), so no raster is read at
query time:

=====================  ===================================================================================
column                 value at each node (lon -180 .. 179.75, lat -90 .. 90, every 0.25 degrees)
=====================  ===================================================================================
``elevation``          mean land elevation of the 0.25-degree cell around the node (sea counts as 0 m, below
                       sea level as 0 m), in units of 4 km (ETOPO5, ferret-datasets)
``land_fraction``      ``2 f - 1`` with ``f`` the cell's land fraction (GLOBE 1 km mask): -1 open sea, 1 land
=====================  ===================================================================================

Cell means are exact pixel-area means over the 0.25-degree cell centred on the node (15 arc-minutes, 3 five-minute
pixels across): ETOPO5's points lie on multiples of 5' (the node and the points 5' either side, weights 1, 1, 1);
GLOBE's 5' pixels have their edges there (centres 2.5' and 7.5' either side of the node, weights 1, 1 and 0.5,
0.5 for the pixels the cell cuts in half). ERA5's 0.25-degree cells see terrain at the same scale.
"""

from __future__ import annotations

import numpy as np

from lamina.nn.encodings import grid_shape

TERRAIN_RESOLUTION = 0.25
"""Node spacing of the terrain table in degrees (ERA5's grid)."""
TERRAIN_COLUMNS = ("elevation", "land_fraction")
ELEVATION_SCALE_M = 4000.0
"""Elevation is divided by this (m), so the highest plateaus read about 1.3, like the unit-vector inputs."""
_MIN = 1.0 / 60.0
# (offsets in degrees, weights) of the points averaged in each direction: exact 0.25-degree cell means
_ETOPO5_WINDOW = (np.array([-5.0, 0.0, 5.0]) * _MIN, np.array([1.0, 1.0, 1.0]))
_GLOBE_WINDOW = (np.array([-7.5, -2.5, 2.5, 7.5]) * _MIN, np.array([0.5, 1.0, 1.0, 0.5]))


def check_terrain_columns(value, name: str = "terrain_columns") -> tuple[str, ...]:
    """Terrain column names, checked (one or more of :data:`TERRAIN_COLUMNS`, distinct) and put in that order."""
    from lamina.errors import InputError

    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise InputError(f"{name}: expected a non-empty list of {list(TERRAIN_COLUMNS)}, got {value!r}")
    unknown = [v for v in value if v not in TERRAIN_COLUMNS]
    if unknown:
        raise InputError(f"{name}: unknown {unknown!r}; expected some of {list(TERRAIN_COLUMNS)}")
    if len(set(value)) != len(value):
        raise InputError(f"{name}: expected distinct names, got {list(value)}")
    return tuple(c for c in TERRAIN_COLUMNS if c in value)


def terrain_table(resolution: float = TERRAIN_RESOLUTION, rows_per_block: int = 60,
                  columns=TERRAIN_COLUMNS) -> np.ndarray:
    """``(rows * cols, len(columns))`` float32 terrain values at the nodes of
    :func:`lamina.nn.encodings.grid_shape` (row-major from (-90, -180)); ``columns`` some of :data:`TERRAIN_COLUMNS`
    (in that order). Needs the ferret-datasets ETOPO5 file and the GLOBE land mask (global-land-mask); a few
    seconds on one core."""
    from lamina.geo.data.sources.ferret import etopo5
    from lamina.geo.data.sources.globe import globe_land_fraction

    columns = check_terrain_columns(columns, "columns")  # checked before any data is read; only these are built
    spec = {  # column: (field, window, latitude limit of the window's points, lower bound, scaling)
        "elevation": (etopo5, _ETOPO5_WINDOW, 90.0, 0.0, lambda v: v / ELEVATION_SCALE_M),
        "land_fraction": (globe_land_fraction, _GLOBE_WINDOW, 90.0 - 2.5 * _MIN, None,
                          lambda v: 2.0 * np.clip(v, 0.0, 1.0) - 1.0),
    }
    rows, cols = grid_shape(resolution)
    lon_nodes = -180.0 + resolution * np.arange(cols)
    out = np.empty((rows, cols, len(columns)), dtype=np.float32)
    for r0 in range(0, rows, rows_per_block):
        lat_nodes = -90.0 + resolution * np.arange(r0, min(rows, r0 + rows_per_block))
        for k, name in enumerate(columns):
            field, window, lat_limit, low, scale = spec[name]
            mean = _cell_mean(field(), lon_nodes, lat_nodes, window, lat_limit=lat_limit, low=low)
            out[r0 : r0 + lat_nodes.size, :, k] = scale(mean)
    return out.reshape(rows * cols, len(columns))


def _cell_mean(field, lon_nodes, lat_nodes, window, *, lat_limit: float, low: float | None = None) -> np.ndarray:
    """(rows, cols) weighted mean of ``field`` over ``window`` (offsets, weights) around each node, read by nearest
    pixel at points that are pixel centres (or, near a pole, the centre of the last row); NaN counts as 0 and
    values below ``low`` as ``low``."""
    offsets, weights = window
    total = np.zeros((lat_nodes.size, lon_nodes.size))
    for dlat, wlat in zip(offsets, weights, strict=True):
        for dlon, wlon in zip(offsets, weights, strict=True):
            lat = np.clip(lat_nodes + dlat, -lat_limit, lat_limit)
            lon = (lon_nodes + dlon + 180.0) % 360.0 - 180.0
            la, lo = np.meshgrid(lat, lon, indexing="ij")
            v = field.values_at(lo.ravel(), la.ravel(), np.ones(la.size, dtype=np.int64)).reshape(la.shape)
            v = np.nan_to_num(v.astype(np.float64), nan=0.0)
            total += wlat * wlon * (v if low is None else np.clip(v, low, None))
    return total / weights.sum() ** 2
