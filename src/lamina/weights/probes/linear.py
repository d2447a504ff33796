"""Baselines ProbeX is measured against, on the same splits (scikit-learn style multi-label estimators).

- :class:`DenseLinearProbe`: logistic regression on the whole flattened layer (after the same centring and
  scaling as ProbeX), trained with the same optimiser, batch size and epochs as ProbeX: one weight per input
  number and category.
- :class:`RidgeProbe`: ridge regression on the flattened layer, solved in closed form, penalty by leave-one-out
  (scikit-learn's RidgeCV; with more numbers per layer than models it works on the models' Gram matrix).
- :class:`LowRankProbe`: per category, a few probes of the layer and a read vector for each (a rank-k bilinear
  readout), fitted in closed form from the ridge solution: ``rank * (d_H + d_W) + 1`` numbers per category.
- :class:`StatNN`: per-layer weight statistics (mean, std, quantiles, mean |w|) of every layer, fed to gradient
  boosting, one classifier per category (Unterthiner et al.'s StatNN with boosting in place of the MLP).
- :class:`UpperBound`: data-aware probes that *use images*, to check that what a model was trained on is written in
  its weights: (a) the first layer's change from the root applied to each category's centred mean image
  (:func:`first_layer_response`); (b) the whole model run on each category's images (:func:`behaviour`: how
  consistently and confidently it classifies them). Per category, a logistic regression on its own features.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator
from torch import nn

from lamina._process import torch_seed
from lamina._validation import check_choice, check_positive_int, check_real, check_seed
from lamina.errors import InputError
from lamina.weights._checks import NotFittedError
from lamina.weights.layers import is_head
from lamina.weights.probes._linalg import leading_singular_vectors
from lamina.weights.probes._train import train_bce
from lamina.weights.probes.probex import RIDGE_ALPHAS, count_params, preprocess


class DenseLinearProbe(BaseEstimator):
    """Multi-label logistic regression on the flattened (d_H, d_W) layer."""

    def __init__(self, epochs: int = 40, lr: float = 1e-3, weight_decay: float = 1e-5, batch_size: int = 32,
                 seed: int = 0):
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, X, Y) -> DenseLinearProbe:
        for name in ("epochs", "batch_size"):
            check_positive_int(f"DenseLinearProbe.{name}", getattr(self, name))
        check_real("DenseLinearProbe.lr", self.lr, low=0.0, low_open=True)
        check_real("DenseLinearProbe.weight_decay", self.weight_decay, low=0.0)
        check_seed("DenseLinearProbe.seed", self.seed)
        X = np.asarray(X, np.float32)
        Y = np.asarray(Y, np.float32)
        t0 = time.perf_counter()
        self.mean_ = X.mean(0)
        xt = torch.from_numpy(preprocess(X, self.mean_, True).reshape(len(X), -1))
        yt = torch.from_numpy(Y)
        with torch_seed(self.seed):
            self.net_ = nn.Linear(xt.shape[1], Y.shape[1])
            train_bce(self.net_, xt, yt, epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                      batch_size=self.batch_size, seed=self.seed)
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_params_ = count_params(self.net_)
        return self

    @torch.no_grad()
    def decision_function(self, X) -> np.ndarray:
        X = np.asarray(X, np.float32)
        return self.net_(torch.from_numpy(preprocess(X, self.mean_, True).reshape(len(X), -1))).numpy()

    def predict_proba(self, X) -> np.ndarray:
        return expit(self.decision_function(X))


class RidgeProbe(BaseEstimator):
    """Ridge regression of the 0/1 labels on the flattened layer (closed form); the penalty is picked among
    ``alphas`` by efficient leave-one-out cross-validation on the training models (scikit-learn's RidgeCV)."""

    def __init__(self, alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)):
        self.alphas = alphas

    def fit(self, X, Y) -> RidgeProbe:
        from sklearn.linear_model import RidgeCV

        alphas = _check_alphas("RidgeProbe", self.alphas)
        X, Y = _check_layers_and_labels(X, Y)
        t0 = time.perf_counter()
        self.mean_ = X.mean(0)
        Z = preprocess(X, self.mean_, True).reshape(len(X), -1)
        self.model_ = RidgeCV(alphas=alphas).fit(Z, Y)
        self.alpha_ = float(self.model_.alpha_)
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_params_ = int(Z.shape[1] * np.shape(Y)[1] + np.shape(Y)[1])
        return self

    def decision_function(self, X) -> np.ndarray:
        X = np.asarray(X, np.float32)
        return self.model_.predict(preprocess(X, self.mean_, True).reshape(len(X), -1))

    def predict_proba(self, X) -> np.ndarray:
        return np.clip(self.decision_function(X), 0.0, 1.0)


