"""Measured sup error of an approximator: random inputs, box corners, and an adversarial local search.

The adversarial search is projected sign-gradient ascent on ``|f_ic - N_ic|`` (finite-difference gradients, so it
works for any NumPy target), started from the worst points of the random and corner samples; each start keeps
the output component that was worst there. It is a lower bound on the true sup error, meant to catch a
certificate that is wrong: a certified bound must stay above everything it finds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lamina._validation import check_positive_int
from lamina.seq.targets import Target


def corner_inputs(target: Target, num: int, rng: np.random.Generator) -> np.ndarray:
    """``num`` random vertices of the box (every feature at ``a`` or ``b``): ``(num, n, d)``.

    Corners maximise the spread between tokens, which is where attention leakage hurts most.
    """
    a, b = target.domain
    return np.where(rng.random((num, target.n, target.d)) < 0.5, a, b)


def _error(model_fn, target, x):
    return np.asarray(model_fn(x), dtype=np.float64) - target(x)  # (B, n, d_out)


def adversarial_search(
    model_fn: Callable[[np.ndarray], np.ndarray],
    target: Target,
    starts: np.ndarray,
    *,
    steps: int = 30,
    step_size: float | None = None,
    fd: float = 1e-6,
) -> tuple[float, np.ndarray]:
    """Projected sign-gradient ascent on ``|f - N|`` from each start; returns the largest error and its input.

    Args:
        model_fn: the approximator, ``(B, n, d) -> (B, n, d_out)``.
        target: the map it approximates (its box bounds the search).
        starts: ``(S, n, d)`` starting inputs.
        steps: ascent steps per start.
        step_size: initial max-norm step (default: a tenth of the box width); halved when a step does not help.
        fd: finite-difference step.

    Returns:
        ``(error, x)``: the largest ``|f_ic(x) - N_ic(x)|`` found and ``x: (n, d)``.
    """
    a, b = target.domain
    x = np.clip(np.asarray(starts, dtype=np.float64), a, b)
    num, n, d = x.shape
    dim = n * d
    err0 = _error(model_fn, target, x).reshape(num, -1)  # (S, n * d_out)
    comp = np.argmax(np.abs(err0), axis=1)  # the output component each start follows
    sign = np.sign(err0[np.arange(num), comp])
    sign[sign == 0] = 1.0
    best = np.abs(err0[np.arange(num), comp])
    step = np.full(num, (b - a) / 10.0 if step_size is None else float(step_size))
    flat = x.reshape(num, dim)
    eye = np.eye(dim)

    def objective(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
        e = _error(model_fn, target, points.reshape(-1, n, d)).reshape(len(points), -1)
        return sign[rows] * e[np.arange(len(points)), comp[rows]]

    for _ in range(steps):
        direction = np.where(flat + fd <= b, 1.0, -1.0)  # (S, D): step inwards at the upper face
        probes = flat[:, None, :] + fd * direction[:, None, :] * eye[None]  # (S, D, D)
        rows = np.repeat(np.arange(num), dim)
        vals = objective(probes.reshape(-1, dim), rows).reshape(num, dim)
        grad = (vals - best[:, None]) / (fd * direction)  # (S, D) d objective / d x
        cand = np.clip(flat + step[:, None] * np.sign(grad), a, b)
        new = objective(cand, np.arange(num))
        better = new > best
        flat = np.where(better[:, None], cand, flat)
        best = np.where(better, new, best)
        step = np.where(better, step, step / 2.0)
    i = int(np.argmax(best))
    return float(best[i]), flat[i].reshape(n, d)


def sup_error(
    model_fn: Callable[[np.ndarray], np.ndarray],
    target: Target,
    *,
    num_random: int = 10_000,
    num_corners: int = 1_000,
    starts: int = 8,
    steps: int = 30,
    seed: int = 0,
    batch: int = 4096,
) -> dict:
    """Largest ``|f - N|`` over random inputs, random corners, and an adversarial search from the worst of them.

    Returns:
        ``{"random", "corners", "adversarial", "max"}`` errors and ``"argmax"``: the worst input ``(n, d)``.
    """
    check_positive_int("num_random", num_random)
    rng = np.random.default_rng(seed)
    x_rand = rng.uniform(*target.domain, size=(num_random, target.n, target.d))
    x_corner = corner_inputs(target, num_corners, rng) if num_corners else x_rand[:0]
    pts = np.concatenate([x_rand, x_corner])
    errs = np.concatenate([
        np.abs(_error(model_fn, target, pts[s : s + batch])).reshape(min(batch, len(pts) - s), -1).max(axis=1)
        for s in range(0, len(pts), batch)
    ])
    out = {
        "random": float(errs[:num_random].max()),
        "corners": float(errs[num_random:].max()) if num_corners else 0.0,
    }
    worst = pts[np.argsort(errs)[::-1][:starts]]
    if starts:
        adv, x_adv = adversarial_search(model_fn, target, worst, steps=steps)
    else:
        adv, x_adv = 0.0, worst[0] if len(worst) else None
    out["adversarial"] = adv
    out["max"] = max(out["random"], out["corners"], adv)
    out["argmax"] = x_adv if adv >= max(out["random"], out["corners"]) else pts[int(np.argmax(errs))]
    return out
