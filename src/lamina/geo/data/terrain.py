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

Cell means are taken over the 3 x 3 five-arc-minute pixels nearest the node (nearest-pixel lookups at offsets
of -5', 0 and +5'); ERA5's 0.25-degree cells see terrain at the same scale.
"""

from __future__ import annotations

import numpy as np

from lamina.nn.encodings import grid_shape

TERRAIN_RESOLUTION = 0.25
"""Node spacing of the terrain table in degrees (ERA5's grid)."""
TERRAIN_COLUMNS = ("elevation", "land_fraction")
ELEVATION_SCALE_M = 4000.0
"""Elevation is divided by this (m), so the highest plateaus read about 1.3, like the unit-vector inputs."""
_OFFSETS = (-5.0 / 60.0, 0.0, 5.0 / 60.0)


def terrain_table(resolution: float = TERRAIN_RESOLUTION, rows_per_block: int = 60) -> np.ndarray:
    """``(rows * cols, 2)`` float32 terrain values at the nodes of :func:`lamina.nn.encodings.grid_shape`
    (row-major from (-90, -180)); columns :data:`TERRAIN_COLUMNS`. Needs the ferret-datasets ETOPO5 file and
    the GLOBE land mask (global-land-mask); about 10 s on one core."""
    from lamina.geo.data.sources.ferret import etopo5
    from lamina.geo.data.sources.globe import globe_land_fraction

    elevation, land = etopo5(), globe_land_fraction()
    rows, cols = grid_shape(resolution)
    lon_nodes = -180.0 + resolution * np.arange(cols)
    out = np.empty((rows, cols, 2), dtype=np.float32)
    for r0 in range(0, rows, rows_per_block):
        lat_nodes = -90.0 + resolution * np.arange(r0, min(rows, r0 + rows_per_block))
        elev_sum = np.zeros((lat_nodes.size, cols))
        land_sum = np.zeros((lat_nodes.size, cols))
        for dlat in _OFFSETS:
            for dlon in _OFFSETS:
                lat = np.clip(lat_nodes + dlat, -90.0, 90.0)
                lon = (lon_nodes + dlon + 180.0) % 360.0 - 180.0
                la, lo = np.meshgrid(lat, lon, indexing="ij")
                m = np.ones(la.size, dtype=np.int64)
                e = elevation.values_at(lo.ravel(), la.ravel(), m).reshape(la.shape)
                f = land.values_at(lo.ravel(), la.ravel(), m).reshape(la.shape)
                elev_sum += np.clip(np.nan_to_num(e, nan=0.0), 0.0, None)
                land_sum += np.nan_to_num(f, nan=0.0)
        n = len(_OFFSETS) ** 2
        out[r0 : r0 + lat_nodes.size, :, 0] = elev_sum / n / ELEVATION_SCALE_M
        out[r0 : r0 + lat_nodes.size, :, 1] = 2.0 * np.clip(land_sum / n, 0.0, 1.0) - 1.0
    return out.reshape(rows * cols, 2)
