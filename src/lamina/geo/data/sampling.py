"""Pixel sampling for pretraining: random pixels and months, read window by window, with a spatial hold-out.

The sampler never loads a stack: each batch draws ``n_windows`` tiles of the stack's reference grid (with
probability proportional to their number of eligible pixels), reads those windows, and draws pixels (uniform
within the pixel, so coordinates are continuous) and months inside them. A batch is a pure function of
``(seed, step, rank)``, so training resumes reproducibly and data-parallel ranks see different pixels.

Validation is spatial: the globe is cut into ``block_deg`` x ``block_deg`` blocks and a seeded random
``val_fraction`` of them is held out entirely (not random pixels, whose neighbours would leak into training).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lamina._validation import check_choice
from lamina.geo.data.grid import BLOCK_ID_STRIDE, Grid, block_ids
from lamina.geo.data.rasters import RasterStack
from lamina.geo.data.readers import ArrayReader


@dataclass(frozen=True)
class SpatialSplit:
    """Hold out whole ``block_deg``-degree blocks for validation.

    Attributes:
        block_deg: block size in degrees (divides 180).
        val_fraction: fraction of blocks held out (0 disables validation).
        seed: which blocks.
    """

    block_deg: float = 10.0
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a value in [0, 1), got {self.val_fraction}")
        if self.block_deg <= 0 or abs(180.0 / self.block_deg - round(180.0 / self.block_deg)) > 1e-9:
            raise ValueError(f"block_deg: expected a divisor of 180, got {self.block_deg}")

    @property
    def _table(self) -> np.ndarray:
        n_lat = round(180.0 / self.block_deg)
        n_lon = round(360.0 / self.block_deg)
        return np.random.default_rng([self.seed, 7919]).random((n_lat, n_lon)) < self.val_fraction

    def is_validation(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """(N,) bool: the point lies in a held-out block (blocks as :func:`lamina.geo.data.grid.block_ids`)."""
        table = self._table
        i, j = np.divmod(block_ids(lon=lon, lat=lat, block_deg=self.block_deg, wrap_lon=True), BLOCK_ID_STRIDE)
        return table[np.clip(i, 0, table.shape[0] - 1), np.clip(j, 0, table.shape[1] - 1)]


SURFACES = ("any", "land", "sea")


@dataclass
class Batch:
    """A batch of samples: coordinates in degrees, months 1..12, targets in physical units (NaN = no data)."""

    lon: np.ndarray  # (B,) float64
    lat: np.ndarray  # (B,) float64
    month: np.ndarray  # (B,) int64
    values: np.ndarray  # (B, V) float32

    def __len__(self) -> int:
        return self.lon.size


class _Batches:
    """``fixed_set`` and ``iterate`` for any sampler with a deterministic ``batch(step)``."""

    def fixed_set(self, n: int, *, seed_offset: int = 10**6) -> Batch:
        """A fixed set of ``n`` samples (e.g. the validation set), drawn from batches far from training steps."""
        parts, have, k = [], 0, 0
        while have < n:
            b = self.batch(seed_offset + k)
            parts.append(b)
            have += len(b)
            k += 1
        cat = lambda name: np.concatenate([getattr(b, name) for b in parts])[:n]  # noqa: E731
        return Batch(cat("lon"), cat("lat"), cat("month"), cat("values"))

    def iterate(self, start_step: int = 0, *, prefetch: int = 2) -> Iterator[tuple[int, Batch]]:
        """Yield ``(step, batch)`` from ``start_step`` on, preparing the next batches in a background thread.

        Close the iterator (``it.close()`` or ``contextlib.closing``) when done: closing stops the thread and waits
        for it, so that no thread is left reading rasters while the interpreter shuts down (which can abort the
        process).
        """
        q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()

        def offer(item) -> None:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def work():
            step = start_step
            try:
                while not stop.is_set():
                    offer((step, self.batch(step)))
                    step += 1
            except BaseException as exc:  # surface errors in the consumer
                offer(exc)

        th = threading.Thread(target=work, name="lamina-batch-prefetch", daemon=True)
        th.start()
        try:
            while True:
                item = q.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            if not sys.is_finalizing():  # at interpreter exit the thread can no longer run, so it cannot end
                th.join()


class PixelSampler(_Batches):
    """Random (pixel, month) samples of a stack, restricted to land and to one side of a spatial split.

    Args:
        stack: the raster stack.
        batch_size: samples per batch (per rank).
        split: the spatial hold-out; ``part`` says which side to draw from.
        part: ``"train"`` or ``"val"``.
        land_only: draw only pixels whose centre is land (GLOBE 30'' mask); same as ``surface="land"``.
        surface: ``"any"``, ``"land"`` or ``"sea"``: which pixels are eligible (by the GLOBE 30'' mask).
        n_windows: tiles read per batch.
        tile: tile size in reference-grid pixels (default: about 2 degrees).
        months_per_window: distinct months read per tile (12 = a random month for every pixel; fewer saves
            reads on disk-backed stacks).
        seed: base seed; batch ``k`` of rank ``r`` uses ``(seed, k, r)``.
        rank: data-parallel rank.
    """

    def __init__(self, stack: RasterStack, *, batch_size: int = 8192, split: SpatialSplit | None = None,
                 part: str = "train", land_only: bool = False, n_windows: int = 64, tile: int | None = None,
                 months_per_window: int = 12, seed: int = 0, rank: int = 0, surface: str = "any"):
        check_choice("part", part, ("train", "val"))
        check_choice("surface", surface, SURFACES)  # an InputError, which is a ValueError
        if land_only:
            surface = "land"
        self.stack, self.batch_size, self.part = stack, int(batch_size), part
        self.split = split or SpatialSplit(val_fraction=0.0)
        self.surface, self.land_only, self.n_windows = surface, surface == "land", int(n_windows)
        self.months_per_window = int(np.clip(months_per_window, 1, 12))
        self.seed, self.rank = int(seed), int(rank)
        self.grid: Grid = stack.reference_grid
        self.tile = int(tile or max(1, round(2.0 / self.grid.dlon)))
        self._tile_weights = self._eligible_counts()
        if self._tile_weights.sum() == 0:
            raise ValueError(f"no eligible pixels for part={part!r} (surface={surface!r}, split={self.split})")
        self._cum = np.cumsum(self._tile_weights.ravel())

    # eligibility ---------------------------------------------------------------------------------------------
    def _eligible(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
        lon, lat = self.grid.centres(rows.ravel(), cols.ravel())
        lat = np.clip(lat, -90.0, 90.0)
        ok = ~self.split.is_validation(lon, lat) if self.part == "train" else self.split.is_validation(lon, lat)
        if self.surface != "any":
            from lamina.geo.data.landmask import is_land

            ok &= is_land(lon, lat) if self.surface == "land" else ~is_land(lon, lat)
        return ok.reshape(rows.shape)

    def _eligible_counts(self) -> np.ndarray:
        t, g = self.tile, self.grid
        n_tr, n_tc = -(-g.height // t), -(-g.width // t)
        counts = np.zeros((n_tr, n_tc), dtype=np.int64)
        for i in range(n_tr):
            band = self._eligible(i * t, min((i + 1) * t, g.height), 0, g.width)  # (rows, W)
            pad = (-band.shape[1]) % t
            band = np.pad(band, ((0, 0), (0, pad)))
            counts[i] = band.reshape(band.shape[0], n_tc, t).sum(axis=(0, 2))
        return counts

    @property
    def n_eligible_pixels(self) -> int:
        return int(self._tile_weights.sum())

    # drawing -------------------------------------------------------------------------------------------------
    def batch(self, step: int) -> Batch:
        """The batch of ``step`` (deterministic in seed, step, rank)."""
        rng = np.random.default_rng([self.seed, int(step), self.rank, 0 if self.part == "train" else 1])
        t, g = self.tile, self.grid
        n_tc = self._tile_weights.shape[1]
        picks = np.searchsorted(self._cum, rng.integers(0, self._cum[-1], self.n_windows), side="right")
        per = np.full(self.n_windows, self.batch_size // self.n_windows)
        per[: self.batch_size % self.n_windows] += 1
        lons, lats, months, rows, cols, windows = [], [], [], [], [], []
        for k, tile_id in enumerate(picks):
            tr, tc = divmod(int(tile_id), n_tc)
            r0, c0 = tr * t, tc * t
            r1, c1 = min(r0 + t, g.height), min(c0 + t, g.width)
            ok = np.flatnonzero(self._eligible(r0, r1, c0, c1).ravel())
            idx = ok[rng.integers(0, ok.size, per[k])]
            rr, cc = r0 + idx // (c1 - c0), c0 + idx % (c1 - c0)
            choices = rng.choice(12, self.months_per_window, replace=False) + 1
            months.append(choices[rng.integers(0, self.months_per_window, per[k])])
            lon, lat = g.centres(rr + rng.random(per[k]) - 0.5, cc + rng.random(per[k]) - 0.5)
            lons.append(lon)
            lats.append(np.clip(lat, -90.0, 90.0))
            rows.append(rr)
            cols.append(cc)
            windows.append((r0, r1, c0, c1))
        lon, lat = np.concatenate(lons), np.concatenate(lats)
        month = np.concatenate(months).astype(np.int64)
        values = np.empty((lon.size, len(self.stack.fields)), dtype=np.float32)
        for j, f in enumerate(self.stack.fields):
            in_memory = isinstance(f.reader, ArrayReader) and isinstance(f.reader.data, np.ndarray)
            if f.grid == self.grid and f.interpolation == "nearest" and not in_memory:
                start = 0  # disk-backed field on the sampling grid: one window read per tile and month
                for rr, cc, mo, (r0, r1, c0, c1) in zip(rows, cols, months, windows, strict=True):
                    col = values[start : start + rr.size, j]
                    layers = f.layer(mo)
                    for layer in np.unique(layers):
                        sel = layers == layer
                        win = f.reader.read(int(layer), r0, r1, c0, c1)
                        col[sel] = win[rr[sel] - r0, cc[sel] - c0]
                    start += rr.size
            else:
                values[:, j] = f.values_at(lon, lat, month)
        return Batch(lon, lat, month, values)



class LandShareSampler(_Batches):
    """Batches with a fixed share of land pixels: ``land_share`` of each batch from land, the rest from sea.

    Pixel-uniform sampling gives land about 29% of the samples (its share of the Earth's surface); users of a
    climate encoder mostly query land, so pretraining can weight it up. Land and sea parts are two
    :class:`PixelSampler` s with seeds derived from ``seed``, so a batch stays a pure function of (seed, step, rank).

    Args:
        stack, batch_size, split, part, n_windows, months_per_window, seed, rank: as :class:`PixelSampler`
            (``n_windows`` is shared between the two parts in proportion).
        land_share: fraction of every batch drawn from land pixels, in (0, 1).
    """

    def __init__(self, stack: RasterStack, *, land_share: float, batch_size: int = 8192,
                 split: SpatialSplit | None = None, part: str = "train", n_windows: int = 64,
                 months_per_window: int = 12, seed: int = 0, rank: int = 0):
        if not 0.0 < float(land_share) < 1.0:
            raise ValueError(f"land_share: expected a value in (0, 1), got {land_share}")
        self.land_share, self.batch_size, self.part = float(land_share), int(batch_size), part
        n_land = min(max(1, round(self.land_share * self.batch_size)), self.batch_size - 1)
        w_land = min(max(1, round(self.land_share * n_windows)), max(1, n_windows - 1))
        kw = dict(split=split, part=part, months_per_window=months_per_window, rank=rank)
        self.land = PixelSampler(stack, batch_size=n_land, surface="land", n_windows=w_land, seed=seed, **kw)
        self.sea = PixelSampler(stack, batch_size=self.batch_size - n_land, surface="sea",
                                n_windows=max(1, n_windows - w_land), seed=seed + 104_729, **kw)
        self.stack, self.grid = stack, self.land.grid

    def batch(self, step: int) -> Batch:
        """The batch of ``step``: land samples first, then sea (deterministic in seed, step, rank)."""
        a, b = self.land.batch(step), self.sea.batch(step)
        return Batch(*(np.concatenate([getattr(a, k), getattr(b, k)]) for k in ("lon", "lat", "month", "values")))
