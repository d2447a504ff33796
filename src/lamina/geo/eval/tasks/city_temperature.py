"""Task ``city-temperature``: the 12 monthly mean temperatures of 270 cities, a 12-target regression (mean R^2).

Data: world-temperature-data (CHELSA v2.1 1981-2010 normals). All cities; small, so 5-fold cross-validated.
"""

from __future__ import annotations

from importlib import resources
from importlib.util import find_spec

import numpy as np

from lamina.errors import InputError
from lamina.geo.eval.tasks.base import Task, subset_indices

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def load_city_temperature(n: int | None = None, seed: int = 0) -> Task:
    """Monthly mean temperature of 270 cities (CHELSA v2.1 1981-2010): a 12-target regression, 5-fold CV.

    Args:
        n: optional number of cities (a seeded random subset, for quick runs); None for all.
        seed: seed of that subset.
    """
    import csv

    if find_spec("world_temperature_data") is None:
        raise InputError("task city-temperature: world-temperature-data is not installed")
    raw = resources.files("world_temperature_data").joinpath("world-temperature.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(raw.splitlines()))
    lon = np.array([float(r["lon"]) for r in rows])
    lat = np.array([float(r["lat"]) for r in rows])
    y = np.array([[float(r[f"{m}_c"]) for m in MONTH_NAMES] for r in rows])
    idx = subset_indices(len(lon), n, seed)
    lon, lat, y = lon[idx], lat[idx], y[idx]
    return Task(
        name="city-temperature",
        kind="regression",
        lon=lon,
        lat=lat,
        y=y,
        labels=MONTH_NAMES,
        metric="r2_mean",
        block_deg=10.0,
        n_folds=5,
        units="degC",
        description=(
            f"{len(lon)} cities, 12 targets: monthly mean near-surface air temperature (deg C); small, so scored "
            "by 5-fold cross-validation (out-of-fold predictions)."
        ),
        source="world-temperature-data (PyPI): GeoRank.place from CHELSA v2.1 1981-2010 normals, CC-BY-4.0",
    )