class LowRankProbe(BaseEstimator):
    """Per category, ``rank`` probes of the layer and a read vector for each: a low-rank bilinear readout.

    The score of category c is ``sum_j a_cj^T W b_cj + bias_c`` for the centred, scaled (d_H, d_W) layer W: the
    probes b_cj (d_W) are the category's own input directions, and the read vectors a_cj (d_H) weigh the layer's
    responses W b_cj. That is ``rank * (d_H + d_W) + 1`` numbers per category, against ``d_H * d_W + 1`` for the
    dense probes. Unlike ProbeX, no probe is shared between categories: on a LoRA tree what tells categories apart
    sits in different directions of the layer for each category, so that a shared low-dimensional view loses it.

    Fit, all in closed form: a dense ridge fit on the flattened layer (as :class:`RidgeProbe`, with the penalty
    picked among this probe's ``alphas``) gives each category's first probes (the top right singular vectors of its
    coefficient matrix); then each of ``steps`` alternating steps refits, per
    category, the read vectors with the probes fixed and the probes with the read vectors fixed, each by ridge
    regression with its penalty picked by leave-one-out among ``alphas``. On the LoRA tree further steps overfit
    (validation mAP falls; ``scripts/weights_lora_structure.py``), hence one by default.
    """

    def __init__(self, rank: int = 2, alphas: tuple[float, ...] = RIDGE_ALPHAS,
                 steps: int = 1):
        self.rank = rank
        self.alphas = alphas
        self.steps = steps

    def fit(self, X, Y) -> LowRankProbe:
        from sklearn.linear_model import RidgeCV

        check_positive_int("LowRankProbe.rank", self.rank)
        check_positive_int("LowRankProbe.steps", self.steps)
        alphas = _check_alphas("LowRankProbe", self.alphas)
        X, Y = _check_layers_and_labels(X, Y)
        t0 = time.perf_counter()
        self.mean_ = X.mean(0)
        Z = preprocess(X, self.mean_, True)
        n, d_h, d_w = Z.shape
        k = min(int(self.rank), d_h, d_w)
        dense = RidgeCV(alphas=alphas).fit(Z.reshape(n, -1), Y)
        coef = np.asarray(dense.coef_, np.float64).reshape(Y.shape[1], d_h, d_w)
        self.read_ = np.zeros((Y.shape[1], d_h, k), np.float32)
        self.probes_ = np.zeros((Y.shape[1], d_w, k), np.float32)
        self.intercept_ = np.zeros(Y.shape[1], np.float32)
        for c in range(Y.shape[1]):
            b = np.zeros((d_w, k), np.float32)  # (d_W, k): the top right singular vectors (zero where rank < k)
            top = leading_singular_vectors(coef[c], k, side="right")
            b[:, :top.shape[1]] = top
            for _ in range(int(self.steps)):
                a = RidgeCV(alphas=alphas).fit((Z @ b).reshape(n, -1), Y[:, c]).coef_.reshape(d_h, k)
                fit = RidgeCV(alphas=alphas).fit(np.einsum("nhw,hk->nwk", Z, a).reshape(n, -1), Y[:, c])
                b = fit.coef_.reshape(d_w, k)
            self.read_[c], self.probes_[c] = a, b
            self.intercept_[c] = fit.intercept_
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_params_ = int(Y.shape[1] * (k * (d_h + d_w) + 1))
        return self

    def decision_function(self, X) -> np.ndarray:
        if not hasattr(self, "probes_"):
            raise NotFittedError("LowRankProbe: not fitted yet; call fit first")
        Z = preprocess(_check_layers(X, self.mean_.shape), self.mean_, True)
        return np.einsum("nhw,chk,cwk->nc", Z, self.read_, self.probes_, optimize=True) + self.intercept_

    def calibrate(self, X, Y) -> LowRankProbe:
        """Fit one sigmoid ``p = expit(s * score + b)`` for all categories on held-out models X (N, d_H, d_W), Y (N, C),
        so that :meth:`predict_proba` gives probabilities (before: the scores clipped to [0, 1])."""
        from sklearn.linear_model import LogisticRegression

        X, y = _check_layers_and_labels(X, Y)
        if y.shape[1] != self.intercept_.size:
            raise InputError(f"Y: expected ({len(X)}, {self.intercept_.size}) labels, got shape {y.shape}")
        scores = self.decision_function(X).ravel()
        y = y.ravel() > 0.5
        if y.all() or not y.any():
            raise InputError("calibrate: the held-out models need both labels (some categories in, some not)")
        lr = LogisticRegression(C=1e4).fit(scores[:, None].astype(np.float64), y)
        self.platt_ = (float(lr.coef_[0, 0]), float(lr.intercept_[0]))
        return self

    def predict_proba(self, X) -> np.ndarray:
        s = self.decision_function(X)
        if getattr(self, "platt_", None) is None:
            return np.clip(s, 0.0, 1.0)
        return expit(self.platt_[0] * s + self.platt_[1]).astype(np.float32)

    # ------------------------------------------------------------------------ storage (a probe's checkpoint)
    def state_tensors(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}mean": self.mean_, f"{prefix}read": self.read_, f"{prefix}probes": self.probes_,
                f"{prefix}intercept": self.intercept_}

    def state_config(self) -> dict:
        return {"rank": int(self.rank), "alphas": [float(a) for a in self.alphas], "steps": int(self.steps),
                "platt": list(getattr(self, "platt_", None) or []), "n_params": self.n_params_,
                "fit_seconds": self.fit_seconds_}

    @classmethod
    def from_state(cls, tensors: dict, doc: dict, prefix: str = "") -> LowRankProbe:
        est = cls(rank=int(doc["rank"]), alphas=tuple(doc["alphas"]), steps=int(doc["steps"]))
        for name in ("mean", "read", "probes", "intercept"):
            setattr(est, f"{name}_", np.asarray(tensors[f"{prefix}{name}"], np.float32))
        est.platt_ = tuple(doc["platt"]) if doc.get("platt") else None
        est.n_params_ = int(doc.get("n_params", 0))
        est.fit_seconds_ = float(doc.get("fit_seconds", float("nan")))
        return est


