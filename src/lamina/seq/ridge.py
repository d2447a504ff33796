"""Ridge-function networks: the one-hidden-layer ReLU maps the construction puts in the feed-forward layer.

One output component is ``N(g) = const + sum_u w_u ReLU(theta_u . g - t_u)`` on the box ``[a, b]^D``. Units that
share a direction form a 1-D piecewise-linear function of ``theta . g`` whose slopes are the running sums of their
weights, so the network's max-norm Lipschitz constant is exact: ``sum_m max_k |slope_mk| * ||theta_m||_1``.

Two ways to choose the units:

- :func:`interpolate_ridge` (a priori): a target that *is* a ridge sum ``sum_m g_m(theta_m . x)`` gets, per term,
  the piecewise-linear interpolant of ``g_m`` at uniform knots (plus its kinks), with the classical bound
  ``step^2 / 8 * sup|g_m''|`` per term.
- :func:`fit_ridge` (a posteriori): any target, least squares over ``ReLU(theta_m . x - t_k)`` on ``M`` directions
  and ``S`` knots; the error is then certified on a grid (:mod:`lamina.seq.certify`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lamina.seq.targets import RidgeSum


@dataclass
class RidgeNet:
    """``K`` output components sharing units: ``N(g) = const + ReLU(g @ theta.T - t) @ w``.

    Attributes:
        theta: ``(U, D)`` unit directions.
        t: ``(U,)`` thresholds.
        w: ``(U, K)`` output weights.
        const: ``(K,)`` constant terms.
        group: ``(U,)`` index of the direction each unit belongs to (units of a group share ``theta``).
    """

    theta: np.ndarray
    t: np.ndarray
    w: np.ndarray
    const: np.ndarray
    group: np.ndarray

    @property
    def width(self) -> int:
        return len(self.t)

    def __call__(self, g: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """Evaluate on ``g: (P, D)`` -> ``(P, K)``."""
        out = np.empty((len(g), self.w.shape[1]))
        for s in range(0, len(g), chunk):
            z = g[s : s + chunk] @ self.theta.T - self.t  # (P, U)
            out[s : s + chunk] = np.maximum(z, 0.0) @ self.w + self.const
        return out

    def lipschitz(self) -> np.ndarray:
        """Exact max-norm Lipschitz constant of each output on the box, ``(K,)``.

        Per direction, the slopes of its piecewise-linear function are the running sums of the weights of its
        units in the order of their thresholds (the first threshold is the minimum of the projection).
        """
        total = np.zeros(self.w.shape[1])
        for m in np.unique(self.group):
            idx = np.flatnonzero(self.group == m)
            order = idx[np.argsort(self.t[idx], kind="stable")]
            slopes = np.cumsum(self.w[order], axis=0)  # (U_m, K)
            total += np.max(np.abs(slopes), axis=0) * float(np.abs(self.theta[order[0]]).sum())
        return total


def projection_range(theta: np.ndarray, domain: tuple[float, float]) -> tuple[float, float]:
    """``(min, max)`` of ``theta . g`` over the box ``domain^D``."""
    a, b = domain
    return float(np.minimum(theta * a, theta * b).sum()), float(np.maximum(theta * a, theta * b).sum())


def _allocate(errors_weights: list[float], budget: float) -> list[float]:
    """Split ``budget`` over terms with weights ``(range^2 C)^(1/3)``, which minimises the total number of knots."""
    total = sum(errors_weights)
    return [budget * w / total if total > 0 else 0.0 for w in errors_weights]


def knots_needed(spec: RidgeSum, domain, eps: float) -> int:
    """Number of hidden units :func:`interpolate_ridge` would use for ``spec`` at error ``eps``."""
    return interpolate_ridge(spec, domain, eps, count_only=True)


def interpolate_ridge(spec: RidgeSum, domain, eps: float, *, count_only: bool = False):
    """Piecewise-linear interpolation of every ridge term of ``spec`` so that the summed bound is ``<= eps``.

    Returns:
        ``(net, bound)``: the :class:`RidgeNet` and its a-priori sup-error bound ``sum_m C_m h_m^2 / 8``
        (or the number of units when ``count_only``).
    """
    ranges = [projection_range(term.theta, domain) for term in spec.terms]
    weights = [((hi - lo) ** 2 * term.curvature) ** (1 / 3) for term, (lo, hi) in zip(spec.terms, ranges, strict=True)]
    shares = _allocate(weights, eps)
    thetas, ts, ws, groups = [], [], [], []
    const, bound, units = float(spec.const), 0.0, 0
    for m, (term, (lo, hi), share) in enumerate(zip(spec.terms, ranges, shares, strict=True)):
        if hi - lo <= 1e-15 * max(1.0, abs(lo)):
            const += float(term.fn(np.array([lo]))[0])
            continue
        steps = 1
        if term.curvature > 0:
            steps = max(1, math.ceil((hi - lo) * math.sqrt(term.curvature / (8.0 * share))))
        knots = np.linspace(lo, hi, steps + 1)
        inner = [k for k in term.kinks if lo < k < hi]
        knots = np.unique(np.concatenate([knots, inner]))
        if count_only:
            units += len(knots) - 1
            continue
        values = np.asarray(term.fn(knots), dtype=np.float64)
        slopes = np.diff(values) / np.diff(knots)  # (K - 1,)
        if term.curvature > 0:
            bound += term.curvature * float(np.max(np.diff(knots))) ** 2 / 8.0
        const += float(values[0])
        jumps = np.concatenate([[slopes[0]], np.diff(slopes)])  # weight of ReLU(s - knot_k), k = 0..K-2
        keep = np.flatnonzero(np.abs(jumps) > 0)
        for k in keep:
            thetas.append(term.theta)
            ts.append(knots[k])
            ws.append(jumps[k])
            groups.append(m)
    if count_only:
        return units
    d = len(spec.terms[0].theta) if spec.terms else 0
    net = RidgeNet(
        theta=np.array(thetas).reshape(-1, d),
        t=np.array(ts, dtype=np.float64),
        w=np.array(ws, dtype=np.float64).reshape(-1, 1),
        const=np.array([const]),
        group=np.array(groups, dtype=np.int64),
    )
    return net, bound


def directions(dim: int, count: int, *, seed: int = 0) -> np.ndarray:
    """``count`` unit directions in ``R^dim`` spread over a half-sphere: ``(count, dim)``.

    1-D: ``[1]``. 2-D: angles ``pi m / count``. 3-D: a Fibonacci spiral on the upper half-sphere. Higher: Gaussian
    directions drawn from ``seed`` (a ridge fit beyond 3 inputs is not certifiable at useful cost anyway).
    """
    if dim == 1:
        return np.ones((1, 1))
    if dim == 2:
        ang = np.pi * np.arange(count) / count
        return np.stack([np.cos(ang), np.sin(ang)], axis=1)
    if dim == 3:
        k = np.arange(count) + 0.5
        z = k / count  # upper half-sphere, z in (0, 1)
        phi = np.pi * (1 + 5**0.5) * k
        r = np.sqrt(1 - z * z)
        return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    v = np.random.default_rng(seed).standard_normal((count, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def box_grid(dim: int, per_axis: int, domain) -> np.ndarray:
    """All points of the regular grid with ``per_axis`` points per axis on ``domain^dim``: ``(per_axis^dim, dim)``."""
    axes = [np.linspace(domain[0], domain[1], per_axis)] * dim
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)


def fit_points(dim: int, width: int, n_knots: int, domain, rng: np.random.Generator) -> np.ndarray:
    """Where :func:`fit_ridge` samples the target: a grid with ``8 S + 1`` (1-D) or ``2 S + 1`` (2-D) points per
    axis, or ``6 * width`` uniform random points in 3-D and more. ``(P, dim)``."""
    if dim == 1:
        return box_grid(1, 8 * n_knots + 1, domain)
    if dim == 2:
        return box_grid(2, 2 * n_knots + 1, domain)
    return rng.uniform(domain[0], domain[1], size=(6 * width, dim))


def fit_ridge(fn, dim: int, domain, *, n_dirs: int, n_knots: int, points: np.ndarray,
              ridge: float = 1e-10) -> RidgeNet:
    """Least-squares ridge network for ``fn: (P, dim) -> (P, K)`` on ``domain^dim`` (all outputs share the units).

    Units ``ReLU(theta_m . x - t_mk)`` with ``n_dirs`` directions (1 in 1-D) and ``n_knots`` thresholds per
    direction, uniform from the minimum of ``theta_m . x`` on the box (so the first unit is the affine part);
    output weights and the constant by ridge-regularised least squares on ``points: (P, dim)``.
    """
    dirs = directions(dim, n_dirs)
    thetas, ts, groups = [], [], []
    for m, theta in enumerate(dirs):
        lo, hi = projection_range(theta, domain)
        for t in lo + (hi - lo) * np.arange(n_knots) / n_knots:
            thetas.append(theta)
            ts.append(t)
            groups.append(m)
    theta, t = np.array(thetas), np.array(ts)
    y = np.asarray(fn(points), dtype=np.float64).reshape(len(points), -1)  # (P, K)
    a = points @ theta.T
    a -= t
    np.maximum(a, 0.0, out=a)  # (P, U) features, in place
    mean_f, mean_y = a.mean(axis=0), y.mean(axis=0)
    a -= mean_f
    scale = np.sqrt(np.einsum("pu,pu->u", a, a)) + 1e-300
    a /= scale
    gram = a.T @ a
    gram[np.diag_indices_from(gram)] += ridge
    coef = np.linalg.solve(gram, a.T @ (y - mean_y)) / scale[:, None]  # (U, K)
    return RidgeNet(theta=theta, t=t, w=coef, const=mean_y - mean_f @ coef, group=np.array(groups))
