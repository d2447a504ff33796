"""Target maps: continuous sequence-to-sequence maps on a box, with their Lipschitz constants where known.

A target maps ``X: (B, n, d)`` with entries in ``domain = (a, b)`` to ``Y: (B, n, d_out)``. Its ``lipschitz``
constant is with respect to the max-norm on the input and holds for every output component:
``|f_ic(X) - f_ic(X')| <= L * max |X - X'|`` for ``X, X'`` in the box (``None`` when no bound is known). Targets
that are sums of ridge functions, ``f_ic(X) = const + sum_m g_m(theta_m . vec(X))``, say so in :meth:`Target.ridge`;
for them the construction certifies its error a priori.

The in-context linear regression task lives in :mod:`lamina.seq.icl` (its inputs are Gaussian, not a box).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import softmax

from lamina._validation import check_positive_int, check_real, check_seed
from lamina.errors import InputError
from lamina.seq.base import (  # noqa: F401  (re-exported: the public names of targets)
    FunctionTarget,
    RidgeSum,
    RidgeTerm,
    Target,
    as_target,
    check_domain,
)


def _onehot_theta(n: int, d: int, weights: dict[tuple[int, int], float]) -> np.ndarray:
    theta = np.zeros((n, d))
    for (j, c), w in weights.items():
        theta[j, c] += w
    return theta.ravel()


def _identity(s):
    return s


class MovingAverage(Target):
    """Causal moving average over ``window`` tokens: ``y_i = mean(x_j, max(0, i - window + 1) <= j <= i)``.

    Linear, so its Lipschitz constant is 1 and it is one ridge function per output (exactly representable).
    """

    name = "moving-average"

    def __init__(self, n: int = 8, d: int = 1, *, window: int = 3, domain=(0.0, 1.0)):
        super().__init__(n, d, d, domain)
        self.window = check_positive_int("window", window)

    def _params(self):
        return {"window": self.window}

    @property
    def lipschitz(self):
        return 1.0

    def _map(self, x):
        c = np.cumsum(x, axis=1)
        lo = np.arange(self.n) - self.window
        prev = np.where(lo[None, :, None] >= 0, c[:, np.clip(lo, 0, None)], 0.0)
        count = np.minimum(np.arange(self.n) + 1, self.window)
        return (c - prev) / count[None, :, None]

    def ridge(self):
        out = []
        for i in range(self.n):
            start = max(0, i - self.window + 1)
            row = []
            for c in range(self.d):
                w = {(j, c): 1.0 / (i - start + 1) for j in range(start, i + 1)}
                row.append(RidgeSum(0.0, [RidgeTerm(_onehot_theta(self.n, self.d, w), _identity)]))
            out.append(row)
        return out


class SoftmaxMixing(Target):
    """Softmax-weighted mixing (one attention head with identity maps): ``y_i = sum_j softmax_j(s <x_i, x_j>) x_j``.

    Lipschitz bound (max-norm, derived from the Jacobian): ``1 + s d R w + s d w^2 / 4`` with ``R = max|x|`` and
    ``w = b - a``.
    """

    name = "softmax-mixing"

    def __init__(self, n: int = 4, d: int = 1, *, scale: float = 2.0, domain=(0.0, 1.0)):
        super().__init__(n, d, d, domain)
        self.scale = check_real("scale", scale, low=0.0)

    def _params(self):
        return {"scale": self.scale}

    @property
    def lipschitz(self):
        s, d, r, w = self.scale, self.d, self.radius, self.width
        return 1.0 + s * d * r * w + s * d * w * w / 4.0

    def _map(self, x):
        return softmax(self.scale * np.einsum("bic,bjc->bij", x, x), axis=-1) @ x  # (B, n, n) @ (B, n, d)


class SmoothCumMax(Target):
    """Smooth cumulative maximum per feature: ``y_i = log(sum_{j <= i} exp(tau x_j)) / tau``.

    Its gradient is a softmax (non-negative, summing to 1), so the Lipschitz constant is 1. For ``n <= 2`` it is a
    ridge sum: ``y_1 = (x_0 + x_1) / 2 + g(x_1 - x_0)`` with ``g(s) = log(2 cosh(tau s / 2)) / tau``,
    ``|g''| <= tau / 4``.
    """

    name = "smooth-cummax"

    def __init__(self, n: int = 4, d: int = 1, *, tau: float = 10.0, domain=(0.0, 1.0)):
        super().__init__(n, d, d, domain)
        self.tau = check_real("tau", tau, low=0.0, low_open=True)

    def _params(self):
        return {"tau": self.tau}

    @property
    def lipschitz(self):
        return 1.0

    def _map(self, x):
        return np.logaddexp.accumulate(self.tau * x, axis=1) / self.tau  # running log-sum-exp over tokens, stable

    def ridge(self):
        if self.n > 2:
            return None
        tau = self.tau

        def g(s):
            return np.logaddexp(tau * s / 2.0, -tau * s / 2.0) / tau  # log(2 cosh(tau s / 2)) / tau, stable

        rows = [[RidgeSum(0.0, [RidgeTerm(_onehot_theta(self.n, self.d, {(0, c): 1.0}), _identity)])
                 for c in range(self.d)]]
        if self.n == 2:
            rows.append([
                RidgeSum(0.0, [
                    RidgeTerm(_onehot_theta(2, self.d, {(0, c): 0.5, (1, c): 0.5}), _identity),
                    RidgeTerm(_onehot_theta(2, self.d, {(0, c): -1.0, (1, c): 1.0}), g, curvature=tau / 4.0),
                ])
                for c in range(self.d)
            ])
        return rows


class Sort(Target):
    """Sorting real values (``d = 1``): ``y = sort(x)`` ascending. Order statistics are 1-Lipschitz in max-norm.

    For ``n = 2`` it is a ridge sum: ``min, max = (x_0 + x_1) / 2 -/+ |x_1 - x_0| / 2``.
    """

    name = "sort"

    def __init__(self, n: int = 4, d: int = 1, *, domain=(0.0, 1.0)):
        super().__init__(n, d, 1, domain)
        if self.d != 1:
            raise InputError(f"d: sort is defined for scalar tokens, expected d = 1, got {d}")

    @property
    def lipschitz(self):
        return 1.0

    def _map(self, x):
        return np.sort(x, axis=1)

    def ridge(self):
        if self.n > 2:
            return None
        if self.n == 1:
            return [[RidgeSum(0.0, [RidgeTerm(np.ones(1), _identity)])]]
        mean = RidgeTerm(np.array([0.5, 0.5]), _identity)
        return [
            [RidgeSum(0.0, [mean, RidgeTerm(np.array([-1.0, 1.0]), lambda s: -np.abs(s) / 2.0, kinks=(0.0,))])],
            [RidgeSum(0.0, [mean, RidgeTerm(np.array([-1.0, 1.0]), lambda s: np.abs(s) / 2.0, kinks=(0.0,))])],
        ]


class SineProduct(Target):
    """``y_i = sin(omega x_i x_{(i+1) mod n})`` for scalar tokens (``n = 1``: ``sin(omega x^2)``).

    Lipschitz constant ``2 omega R`` (``R = max|x|``). For ``n = 1`` it is a single ridge function with
    ``|g''| <= 2 omega + 4 omega^2 R^2``; for ``n = 2`` it is the 2-D map ``sin(omega x_0 x_1)`` of the reference,
    which is not a ridge sum (the construction certifies it a posteriori).
    """

    name = "sine-product"

    def __init__(self, n: int = 2, d: int = 1, *, omega: float = 3.0, domain=(0.0, 1.0)):
        super().__init__(n, d, 1, domain)
        if self.d != 1:
            raise InputError(f"d: sine-product is defined for scalar tokens, expected d = 1, got {d}")
        self.omega = check_real("omega", omega, low=0.0, low_open=True)

    def _params(self):
        return {"omega": self.omega}

    @property
    def lipschitz(self):
        return 2.0 * self.omega * self.radius

    def _map(self, x):
        return np.sin(self.omega * x * np.roll(x, -1, axis=1))

    def ridge(self):
        if self.n != 1:
            return None
        w, r = self.omega, self.radius
        term = RidgeTerm(np.ones(1), lambda s: np.sin(w * s * s), curvature=2 * w + 4 * w * w * r * r)
        return [[RidgeSum(0.0, [term])]]


class RandomMLP(Target):
    """The Hu et al. protocol target: a random one-hidden-layer ReLU MLP on ``vec(X)``, normalised.

    ``f(X) = reshape(W_2 ReLU(W_1 vec(X) + b_1) + b_2, (n, d_out))`` with PyTorch's default ``nn.Linear``
    initialisation (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) drawn from ``seed``; each output component is then
    standardised (mean 0, variance 1) with statistics of 100,000 inputs uniform on the box. A sum of ReLU ridge
    functions, so it is exactly representable; Lipschitz ``max_o sum_k |W_2[o, k]| ||W_1[k]||_1 / sigma_o``.
    """

    name = "random-mlp"

    def __init__(self, n: int = 20, d: int = 5, *, hidden: int = 10, d_out: int = 1, seed: int = 0,
                 domain=(0.0, 1.0)):
        super().__init__(n, d, d_out, domain)
        self.hidden = check_positive_int("hidden", hidden)
        self.seed = check_seed("seed", seed)
        rng = np.random.default_rng(self.seed)
        fan_in = self.n * self.d
        b1, b2 = 1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(self.hidden)
        self.W1 = rng.uniform(-b1, b1, size=(self.hidden, fan_in))
        self.b1 = rng.uniform(-b1, b1, size=self.hidden)
        self.W2 = rng.uniform(-b2, b2, size=(self.n * self.d_out, self.hidden))
        self.b2 = rng.uniform(-b2, b2, size=self.n * self.d_out)
        self.mu = np.zeros(self.n * self.d_out)
        self.sigma = np.ones(self.n * self.d_out)
        stats = np.random.default_rng([self.seed, 1]).uniform(*self.domain, size=(100_000, fan_in))
        raw = self._raw(stats)
        self.mu, self.sigma = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-12)

    def _params(self):
        return {"hidden": self.hidden, "seed": self.seed}

    def _raw(self, flat):
        return np.maximum(flat @ self.W1.T + self.b1, 0.0) @ self.W2.T + self.b2

    def _map(self, x):
        flat = x.reshape(x.shape[0], -1)
        return ((self._raw(flat) - self.mu) / self.sigma).reshape(x.shape[0], self.n, self.d_out)

    @property
    def lipschitz(self):
        l1 = np.abs(self.W1).sum(axis=1)  # (hidden,)
        return float(np.max(np.abs(self.W2) @ l1 / self.sigma))

    def ridge(self):
        rows = []
        for i in range(self.n):
            row = []
            for c in range(self.d_out):
                o = i * self.d_out + c
                terms = []
                for k in range(self.hidden):
                    v, bk = self.W2[o, k] / self.sigma[o], self.b1[k]
                    terms.append(RidgeTerm(self.W1[k].copy(), lambda s, v=v, bk=bk: v * np.maximum(s + bk, 0.0),
                                           kinks=(-bk,)))
                row.append(RidgeSum((self.b2[o] - self.mu[o]) / self.sigma[o], terms))
            rows.append(row)
        return rows


TARGETS: dict[str, type[Target]] = {
    cls.name: cls for cls in (MovingAverage, SoftmaxMixing, SmoothCumMax, Sort, SineProduct, RandomMLP)
}


def make_target(name: str, *, n: int, d: int, domain=(0.0, 1.0), **params) -> Target:
    """Build a library target by name (see :data:`TARGETS`); ``params`` are its own keyword arguments."""
    if name not in TARGETS:
        raise InputError(f"target: expected one of {', '.join(sorted(TARGETS))}, got {name!r}")
    try:
        return TARGETS[name](n=n, d=d, domain=domain, **params)
    except TypeError as exc:
        raise InputError(f"target {name}: bad parameters {sorted(params)} ({exc})") from None


def make_task(name: str, *, n: int | None = None, d: int | None = None, domain=None, **params):
    """A target by name, or the ``icl-regression`` task (``n``: context examples, ``d``: regression inputs).

    ``n`` and ``d`` default to the target's own defaults when ``None``.
    """
    if name == "icl-regression":
        from lamina.seq.icl import InContextRegression

        kwargs = {k: v for k, v in (("n_context", n), ("d", d)) if v is not None}
        try:
            return InContextRegression(**kwargs, **params)
        except TypeError as exc:
            raise InputError(f"target {name}: bad parameters {sorted(params)} ({exc})") from None
    if name not in TARGETS:
        raise InputError(f"target: expected one of {', '.join(sorted([*TARGETS, 'icl-regression']))}, got {name!r}")
    kwargs = {k: v for k, v in (("n", n), ("d", d)) if v is not None}
    if domain is not None:
        kwargs["domain"] = domain
    try:
        return TARGETS[name](**kwargs, **params)
    except TypeError as exc:
        raise InputError(f"target {name}: bad parameters {sorted(params)} ({exc})") from None
