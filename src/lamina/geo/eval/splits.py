"""Train / test splits of a task as scikit-learn splitters: random points, or whole spatial blocks.

- :class:`RandomSplit`: points at random (as in the Climplicit paper).
- :class:`SpatialBlockSplit`: points are binned into ``block_deg`` x ``block_deg`` degree cells
  (:func:`lamina.geo.data.grid.block_ids`, the one definition of spatial blocks, also used by pretraining's
  hold-out) on a cell grid with a seed-dependent offset, and whole cells go to the test side, so the score no
  longer profits from test points that sit next to training points.

Both are :class:`sklearn.model_selection.BaseCrossValidator` s (``split(X, y=None, groups=None)``,
``get_n_splits()``), usable in ``cross_val_score`` and friends. With ``n_folds=1`` they give one hold-out split of
``test_fraction`` (points, or whole cells until at least that fraction of the points); with ``n_folds > 1`` k-fold
cross-validation whose test sides are disjoint and cover every point (the block split balances fold sizes).
:func:`task_splits` applies the right one to a :class:`~lamina.geo.eval.tasks.Task`.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from lamina._validation import check_choice, check_positive_int
from lamina.errors import InputError
from lamina.geo.data.grid import block_ids
from lamina.geo.eval.tasks import Task

SPLIT_KINDS = ("random", "block")

__all__ = ["SPLIT_KINDS", "RandomSplit", "SpatialBlockSplit", "block_ids", "task_splits", "task_splitter"]


def _check_common(n_folds, test_fraction, random_state) -> None:
    check_positive_int("n_folds", n_folds, minimum=1)
    if not (isinstance(test_fraction, int | float) and 0.0 < float(test_fraction) < 1.0):
        raise InputError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer) or random_state < 0:
        raise InputError(f"random_state: expected an integer >= 0 (a seed), got {random_state!r}")


def _fold_of_points(groups: np.ndarray, *, n_folds: int, test_fraction: float, rng: np.random.Generator,
                    balance: bool) -> np.ndarray:
    """(N,) fold of each point: 0 = test and 1 = train for a hold-out (``n_folds == 1``), else 0..n_folds-1.

    Whole groups move together. Hold-out: groups in random order until at least ``test_fraction`` of the points.
    k-fold: groups dealt round-robin in random order, or (``balance``) the largest group first to the currently
    smallest fold.
    """
    if n_folds == 1:
        uniq, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
        order = rng.permutation(len(uniq))
        cum = np.cumsum(counts[order])
        n_test = int(np.searchsorted(cum, test_fraction * len(groups))) + 1  # whole groups up to the fraction
        n_test = min(max(n_test, 1), len(uniq) - 1)
        test_groups = np.zeros(len(uniq), dtype=bool)
        test_groups[order[:n_test]] = True
        return np.where(test_groups[inv], 0, 1)
    uniq, inv = np.unique(groups, return_inverse=True)
    fold_of_group = rng.permutation(len(uniq)) % n_folds
    if balance:  # assign the largest groups first to the currently smallest fold
        counts = np.bincount(inv)
        order = rng.permutation(len(uniq))
        order = order[np.argsort(-counts[order], kind="stable")]  # largest first, ties in random order
        sizes = np.zeros(n_folds)
        for g in order:
            f = int(np.argmin(sizes))
            fold_of_group[g] = f
            sizes[f] += counts[g]
    return fold_of_group[inv]


class _GroupedSplit(BaseCrossValidator):
    n_folds: int
    test_fraction: float
    random_state: int

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of (train, test) pairs :meth:`split` yields: ``n_folds``."""
        return int(self.n_folds)

    def _iter_test_masks(self, X=None, y=None, groups=None):
        fold = self._folds(X)
        for k in range(self.n_folds):
            yield fold == k

    def _folds(self, X) -> np.ndarray:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError


class RandomSplit(_GroupedSplit):
    """Random points: one hold-out split of ``test_fraction`` (``n_folds=1``) or k-fold cross-validation.

    Args:
        n_folds: 1 for a hold-out split, > 1 for k-fold cross-validation.
        test_fraction: fraction of points on the test side of a hold-out split (ignored for k-fold).
        random_state: seed (an integer >= 0).
    """

    def __init__(self, n_folds: int = 1, test_fraction: float = 0.2, random_state: int = 0):
        self.n_folds = n_folds
        self.test_fraction = test_fraction
        self.random_state = random_state

    def _folds(self, X) -> np.ndarray:
        _check_common(self.n_folds, self.test_fraction, self.random_state)
        rng = np.random.default_rng([int(self.random_state), 11])
        return _fold_of_points(np.arange(len(X)), n_folds=self.n_folds, test_fraction=self.test_fraction, rng=rng,
                               balance=False)  # fmt: skip


class SpatialBlockSplit(_GroupedSplit):
    """Whole ``block_deg``-degree cells on the test side, on a cell grid shifted by a seed-dependent offset.

    ``X`` holds the points' coordinates: ``(N, 2)`` = (lon, lat) in degrees, lon in [-180, 180], lat in [-90, 90].

    Args:
        block_deg: cell size in degrees (> 0).
        n_folds: 1 for a hold-out split, > 1 for k-fold cross-validation (fold sizes balanced).
        test_fraction: the test side of a hold-out split takes whole cells until at least this fraction of points.
        random_state: seed of the cell-grid offset and of the assignment of cells (an integer >= 0).
    """

    def __init__(self, block_deg: float, n_folds: int = 1, test_fraction: float = 0.2, random_state: int = 0):
        self.block_deg = block_deg
        self.n_folds = n_folds
        self.test_fraction = test_fraction
        self.random_state = random_state

    def blocks(self, X) -> np.ndarray:
        """(N,) int64 cell id of each point of ``X`` ((N, 2) lon, lat degrees); the groups of an inner CV."""
        if isinstance(self.block_deg, bool) or not isinstance(self.block_deg, int | float) or not self.block_deg > 0:
            raise InputError(f"block_deg: expected a number of degrees > 0, got {self.block_deg!r}")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != 2:
            raise InputError(f"X: expected (N, 2) coordinates (lon, lat) in degrees, got shape {X.shape}")
        offset = tuple(np.random.default_rng([int(self.random_state), 7]).uniform(0.0, self.block_deg, 2))
        return block_ids(lon=X[:, 0], lat=X[:, 1], block_deg=self.block_deg, offset=offset)

    def _folds(self, X) -> np.ndarray:
        _check_common(self.n_folds, self.test_fraction, self.random_state)
        groups = self.blocks(X)
        rng = np.random.default_rng([int(self.random_state), 11])
        return _fold_of_points(groups, n_folds=self.n_folds, test_fraction=self.test_fraction, rng=rng,
                               balance=True)  # fmt: skip


def task_splitter(task: Task, *, kind: str, seed: int) -> RandomSplit | SpatialBlockSplit:
    """The splitter of a task: its ``n_folds`` and ``test_fraction``, cells of ``task.block_deg`` for ``"block"``."""
    check_choice("split", kind, SPLIT_KINDS)
    if kind == "random":
        return RandomSplit(task.n_folds, task.test_fraction, random_state=seed)
    return SpatialBlockSplit(task.block_deg, task.n_folds, task.test_fraction, random_state=seed)


def task_splits(task: Task, *, kind: str, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
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
    splitter = task_splitter(task, kind=kind, seed=seed)
    X = np.column_stack([task.lon, task.lat])
    folds = list(splitter.split(X))
    return folds, (splitter.blocks(X) if kind == "block" else None)
