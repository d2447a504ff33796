"""In-context linear regression, and the exact comparison of a trained linear-attention layer with one GD step.

A prompt holds ``N`` examples ``(x_i, y_i)`` with ``x_i ~ N(0, I_d)``, ``y_i = w . x_i + noise`` for a weight
``w ~ N(0, I_d)`` drawn per prompt, then a query token ``(x_q, 0)``; the task is ``y_q = w . x_q``. Tokens are
``(x, y)`` in ``R^(d+1)``; only the last position is scored.

One step of gradient descent from ``w = 0`` on ``sum_i (y_i - w . x_i)^2 / (2N)`` with step ``eta`` predicts
``eta * x_q . (sum_i y_i x_i) / N``. For isotropic Gaussian inputs its best step is ``eta* = N / (N + d + 1 +
sigma^2)`` (from ``E[S^2] = (N + d + 1) / N * I`` for ``S = sum_i x_i x_i^T / N``). Mahankali et al. (2023) prove
that the loss-minimising one-layer linear self-attention implements exactly this step;
:func:`compare_with_gd` checks a trained layer against it by fitting the trained predictions with the bilinear
form ``x_q^T Gamma h`` (``h = sum_i y_i x_i / N``) and comparing ``Gamma`` with ``eta* I``.
"""

from __future__ import annotations

import numpy as np

from lamina._validation import check_positive_int, check_real, check_seed


class InContextRegression:
    """The in-context linear-regression task (a sampler, not a map on a box).

    Args:
        n_context: examples per prompt ``N`` (the sequence has ``N + 1`` tokens).
        d: input dimension of the regression (tokens have ``d + 1`` features).
        noise: standard deviation of the label noise.
    """

    name = "icl-regression"
    positions = (-1,)

    def __init__(self, n_context: int = 20, d: int = 5, *, noise: float = 0.0):
        self.n_context = check_positive_int("n_context", n_context)
        self.dx = check_positive_int("d", d)
        self.noise = check_real("noise", noise, low=0.0)
        self.n, self.d, self.d_out = self.n_context + 1, self.dx + 1, 1

    def describe(self) -> dict:
        return {"name": self.name, "n_context": self.n_context, "d": self.dx, "noise": self.noise,
                "n": self.n, "token_features": self.d, "eta_star": self.eta_star}

    def sample(self, num: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``num`` prompts: tokens ``(num, N + 1, d + 1)`` and targets ``(num, N + 1, 1)`` (only the last is used)."""
        x = rng.standard_normal((num, self.n, self.dx))
        w = rng.standard_normal((num, self.dx))
        y = np.einsum("bnd,bd->bn", x, w) + self.noise * rng.standard_normal((num, self.n))
        tokens = np.concatenate([x, y[..., None]], axis=-1)
        tokens[:, -1, -1] = 0.0  # the query's label is hidden
        target = np.zeros((num, self.n, 1))
        target[:, -1, 0] = y[:, -1]
        return tokens, target

    @property
    def eta_star(self) -> float:
        """Best step of one GD step for this task: ``N / (N + d + 1 + sigma^2)``."""
        return self.n_context / (self.n_context + self.dx + 1 + self.noise**2)

    def moment(self, tokens: np.ndarray) -> np.ndarray:
        """``h = sum_i y_i x_i / N`` over the context: ``(B, d)``."""
        x, y = tokens[:, :-1, : self.dx], tokens[:, :-1, self.dx]
        return np.einsum("bn,bnd->bd", y, x) / self.n_context

    def gd_one_step(self, tokens: np.ndarray, eta: float | None = None) -> np.ndarray:
        """Prediction of one GD step from 0 with step ``eta`` (default ``eta*``): ``(B,)``."""
        eta = self.eta_star if eta is None else float(eta)
        return eta * np.einsum("bd,bd->b", tokens[:, -1, : self.dx], self.moment(tokens))

    def least_squares(self, tokens: np.ndarray) -> np.ndarray:
        """Prediction of the (minimum-norm) least-squares fit of the context: ``(B,)``."""
        x, y, xq = tokens[:, :-1, : self.dx], tokens[:, :-1, self.dx], tokens[:, -1, : self.dx]
        w = np.einsum("bdn,bn->bd", np.linalg.pinv(x), y)  # (B, d), batched minimum-norm solution
        return np.einsum("bd,bd->b", xq, w)


def compare_with_gd(predict, task: InContextRegression, *, num: int = 4000, seed: int = 0) -> dict:
    """Compare a trained model's query predictions with one GD step and with least squares on fresh prompts.

    Args:
        predict: the model, ``(B, N + 1, d + 1) -> (B, N + 1, 1)``.
        task: the task it was trained on.
        num: test prompts.
        seed: seeds the prompts.

    Returns:
        ``mse`` of the model, of GD with ``eta*``, of GD with the step fitted to the truth, of least squares and of
        predicting 0; ``relative_difference`` ``||pred - gd||^2 / ||gd||^2``; the bilinear fit ``gamma``
        (``d x d``), its ``r2`` on the model's predictions and ``gamma_vs_eta_identity``
        ``||Gamma - eta* I||_F / ||eta* I||_F``.
    """
    seed = check_seed("seed", seed)
    tokens, target = task.sample(num, np.random.default_rng([seed, 7]))
    y = target[:, -1, 0]
    pred = np.asarray(predict(tokens), dtype=np.float64)[:, -1, 0]
    gd = task.gd_one_step(tokens)
    raw = task.gd_one_step(tokens, eta=1.0)
    eta_fit = float(raw @ y / (raw @ raw))
    h, xq = task.moment(tokens), tokens[:, -1, : task.dx]
    feats = np.einsum("bi,bj->bij", xq, h).reshape(num, -1)  # x_q^T Gamma h is linear in vec(x_q h^T)
    coef, *_ = np.linalg.lstsq(feats, pred, rcond=None)
    gamma = coef.reshape(task.dx, task.dx)
    resid = pred - feats @ coef
    eye = task.eta_star * np.eye(task.dx)
    return {
        "mse_model": float(np.mean((pred - y) ** 2)),
        "mse_gd_eta_star": float(np.mean((gd - y) ** 2)),
        "mse_gd_eta_fitted": float(np.mean((eta_fit * raw - y) ** 2)),
        "mse_least_squares": float(np.mean((task.least_squares(tokens) - y) ** 2)),
        "mse_zero": float(np.mean(y**2)),
        "eta_star": task.eta_star,
        "eta_fitted": eta_fit,
        "relative_difference": float(np.sum((pred - gd) ** 2) / np.sum(gd**2)),
        "gamma": gamma,
        "gamma_r2": float(1.0 - np.sum(resid**2) / max(np.sum((pred - pred.mean()) ** 2), 1e-300)),
        "gamma_vs_eta_identity": float(np.linalg.norm(gamma - eye) / np.linalg.norm(eye)),
    }