def _check_alphas(owner: str, alphas) -> tuple[float, ...]:
    """The ridge penalties to choose among: a non-empty sequence of finite numbers > 0."""
    if isinstance(alphas, str | bytes) or not hasattr(alphas, "__len__") or len(alphas) == 0:
        raise InputError(f"{owner}.alphas: expected a non-empty list of penalties > 0, got {alphas!r}")
    return tuple(check_real(f"{owner}.alphas", a, low=0.0, low_open=True) for a in alphas)


def _check_layers(X, shape: tuple[int, int] | None = None) -> np.ndarray:
    """X as float32 (N, d_H, d_W) finite layers (of ``shape`` when given)."""
    X = np.asarray(X, np.float32)
    want = "d_H, d_W" if shape is None else f"{shape[0]}, {shape[1]}"
    if X.ndim != 3 or 0 in X.shape or (shape is not None and X.shape[1:] != tuple(shape)):
        raise InputError(f"X: expected (N, {want}) layers, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InputError("X: a layer holds NaN or infinite values")
    return X


def _check_layers_and_labels(X, Y) -> tuple[np.ndarray, np.ndarray]:
    X, Y = _check_layers(X), np.asarray(Y, np.float32)
    if Y.ndim != 2 or len(Y) != len(X) or Y.shape[1] == 0:
        raise InputError(f"Y: expected ({len(X)}, C) labels, got shape {Y.shape}")
    if not np.isfinite(Y).all():
        raise InputError("Y: a label is NaN or infinite")
    return X, Y


def weight_statistics(state: dict) -> np.ndarray:
    """StatNN features of one model: 8 statistics of every body tensor (sorted by name, head excluded), (F,)."""
    feats = []
    for k in sorted(state):
        if is_head(k):
            continue
        w = np.asarray(state[k], np.float64).ravel()
        q = np.quantile(w, [0.0, 0.25, 0.5, 0.75, 1.0])
        feats.extend([w.mean(), w.std(), np.abs(w).mean(), *q])
    return np.asarray(feats, dtype=np.float32)


class StatNN(BaseEstimator):
    """Gradient boosting on weight statistics, one binary classifier per category."""

    def __init__(self, max_iter: int = 60, seed: int = 0):
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, F, Y) -> StatNN:
        from sklearn.ensemble import HistGradientBoostingClassifier

        check_positive_int("StatNN.max_iter", self.max_iter)
        check_seed("StatNN.seed", self.seed)
        F, Y = np.asarray(F, np.float32), np.asarray(Y)
        t0 = time.perf_counter()
        self.models_: list = []
        for c in range(Y.shape[1]):
            yc = Y[:, c]
            if yc.min() == yc.max():
                self.models_.append(float(yc[0]))
                continue
            m = HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=0.1, random_state=self.seed)
            self.models_.append(m.fit(F, yc))
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_params_ = 0  # trees, not trained weights: reported as n/a
        return self

    def predict_proba(self, F) -> np.ndarray:
        F = np.asarray(F, np.float32)
        cols = [np.full(len(F), m) if isinstance(m, float) else m.predict_proba(F)[:, 1] for m in self.models_]
        return np.stack(cols, axis=1)


