"""Task loaders on their REAL offline data (small samples), and the random / spatial block splits."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.geo.eval.splits import block_ids, task_splits
from lamina.geo.eval.tasks import (
    KOPPEN_CLASSES,
    koppen_lookup,
    koppen_main_lookup,
    load_task,
    sample_sphere,
    task_names,
)

# Well-known places and their Koppen-Geiger class (any standard map agrees on these).
PLACES = {
    "Paris": (2.35, 48.85, "Cfb"),
    "Cairo": (31.2, 30.0, "BWh"),
    "Manaus": (-60.0, -3.1, "Af"),
    "Moscow": (37.6, 55.75, "Dfb"),
    "Rome": (12.5, 41.9, "Csa"),
}


def test_koppen_lookup_at_known_places():
    lon = [p[0] for p in PLACES.values()]
    lat = [p[1] for p in PLACES.values()]
    codes = koppen_lookup(lon=lon, lat=lat)
    assert [KOPPEN_CLASSES[c - 1] for c in codes] == [p[2] for p in PLACES.values()]
    assert koppen_lookup(lon=[-30.0], lat=[0.0])[0] == 32  # mid-Atlantic: sea


def test_koppen_main_lookup_reads_only_needed_strips_and_matches_groups():
    lon = [p[0] for p in PLACES.values()] + [-30.0]
    lat = [p[1] for p in PLACES.values()] + [0.0]
    codes = koppen_main_lookup(lon=lon, lat=lat)
    groups = "ABCDE"
    assert [groups[c - 1] for c in codes[:-1]] == [p[2][0] for p in PLACES.values()]
    assert codes[-1] == 0  # sea has no data


def test_koppen_task_sample():
    task = load_task("koppen", n=400, seed=1)
    assert task.kind == "classification" and task.metric == "f1_macro"
    assert len(task) <= 400 and task.y.max() == len(task.labels) - 1
    assert set(task.labels) <= set(KOPPEN_CLASSES)
    assert np.bincount(task.y).min() >= 20  # rare classes dropped
    codes = koppen_lookup(lon=task.lon, lat=task.lat)
    assert np.array_equal(np.array(KOPPEN_CLASSES)[codes - 1], np.array(task.labels)[task.y])
    again = load_task("koppen", n=400, seed=1)
    np.testing.assert_array_equal(task.lon, again.lon)


def test_koppen_main_task_sample():
    task = load_task("koppen-main", n=300, seed=0)
    assert len(task) == 300 and set(np.unique(task.y)) <= set(range(5))
    assert task.labels[0].startswith("A") and task.labels[4].startswith("E")
    assert len(np.unique(task.y)) == 5  # 300 land points cover all five groups


def test_city_temperature_task():
    task = load_task("city-temperature")
    assert len(task) == 270 and task.y.shape == (270, 12) and task.kind == "regression"
    assert task.n_folds == 5 and task.units == "degC"
    lisbon = np.flatnonzero(np.isclose(task.lat, 38.72) & np.isclose(task.lon, -9.14))
    assert lisbon.size == 1
    assert task.y[lisbon[0], 6] == pytest.approx(21.2)  # July in Lisbon, from the package's CSV
    south = task.lat < -23.5
    north = task.lat > 23.5
    # seasons: northern cities are warmer in July than in January, southern ones the other way round
    assert np.mean(task.y[north, 6] > task.y[north, 0]) > 0.95
    assert np.mean(task.y[south, 6] < task.y[south, 0]) > 0.95


def test_sdm_ariolimax_task_is_reprojected_to_california():
    task = load_task("sdm-ariolimax")
    assert len(task) == 6585 and task.kind == "binary" and task.metric == "roc_auc"
    assert int(task.y.sum()) == 1595
    assert task.lon.min() > -125.0 and task.lon.max() < -113.5  # California and its coast
    assert task.lat.min() > 32.0 and task.lat.max() < 42.5
    sub = load_task("sdm-ariolimax", n=100, seed=3)
    assert len(sub) == 100


def test_unknown_task_is_a_clear_error():
    with pytest.raises(InputError, match="unknown task 'biomes'.*koppen"):
        load_task("biomes")
    assert task_names() == ["koppen", "koppen-main", "city-temperature", "sdm-ariolimax"]


def test_sample_sphere_is_area_uniform():
    lon, lat = sample_sphere(20000, np.random.default_rng(0))
    # a quarter of the sphere's area lies poleward of 30 degrees (sin 30 = 0.5)
    assert np.mean(np.abs(lat) > 30) == pytest.approx(0.5, abs=0.02)
    assert lon.min() >= -180 and lon.max() <= 180


@pytest.mark.parametrize("kind", ["random", "block"])
def test_holdout_splits(kind):
    task = load_task("koppen-main", n=500, seed=0)
    folds, groups = task_splits(task, kind=kind, seed=0)
    (train, test), = folds
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(task)
    assert 0.18 < len(test) / len(task) < 0.35
    if kind == "block":
        assert not set(groups[train]) & set(groups[test])  # no cell on both sides
        other, _ = task_splits(task, kind=kind, seed=1)
        assert not np.array_equal(other[0][1], test)
    else:
        assert groups is None


@pytest.mark.parametrize("kind", ["random", "block"])
def test_cross_validation_folds_cover_every_point_once(kind):
    task = load_task("city-temperature")
    folds, groups = task_splits(task, kind=kind, seed=2)
    assert len(folds) == 5
    tests = np.concatenate([te for _, te in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(task)))
    if kind == "block":
        for tr, te in folds:
            assert not set(groups[tr]) & set(groups[te])
            assert len(te) > 20  # the greedy assignment balances fold sizes


def test_block_ids():
    ids = block_ids(lon=[-179.0, -171.0, -169.0, 0.0], lat=[0.0, 0.0, 0.0, 89.0], block_deg=10.0)
    assert ids[0] == ids[1] != ids[2]
    shifted = block_ids(lon=[-179.0, -171.0], lat=[0.0, 0.0], block_deg=10.0, offset=(5.0, 0.0))
    assert shifted[0] != shifted[1]
    with pytest.raises(InputError, match="split"):
        task_splits(load_task("city-temperature"), kind="diagonal", seed=0)
