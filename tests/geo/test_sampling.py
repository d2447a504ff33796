import numpy as np
import pytest

from lamina.geo.data.landmask import is_land
from lamina.geo.data.sampling import PixelSampler, SpatialSplit
from lamina.geo.data.sources import load_stack
from lamina.geo.data.sources.chelsa import chelsa_stack


@pytest.fixture(scope="module")
def stack():
    return load_stack(["linke_turbidity", "elevation", "air_temperature"])


def test_split_holds_out_whole_blocks(stack):
    split = SpatialSplit(block_deg=10, val_fraction=0.2, seed=3)
    train = PixelSampler(stack, batch_size=2048, split=split, part="train", seed=1)
    val = PixelSampler(stack, batch_size=2048, split=split, part="val", seed=1)
    bt, bv = train.batch(0), val.batch(0)
    assert not split.is_validation(bt.lon, bt.lat).any()
    assert split.is_validation(bv.lon, bv.lat).all()
    frac = val.n_eligible_pixels / (val.n_eligible_pixels + train.n_eligible_pixels)
    assert 0.1 < frac < 0.3


def test_batches_are_deterministic_and_varied(stack):
    s = PixelSampler(stack, batch_size=1024, seed=5)
    a, b, c = s.batch(7), s.batch(7), s.batch(8)
    np.testing.assert_array_equal(a.lon, b.lon)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.lon, c.lon)
    assert set(np.unique(a.month)) == set(range(1, 13))
    other_rank = PixelSampler(stack, batch_size=1024, seed=5, rank=1).batch(7)
    assert not np.array_equal(a.lon, other_rank.lon)
    np.testing.assert_allclose(a.values, stack.values_at(lon=a.lon, lat=a.lat, month=a.month))


def test_land_only(stack):
    s = PixelSampler(stack, batch_size=2048, land_only=True, seed=0)
    b = s.batch(0)
    # pixel centres are land; jittered points within a coastal pixel may fall just offshore
    assert is_land(b.lon, b.lat).mean() > 0.97
    air = b.values[:, 2]
    assert np.isnan(air).mean() > 0.7  # marine variable mostly missing on land


def test_disk_backed_stack_reads_windows(tiny_chelsa):
    s = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    sampler = PixelSampler(s, batch_size=500, n_windows=5, months_per_window=2, seed=0)
    b = sampler.batch(0)
    assert len(b) == 500 and b.values.shape == (500, 2)
    np.testing.assert_allclose(b.values, s.values_at(lon=b.lon, lat=b.lat, month=b.month), rtol=1e-6)
    it = sampler.iterate(3)
    step, first = next(it)
    assert step == 3 and np.array_equal(first.lon, sampler.batch(3).lon)
    it.close()


def _prefetchers():
    import threading

    return [t for t in threading.enumerate() if t.name == "lamina-batch-prefetch"]


def test_closing_the_batch_iterator_stops_its_prefetch_thread(stack):
    # a prefetch thread left running (blocked on a full queue, or mid-read) when the interpreter exits can abort
    # the process ("terminate called without an active exception"); closing must stop and join it
    s = PixelSampler(stack, batch_size=256, seed=2)
    it = s.iterate(0, prefetch=1)
    next(it)
    assert len(_prefetchers()) == 1
    it.close()
    assert _prefetchers() == []


def test_an_error_in_the_prefetch_thread_reaches_the_consumer_and_ends_the_thread(stack, monkeypatch):
    s = PixelSampler(stack, batch_size=256, seed=2)

    def broken(step):
        raise OSError(f"cannot read the window of step {step}")

    monkeypatch.setattr(s, "batch", broken)
    with pytest.raises(OSError, match="step 4"):
        next(s.iterate(4))
    assert _prefetchers() == []