def first_layer_response(delta: np.ndarray, means: np.ndarray, kind: str) -> np.ndarray:
    """Response of a first-layer weight change to each category's centred mean image.

    Args:
        delta: the layer's change from the root: (out, 784) for a linear layer, (C_out, 1, k, k) for a convolution.
        means: (C, 28, 28) float32 mean image of each category minus the mean over all categories.
        kind: ``"linear"`` or ``"conv"``.

    Returns:
        (C, F) float32: the change (scaled to unit norm) applied to each mean image (F = out for a linear layer;
        C_out x 7 x 7 average-pooled maps for a convolution).
    """
    check_choice("kind", kind, ("linear", "conv"))
    d = torch.from_numpy(np.ascontiguousarray(delta, dtype=np.float32))
    d = d / max(float(d.norm()), 1e-12)
    x = torch.from_numpy(np.ascontiguousarray(means, dtype=np.float32))
    with torch.no_grad():
        if kind == "linear":
            r = x.reshape(len(x), -1) @ d.T
        else:  # "conv"
            r = nn.functional.avg_pool2d(nn.functional.conv2d(x[:, None], d, padding=d.shape[-1] // 2), 4).flatten(1)
    return r.numpy()


@torch.no_grad()
def behaviour(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """How a whole model treats each category's images: (C, 2) = (share of the most frequent predicted class,
    mean top softmax probability), from images (C, M, 28, 28) float32 in [0, 1]."""
    c, m = images.shape[:2]
    p = torch.softmax(model(torch.from_numpy(images.reshape(c * m, 28, 28))), dim=1).reshape(c, m, -1)
    pred = p.argmax(2).numpy()
    mode = np.array([np.bincount(row).max() / m for row in pred])
    return np.stack([mode, p.max(2).values.mean(1).numpy()], axis=1).astype(np.float32)


class UpperBound(BaseEstimator):
    """Data-aware probe: per category, a logistic regression on that category's own features F[:, c, :]."""

    def fit(self, F, Y) -> UpperBound:
        from sklearn.linear_model import LogisticRegression

        t0 = time.perf_counter()
        F = np.asarray(F, np.float64)
        self.mu_, self.sd_ = F.mean(0), F.std(0) + 1e-9  # (C, k)
        Z = (F - self.mu_) / self.sd_
        self.models_ = []
        for c in range(Y.shape[1]):
            yc = np.asarray(Y)[:, c]
            self.models_.append(float(yc[0]) if yc.min() == yc.max()
                                else LogisticRegression(C=0.1, max_iter=500).fit(Z[:, c], yc))
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def predict_proba(self, F) -> np.ndarray:
        Z = (np.asarray(F, np.float64) - self.mu_) / self.sd_
        cols = [np.full(len(Z), m) if isinstance(m, float) else m.predict_proba(Z[:, c])[:, 1]
                for c, m in enumerate(self.models_)]
        return np.stack(cols, axis=1)
