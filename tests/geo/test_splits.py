"""Random and spatial-block splitters (scikit-learn API) and the one block-id function (SYNTHETIC points)."""

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import cross_val_score

from lamina.errors import InputError
from lamina.geo.data.grid import block_ids
from lamina.geo.data.sampling import SpatialSplit
from lamina.geo.eval.splits import RandomSplit, SpatialBlockSplit


def _points(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-180, 180, n), rng.uniform(-90, 90, n)])


def test_block_ids_by_hand():
    lon = np.array([-180.0, -170.0001, -170.0, 179.9, 180.0])
    lat = np.array([-90.0, -80.5, 0.0, 89.9, 90.0])
    rows, cols = np.divmod(block_ids(lon=lon, lat=lat, block_deg=10.0), 100_000)
    assert rows.tolist() == [0, 0, 9, 17, 18] and cols.tolist() == [0, 0, 1, 35, 36]
    _, cols = np.divmod(block_ids(lon=lon, lat=lat, block_deg=10.0, wrap_lon=True), 100_000)
    assert cols.tolist() == [0, 0, 1, 35, 0]  # 180 E shares the cell of 180 W
    _, cols = np.divmod(block_ids(lon=lon, lat=lat, block_deg=10.0, offset=(5.0, 0.0)), 100_000)
    assert cols.tolist() == [0, 1, 1, 36, 36]


def test_pretraining_holdout_is_made_of_the_same_blocks():
    """SpatialSplit (pretraining) holds out whole cells of block_ids: one decision per cell, both kinds occur."""
    X = _points(20000)
    split = SpatialSplit(block_deg=10.0, val_fraction=0.3, seed=4)
    held = split.is_validation(X[:, 0], X[:, 1])
    cells = block_ids(lon=X[:, 0], lat=X[:, 1], block_deg=10.0, wrap_lon=True)
    per_cell = {c: set(held[cells == c]) for c in np.unique(cells)}
    assert all(len(v) == 1 for v in per_cell.values())
    assert 0.15 < np.mean([v == {True} for v in per_cell.values()]) < 0.45


@pytest.mark.parametrize("n_folds", [1, 4])
def test_block_split_keeps_cells_whole(n_folds):
    X = _points()
    cv = SpatialBlockSplit(10.0, n_folds=n_folds, random_state=3)
    folds = list(cv.split(X))
    assert len(folds) == cv.get_n_splits() == n_folds
    # the cells on each side, recomputed with the splitter's grid offset: no cell on both sides
    cells = cv.blocks(X)
    for train, test in folds:
        assert not set(cells[train]) & set(cells[test])
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(X)
    if n_folds == 1:
        assert 0.2 <= len(folds[0][1]) / len(X) < 0.3  # whole cells until at least the test fraction
    else:
        tests = np.concatenate([te for _, te in folds])
        np.testing.assert_array_equal(np.sort(tests), np.arange(len(X)))
        sizes = [len(te) for _, te in folds]
        assert max(sizes) - min(sizes) <= 0.1 * len(X) / n_folds  # balanced
    # another seed moves the cell grid and the choice of cells
    other = SpatialBlockSplit(10.0, n_folds=n_folds, random_state=4)
    assert not np.array_equal(other.blocks(X), cells)


def test_random_split_and_scikit_learn_compatibility():
    X = _points(500)
    y = (X[:, 1] > 0).astype(int)
    (train, test), = RandomSplit(test_fraction=0.3, random_state=1).split(X)
    assert len(test) == 150 and len(train) == 350
    again = next(RandomSplit(test_fraction=0.3, random_state=1).split(X))[1]
    np.testing.assert_array_equal(again, test)
    for cv in (RandomSplit(n_folds=5), SpatialBlockSplit(30.0, n_folds=3, random_state=2)):
        scores = cross_val_score(DummyClassifier(), X, y, cv=cv)
        assert len(scores) == cv.get_n_splits()
    assert repr(SpatialBlockSplit(5.0, n_folds=2)).startswith("SpatialBlockSplit(block_deg=5.0")


@pytest.mark.parametrize(
    ("cv", "X", "message"),
    [
        (RandomSplit(n_folds=0), np.zeros((5, 2)), "n_folds: expected an integer >= 1"),
        (RandomSplit(test_fraction=1.5), np.zeros((5, 2)), "test_fraction: expected a number in (0, 1)"),
        (RandomSplit(random_state=-1), np.zeros((5, 2)), "random_state: expected an integer >= 0"),
        (SpatialBlockSplit(0.0), np.zeros((5, 2)), "block_deg: expected a number of degrees > 0"),
        (SpatialBlockSplit(10.0), np.zeros((5, 3)), "X: expected (N, 2) coordinates (lon, lat)"),
    ],
)
def test_bad_parameters_are_input_errors(cv, X, message):
    with pytest.raises(InputError) as err:
        next(cv.split(X))
    assert message in str(err.value)
