"""Task ``sdm-ariolimax``: presence / background of the banana slug Ariolimax in California (elapid), ROC AUC.

All 6585 points, reprojected from UTM 10N (EPSG:32610) to lon/lat with pyproj.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np

from lamina.errors import InputError
from lamina.geo.eval.tasks.base import Task, subset_indices


def load_sdm_ariolimax(n: int | None = None, seed: int = 0) -> Task:
    """Presence / background of the banana slug *Ariolimax* in California (elapid's sample data), ROC AUC.

    Args:
        n: optional number of points (a seeded random subset, for quick runs); None for all 6585.
        seed: seed of that subset.
    """
    import pyogrio
    from pyproj import Transformer

    spec = find_spec("elapid")
    if spec is None or spec.origin is None:
        raise InputError("task sdm-ariolimax: the elapid package is not installed (pip install elapid)")
    gpkg = Path(spec.origin).parent / "data" / "ariolimax.gpkg"
    table = pyogrio.read_dataframe(gpkg)
    crs = table.crs.to_epsg() if table.crs is not None else None
    if crs != 32610:
        raise InputError(f"task sdm-ariolimax: expected {gpkg} in EPSG:32610, found {table.crs}")
    x = table.geometry.x.to_numpy()
    y_utm = table.geometry.y.to_numpy()
    lon, lat = Transformer.from_crs("EPSG:32610", "EPSG:4326", always_xy=True).transform(x, y_utm)
    presence = table["presence"].to_numpy().astype(np.int64)
    idx = subset_indices(len(lon), n, seed)
    lon, lat, presence = lon[idx], lat[idx], presence[idx]
    return Task(
        name="sdm-ariolimax",
        kind="binary",
        lon=np.asarray(lon, dtype=np.float64),
        lat=np.asarray(lat, dtype=np.float64),
        y=presence,
        labels=("background", "presence"),
        metric="roc_auc",
        block_deg=0.5,
        description=(
            f"{len(lon)} points in California: {int(presence.sum())} presence records of Ariolimax and "
            f"{int((presence == 0).sum())} background points, reprojected from EPSG:32610 to lon/lat (pyproj)."
        ),
        source="elapid (PyPI) sample data ariolimax.gpkg (GBIF occurrences + background), MIT-licensed package",
    )
