"""Global land mask at 30 arc-seconds (~1 km), from the GLOBE data shipped by the ``global-land-mask`` package.

The package stores a (21600, 43200) boolean *water* mask (rows from 90 N southwards, columns from 180 W
eastwards, lakes mostly counted as land). Loading it costs ~1 GB and ~6 s, so lamina converts it once into a
bit-packed land mask (117 MB, memory-mapped thereafter) and, for coarser grids, land fractions; both are cached
in ``$LAMINA_CACHE_DIR`` (default ``~/.cache/lamina``), written atomically.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from lamina._io import atomic_path
from lamina.geo.data.grid import Grid

GLOBE_GRID = Grid(-180.0, 90.0, 1.0 / 120.0, 1.0 / 120.0, 21600, 43200)


def cache_dir() -> Path:
    """Directory for derived caches (``$LAMINA_CACHE_DIR`` or ``~/.cache/lamina``)."""
    d = Path(os.environ.get("LAMINA_CACHE_DIR", Path.home() / ".cache" / "lamina"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _water_mask() -> np.ndarray:
    import global_land_mask

    path = Path(global_land_mask.__file__).parent / "globe_combined_mask_compressed.npz"
    with np.load(path) as z:
        return z["mask"]


@functools.lru_cache(maxsize=1)
def _packed_land() -> np.ndarray:
    """(21600, 5400) uint8: bit-packed land mask, memory-mapped from the cache."""
    path = cache_dir() / "globe_land_packed_v1.npy"
    if not path.exists():
        land = ~_water_mask()
        with atomic_path(path) as tmp:
            np.save(tmp, np.packbits(land, axis=1))
        del land
    return np.load(path, mmap_mode="r")


def is_land(lon, lat) -> np.ndarray:
    """Whether each point is land (nearest 30-arc-second GLOBE pixel).

    Args:
        lon: (N,) degrees east in [-180, 180].
        lat: (N,) degrees north in [-90, 90].

    Returns:
        (N,) bool.
    """
    r, c, _ = GLOBE_GRID.index(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    # the GLOBE grid's columns start at -180, so the nearest-pixel rule maps 180 E back onto column 0 by wrapping
    packed = _packed_land()
    byte = packed[r, c >> 3]
    return ((byte >> (7 - (c & 7))) & 1).astype(bool)


@functools.lru_cache(maxsize=8)
def land_fraction(grid: Grid) -> np.ndarray:
    """(height, width) float32 fraction of land of each pixel of ``grid``.

    Exact block means when ``grid`` is a whole multiple of 30 arc-seconds aligned with the GLOBE grid (the usual
    case: 5 arc-minutes, 1/6 degree, 1 degree...); otherwise the land value at each pixel centre (0 or 1).
    """
    ratio_r = grid.dlat * 120.0
    ratio_c = grid.dlon * 120.0
    aligned = (
        grid.dlat > 0
        and abs(ratio_r - round(ratio_r)) < 1e-6
        and abs(ratio_c - round(ratio_c)) < 1e-6
        and abs(grid.lat_top - 90.0) < 1e-9
        and abs((grid.lon_left + 180.0) % 360.0) < 1e-9
        and grid.height * round(ratio_r) == GLOBE_GRID.height
        and grid.width * round(ratio_c) == GLOBE_GRID.width
    )
    if not aligned:
        lon, lat = np.meshgrid(grid.lons, grid.lats)
        lon = (lon + 180.0) % 360.0 - 180.0
        return is_land(lon.ravel(), np.clip(lat.ravel(), -90, 90)).reshape(grid.shape).astype(np.float32)
    kr, kc = round(ratio_r), round(ratio_c)
    name = f"land_fraction_{grid.height}x{grid.width}_v1.npy"
    path = cache_dir() / name
    if path.exists():
        return np.load(path)
    packed = _packed_land()
    out = np.empty(grid.shape, dtype=np.float32)
    rows_per_block = max(kr, (2048 // kr) * kr)
    for r0 in range(0, GLOBE_GRID.height, rows_per_block):
        land = np.unpackbits(packed[r0 : r0 + rows_per_block], axis=1)[:, : GLOBE_GRID.width]
        h = land.shape[0] // kr
        out[r0 // kr : r0 // kr + h] = land.reshape(h, kr, grid.width, kc).mean(axis=(1, 3), dtype=np.float32)
    with atomic_path(path) as tmp:
        np.save(tmp, out)
    return out
