"""Measured sup error of an approximator: random inputs, box corners, and an adversarial local search.

The adversarial search is projected sign-gradient ascent on ``|f_ic - N_ic|`` (finite-difference gradients, so it
works for any NumPy target), started from the worst points of the random and corner samples; each start keeps
the output component that was worst there. It is a lower bound on the true sup error, meant to catch a
certificate that is wrong: a certified bound must stay above everything it finds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from lamina._validation import check_memory, check_positive_int, check_real, check_seed
from lamina.errors import InputError, LipschitzWarning
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
    check_positive_int("steps", steps, minimum=0)
    step_size = check_real("step_size", step_size, low=0.0, low_open=True, allow_none=True)
    fd = check_real("fd", fd, low=0.0, low_open=True)
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


def check_inputs_memory(name: str, target: Target, num: int) -> None:
    """Refuse, before they are drawn, ``num`` test inputs of ``target`` that cannot fit in the memory available (the
    inputs, their concatenated copy and the two outputs compared, float64)."""
    check_memory(name, 8 * num * target.n * (2 * target.d + 2 * target.d_out),
                 f"drawing {num:,} test inputs of {target.n} x {target.d}", hint="use fewer")


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
    for name, value in (("num_corners", num_corners), ("starts", starts), ("steps", steps)):
        check_positive_int(name, value, minimum=0)
    seed = check_seed("seed", seed)
    check_positive_int("batch", batch)
    check_inputs_memory("num_random (CLI: --verify-random)", target, num_random + num_corners)
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


_FD_BLOCK = 1 << 18  # coordinates (2 MiB of float64) per block of finite-difference probes or their values


def lipschitz_lower_bound(target: Target, *, num: int = 256, seed: int = 0, rel_step: float = 1e-4) -> float:
    """A measured lower bound on the max-norm Lipschitz constant of ``target`` (over all output components).

    Every value is a true difference quotient ``|f_ic(x) - f_ic(x')| / max|x - x'|`` of two points of the box, so
    the result is ``<=`` the true constant (up to rounding): random pairs, finite-difference steps along each axis
    from random points and box corners, and, per point, a step along the sign of the finite-difference gradient of
    its steepest output component (where the max-norm slope ``||grad f_ic||_1`` is reached). A Lipschitz constant
    below it is wrong, and a certificate computed with it could come out below the true error.

    Args:
        target: the map.
        num: sample points (the cost is about ``num * (n d + 3)`` evaluations).
        seed: seeds the points.
        rel_step: the finite-difference step as a fraction of the box width.
    """
    num = check_positive_int("num", num)
    a, b = target.domain
    n, d = target.n, target.d
    dim = n * d
    h = rel_step * (b - a)
    rng = np.random.default_rng(seed)

    def fn(flat: np.ndarray) -> np.ndarray:
        return target(flat.reshape(len(flat), n, d)).reshape(len(flat), -1)  # (P, K)

    def quotient(x: np.ndarray, xp: np.ndarray, fx: np.ndarray, fxp: np.ndarray) -> float:
        dist = np.abs(xp - x).max(axis=1)
        ok = dist > 0
        if not ok.any():
            return 0.0
        return float((np.abs(fxp - fx)[ok].max(axis=1) / dist[ok]).max())

    x = rng.uniform(a, b - h, size=(num, dim))  # room for a step up along every axis
    x[: num // 4] = np.where(rng.random((num // 4, dim)) < 0.5, a, b - h)  # slopes are often steepest at corners
    fx = fn(x)
    xp = rng.uniform(a, b, size=(num, dim))
    best = quotient(x, xp, fx, fn(xp))
    # finite differences cost dim evaluations of dim coordinates per point: at most ~16M coordinates in all (every
    # point for n d <= 250; a random subset, corners included in proportion, beyond), evaluated in blocks of
    # points x axes that hold at most _FD_BLOCK coordinates in and out, so memory stays at a few MB for any n d
    grad_points = rng.permutation(num)[: max(8, min(num, (1 << 24) // (dim * dim)))]
    k_out = fx.shape[1]
    width = max(dim, k_out)
    rows = max(1, _FD_BLOCK // (dim * width))  # points per block
    for s in range(0, len(grad_points), rows):
        xs, fs = x[grad_points[s : s + rows]], fx[grad_points[s : s + rows]]  # (P, dim), (P, K)
        p = len(xs)
        l1 = np.zeros((p, k_out))  # (P, K) ||grad f_k||_1 at each point
        signs = np.empty((p, dim, k_out), dtype=np.int8)  # sign of every partial derivative
        cols = max(1, _FD_BLOCK // (p * width))  # axes per block
        for j0 in range(0, dim, cols):
            axes = np.arange(j0, min(dim, j0 + cols))
            probes = np.repeat(xs[:, None, :], len(axes), axis=1)  # (P, A, dim)
            probes[:, np.arange(len(axes)), axes] += h
            grad = (fn(probes.reshape(-1, dim)).reshape(p, len(axes), k_out) - fs[:, None, :]) / h  # (P, A, K)
            best = max(best, float(np.abs(grad).max()))
            l1 += np.abs(grad).sum(axis=1)
            signs[:, axes] = np.sign(grad)
        k = np.argmax(l1, axis=1)  # (P,) the steepest component at each point
        pick = np.arange(p)
        step = np.clip(xs + h * signs[pick, :, k], a, b)  # (P, dim)
        best = max(best, quotient(xs, step, fs[pick, k][:, None], fn(step)[pick, k][:, None]))
    return best


def check_lipschitz(t: Target, lip_f: float, *, user: bool, seed: int) -> None:
    """Refuse a Lipschitz constant below one measured on sample pairs (a certificate built on it could lie);
    warn when a user's constant undercuts the target's own proven one."""
    measured = lipschitz_lower_bound(t, seed=seed)
    if lip_f < measured * (1.0 - 1e-6):
        raise InputError(
            f"lipschitz: {lip_f:g} is below {measured:.6g}, a difference quotient |f(x) - f(x')| / max|x - x'| "
            f"measured on target {t.name!r} over its box {t.domain}; a certificate computed with it would be wrong. "
            "Pass an upper bound of the max-norm Lipschitz constant of every output component"
        )
    own = t.lipschitz
    if user and own is not None and lip_f < own:
        warnings.warn(
            f"lipschitz: {lip_f:g} is below the target's own bound {own:g} ({t.name!r}); the certificate is only "
            "as good as the constant you pass",
            LipschitzWarning,
            stacklevel=4,
        )


def check_against_samples(c, lip_f: float | None, *, seed: int = 0, num: int = 512) -> None:
    """Refuse a certificate that a sample of random inputs and box corners already proves wrong."""
    t = c.target
    rng = np.random.default_rng([seed, 17])
    x = rng.uniform(*t.domain, size=(num, t.n, t.d))
    x[: num // 4] = np.where(rng.random((num // 4, t.n, t.d)) < 0.5, t.domain[0], t.domain[1])  # corners
    seen = float(np.abs(c(x) - t(x)).max())
    total = c.certificate.total
    if seen > total * (1.0 + 1e-9) + getattr(c.certificate, "rounding_floor", 0.0):
        what = f"the Lipschitz constant {lip_f:g} is too small" if lip_f is not None else "it is wrong"
        raise InputError(
            f"lipschitz: the certificate {total:.4g} is below an error {seen:.4g} measured at a sample input of "
            f"target {t.name!r}: {what}; pass an upper bound of the max-norm Lipschitz constant"
        )
