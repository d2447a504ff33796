"""Base classes of target maps: :class:`Target`, ridge decompositions, and user functions wrapped as targets.

A target maps ``X: (B, n, d)`` with entries in ``domain = (a, b)`` to ``Y: (B, n, d_out)``. Its ``lipschitz``
constant is with respect to the max-norm on the input and holds for every output component:
``|f_ic(X) - f_ic(X')| <= L * max |X - X'|`` for ``X, X'`` in the box (``None`` when no bound is known). Targets
that are sums of ridge functions, ``f_ic(X) = const + sum_m g_m(theta_m . vec(X))``, say so in :meth:`Target.ridge`;
for them the construction certifies its error a priori. The library of targets is :mod:`lamina.seq.targets`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lamina._validation import check_positive_int, check_real
from lamina.errors import InputError


@dataclass
class RidgeTerm:
    """One ridge function ``g(theta . vec(X))``.

    Attributes:
        theta: ``(n * d,)`` direction on the flattened input.
        fn: ``g``, vectorised over a 1-d array of projections.
        curvature: ``sup |g''|`` over the projections' range (0 for affine or piecewise-linear ``g``).
        kinks: projections where a piecewise-linear ``g`` bends (knots are put there, so interpolation is exact).
    """

    theta: np.ndarray
    fn: Callable[[np.ndarray], np.ndarray]
    curvature: float = 0.0
    kinks: tuple[float, ...] = ()


@dataclass
class RidgeSum:
    """``f_ic(X) = const + sum(term.fn(term.theta . vec(X)) for term in terms)`` for one output component."""

    const: float
    terms: list[RidgeTerm] = field(default_factory=list)


def check_domain(domain) -> tuple[float, float]:
    """Return ``domain`` as a pair of finite floats ``(a, b)`` with ``a < b``."""
    try:
        a, b = domain
    except (TypeError, ValueError):
        raise InputError(f"domain: expected a pair (a, b) of numbers with a < b, got {domain!r}") from None
    a, b = check_real("domain[0]", a), check_real("domain[1]", b)
    if a >= b:
        raise InputError(f"domain: expected finite a < b, got ({a:g}, {b:g})")
    if not math.isfinite(b - a):
        raise InputError(f"domain: its width b - a = ({b:g}) - ({a:g}) overflows float64; use a smaller box")
    return a, b


class Target:
    """Base class: a continuous map of sequences on the box ``domain^(n x d)``.

    Subclasses set ``name``, ``n``, ``d``, ``d_out``, ``domain`` and implement :meth:`_map` (and, where they can,
    :attr:`lipschitz` and :meth:`ridge`). Calling a target validates the input and the output.
    """

    name = "target"

    def __init__(self, n: int, d: int, d_out: int, domain=(0.0, 1.0)):
        self.n = check_positive_int("n", n)
        self.d = check_positive_int("d", d)
        self.d_out = check_positive_int("d_out", d_out)
        self.domain = check_domain(domain)

    @property
    def radius(self) -> float:
        """``max |x|`` over the domain."""
        return max(abs(self.domain[0]), abs(self.domain[1]))

    @property
    def width(self) -> float:
        return self.domain[1] - self.domain[0]

    @property
    def lipschitz(self) -> float | None:
        return None

    def ridge(self) -> list[list[RidgeSum]] | None:
        """Ridge decomposition ``[i][c]`` of every output component, or ``None`` when there is none."""
        return None

    def _map(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x) -> np.ndarray:
        """Evaluate: ``x: (B, n, d)`` -> ``(B, n, d_out)`` float64."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[1:] != (self.n, self.d):
            raise InputError(f"x: expected shape (B, {self.n}, {self.d}), got {x.shape}")
        y = np.asarray(self._map(x), dtype=np.float64)
        if y.ndim == 2 and self.d_out == 1:
            y = y[..., None]
        if y.shape != (x.shape[0], self.n, self.d_out):
            raise InputError(
                f"target: returned shape {y.shape} for input {x.shape}; expected ({x.shape[0]}, {self.n}, {self.d_out})"
            )
        if not np.all(np.isfinite(y)):
            bad = np.argwhere(~np.isfinite(y))[0].tolist()
            raise InputError(f"target: returned NaN or infinite values (first at index {bad})")
        return y

    def sample(self, num: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``num`` inputs uniform on the box and their images: ``(num, n, d)``, ``(num, n, d_out)``."""
        x = rng.uniform(self.domain[0], self.domain[1], size=(num, self.n, self.d))
        return x, self(x)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "n": self.n,
            "d": self.d,
            "d_out": self.d_out,
            "domain": list(self.domain),
            "lipschitz": self.lipschitz,
            "ridge": self.ridge() is not None,
            **self._params(),
        }

    def _params(self) -> dict:
        return {}


class FunctionTarget(Target):
    """A user's function wrapped as a target; its output is checked on every call (shape, NaN).

    Args:
        fn: ``(B, n, d) -> (B, n, d_out)`` (or ``(B, n)`` for one output feature), NumPy.
        n, d: sequence length and token features.
        domain: ``(a, b)`` with ``a < b``.
        lipschitz: max-norm Lipschitz constant of every output component, a finite number > 0, if known (needed
            to certify).
    """

    name = "function"

    def __init__(self, fn: Callable, n: int, d: int, *, domain=(0.0, 1.0), lipschitz: float | None = None):
        if not callable(fn):
            raise InputError(f"target: expected a callable (B, n, d) -> (B, n, d_out), got {type(fn).__name__}")
        super().__init__(n, d, 1, domain)
        self.fn = fn
        probe = np.asarray(fn(np.full((2, self.n, self.d), self.domain[0])), dtype=np.float64)
        if probe.ndim == 3 and probe.shape[:2] == (2, self.n):
            self.d_out = probe.shape[2]
        elif not (probe.ndim == 2 and probe.shape == (2, self.n)):
            raise InputError(f"target: returned shape {probe.shape} for input (2, {self.n}, {self.d}); "
                             f"expected (2, {self.n}, d_out) or (2, {self.n})")
        self._lipschitz = check_real("lipschitz", lipschitz, low=0.0, low_open=True, allow_none=True)
        self.name = getattr(fn, "__name__", "function")

    @property
    def lipschitz(self) -> float | None:
        return self._lipschitz

    def _map(self, x):
        return self.fn(x)


def as_target(target, *, n: int | None = None, d: int | None = None, domain=None,
              lipschitz: float | None = None) -> Target:
    """Return ``target`` as a :class:`Target`, wrapping a plain function (then ``n`` and ``d`` are required)."""
    if isinstance(target, Target):
        if n is not None and check_positive_int("n", n) != target.n:
            raise InputError(f"n: the target has n = {target.n}, got n = {n}")
        if d is not None and check_positive_int("d", d) != target.d:
            raise InputError(f"d: the target has d = {target.d}, got d = {d}")
        if domain is not None and check_domain(domain) != target.domain:
            raise InputError(f"domain: the target is defined on {target.domain}, got {tuple(domain)}")
        return target
    if n is None or d is None:
        raise InputError("n, d: required (integers >= 1) when the target is a plain function")
    return FunctionTarget(target, n, d, domain=(0.0, 1.0) if domain is None else domain, lipschitz=lipschitz)
