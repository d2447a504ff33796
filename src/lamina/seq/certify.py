"""A-posteriori certificates: a sup-norm bound for ``|f - N|`` on a box from point evaluations and Lipschitz constants.

For a cube with centre ``c`` and half-width ``r`` (max-norm) and any ``x`` in it::

    |f(x) - N(x)| <= |f(c) - N(c)| + (L(f) + L(N)) * r

with ``L`` the max-norm Lipschitz constants: ``L(f)`` given (by the target, or by the user), ``L(N)`` exact for a
ridge network. :func:`certify_adaptive` covers the box with cubes, evaluates their centres and halves only the
cubes whose bound is still above the target (a branch-and-bound), so the cost concentrates where the error is
near the target. Its worst cost is a uniform grid of about ``((L(f) + L(N)) (b - a) / eps)^D`` points: fine up to
``D = 3`` inputs, hopeless beyond (the curse of dimensionality), which :func:`grid_points_needed` states up front.
The largest centre error is also a *lower* bound on the true sup error, so the truth lies in ``[lower, bound]``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from lamina._validation import check_real
from lamina.seq.ridge import RidgeNet


@dataclass
class CellCertificate:
    """Outcome of :func:`certify_adaptive`.

    Attributes:
        ok: every cube's bound is ``<= target``.
        bound: ``max`` over cubes and outputs of ``|f - N|(centre) + (L(f) + L_k(N)) * half_width`` (when ``ok``).
        lower: the largest ``|f - N|`` seen at a centre (a lower bound on the sup error).
        evaluations: centres evaluated.
        finest_spacing: side of the smallest cube.
        reason: why certification stopped short (empty when ``ok``).
    """

    ok: bool
    bound: float
    lower: float
    evaluations: int
    finest_spacing: float
    reason: str = ""

    def to_dict(self) -> dict:
        return {"ok": self.ok, "bound": self.bound, "lower": self.lower, "evaluations": self.evaluations,
                "finest_spacing": self.finest_spacing, "reason": self.reason}


def grid_points_needed(dim: int, width: float, lipschitz: float, slack: float) -> float:
    """Points of a uniform grid whose Lipschitz slack ``lipschitz * spacing / 2`` is ``<= slack`` on a cube of side
    ``width`` in ``dim`` dimensions: a lower bound on what certifying a sup error ``slack`` can cost."""
    if lipschitz <= 0:
        return 1.0
    per_axis = math.ceil(width * lipschitz / (2.0 * slack))
    return float(per_axis) ** dim


def certify_adaptive(fn, net: RidgeNet, dim: int, domain, *, lipschitz_target: float, target: float,
                     max_evaluations: float = 5e7, start_per_axis: int | None = None,
                     chunk: int = 1 << 16) -> CellCertificate:
    """Branch-and-bound certificate that ``max |fn - net| <= target`` on ``domain^dim``.

    Args:
        fn: the target's components, ``(P, dim) -> (P, K)``.
        net: the ridge network approximating them (``K`` outputs).
        dim: input dimension ``D``.
        domain: ``(a, b)``.
        lipschitz_target: max-norm Lipschitz constant of every component of ``fn`` on the box.
        target: the bound to prove.
        max_evaluations: give up (``ok=False``) after this many centre evaluations.
        start_per_axis: cubes per axis at the start (default: about 4096 cubes in all).
        chunk: centres evaluated at a time.
    """
    lipschitz_target = check_real("lipschitz_target", lipschitz_target, low=0.0)  # a negative one would lie
    target = check_real("target", target, low=0.0, low_open=True)
    a, b = domain
    lip = lipschitz_target + net.lipschitz()  # (K,)
    per_axis = start_per_axis or max(1, round(4096 ** (1.0 / dim)))
    half = (b - a) / (2.0 * per_axis)
    axis = a + half * (2 * np.arange(per_axis) + 1)
    centres = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    offsets = np.array(list(itertools.product((-0.5, 0.5), repeat=dim)))  # (2^D, D) child offsets in units of r
    bound, lower, evaluations = 0.0, 0.0, 0
    while len(centres):
        if evaluations + len(centres) > max_evaluations:
            return CellCertificate(False, math.inf, lower, evaluations, 2 * half,
                                   f"needs more than max_evaluations={max_evaluations:.3g} evaluations")
        failing = []
        for s in range(0, len(centres), chunk):
            pts = centres[s : s + chunk]
            err = np.abs(np.asarray(fn(pts), dtype=np.float64).reshape(len(pts), -1) - net(pts))  # (P, K)
            lower = max(lower, float(err.max()))
            cell = (err + lip * half).max(axis=1)  # (P,)
            ok = cell <= target
            if ok.any():
                bound = max(bound, float(cell[ok].max()))
            failing.append(pts[~ok])
        evaluations += len(centres)
        if lower > target:
            return CellCertificate(False, math.inf, lower, evaluations, 2 * half,
                                   f"the error reaches {lower:.4g} > {target:.4g} at a point")
        centres = np.concatenate(failing)
        if len(centres):
            centres = (centres[:, None, :] + half * offsets[None]).reshape(-1, dim)
            half /= 2.0
    return CellCertificate(True, bound, lower, evaluations, 2 * half)


def certify_tightest(fn, net: RidgeNet, dim: int, domain, lip_f: float, lower: float, cap: float | None,
                     max_evaluations: float) -> CellCertificate:
    """Certify the smallest of a ladder of multiples of the measured error ``lower`` (never above ``cap``) that
    passes :func:`certify_adaptive`; the first failing certificate when none does."""
    budget = max_evaluations / 4.0
    if cap is not None:
        first = certify_adaptive(fn, net, dim, domain, lipschitz_target=lip_f, target=cap,
                                 max_evaluations=max_evaluations)
        if not first.ok:
            return first
        ladder = [m * lower for m in (2.0, 1.5, 1.25) if m * lower < first.bound]
    else:
        first = None
        for m in (3.0, 5.0, 10.0, 30.0, 100.0):
            first = certify_adaptive(fn, net, dim, domain, lipschitz_target=lip_f, target=m * lower,
                                     max_evaluations=budget)
            if first.ok:
                break
        if not first.ok:
            return first
        ladder = [m * lower for m in (2.0, 1.5, 1.25) if m * lower < first.bound]
    best = first
    for target in ladder:
        cert = certify_adaptive(fn, net, dim, domain, lipschitz_target=lip_f, target=target, max_evaluations=budget)
        if not cert.ok:
            break
        best = cert
    return best
