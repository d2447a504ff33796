"""What every task shares: the :class:`Task` record and the point-sampling helpers of the loaders."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lamina._validation import check_positive_int


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


def sample_sphere(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform in area on the sphere: lon ~ U(-180, 180), lat = asin(U(-1, 1)), degrees."""
    lon = rng.uniform(-180.0, 180.0, n)
    lat = np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return lon, lat


def rejection_sample(lookup, n: int, seed: int, *, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def drop_rare(code: np.ndarray, min_count: int) -> np.ndarray:
    """Boolean mask of the points whose class occurs at least ``min_count`` times."""
    _uniq, inv, counts = np.unique(code, return_inverse=True, return_counts=True)
    return counts[inv] >= min_count


def subset_indices(total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``n`` of ``total`` items (all of them when n is None)."""
    if n is None:
        return np.arange(total)
    n = check_positive_int("n", n, minimum=10)
    return np.sort(np.random.default_rng(seed).permutation(total)[: min(n, total)])
