"""Explicit single-layer Transformers for a given map, with a certified sup-norm error bound.

The construction (see docs/seq.md for the derivation):

1. **Gather.** Tokens carry one-hot positions. Head ``j`` has the constant query ``e_1`` (a bias) and the key
   ``e_1 * [position == j]``; with softmax scale ``beta`` every position attends to token ``j`` with weight
   ``e^beta / (e^beta + n - 1)``, and the output projection writes the head's value (the token) into slot ``j``
   of the residual stream. After the layer every position holds ``g ~ vec(X)`` and its own position. Each
   gathered token is a convex combination of tokens, so ``g`` stays in the box and
   ``max |g - vec(X)| <= (n - 1) (b - a) / (e^beta + n - 1)`` (the *leakage*).
2. **Approximate.** One hidden ReLU layer computes, for each position ``i``, a ridge network
   ``N_i(g) = sum_u w_u ReLU(theta_u . g - t_u)``; every unit is gated by position,
   ``ReLU(theta_u . g - t_u + M_u p_i - M_u)`` with ``M_u`` larger than ``theta_u . g - t_u`` on the box, so it is
   exactly 0 at every other position. The per-position constants come from the one-hot position in the readout.
3. **Certify.** ``sup |f - T| <= interpolation bound + L(N) * leakage``, with ``L(N)`` the exact max-norm Lipschitz
   constant of the ridge network. The interpolation bound is a priori for ridge-sum targets
   (``sum_m step_m^2 / 8 sup|g_m''|``) and a posteriori on a grid for any target with a known Lipschitz constant.

The bound is for exact arithmetic; the model is built in float64, where rounding adds ~1e-13.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from lamina._process import torch_seed
from lamina._validation import check_count, check_memory, check_real, check_seed
from lamina.errors import InputError
from lamina.seq import ridge as _ridge
from lamina.seq.certify import certify_tightest, grid_points_needed
from lamina.seq.model import SeqConfig, SingleLayerTransformer, forward_numpy
from lamina.seq.targets import Target, as_target
from lamina.seq.verify import check_against_samples, check_lipschitz

ROUNDING_STEPS = 64  # float64 roundings the error floor allows for: softmax, a few sums, the FFN's ReLU units


def rounding_floor(target: Target, seed: int = 0) -> float:
    """The smallest sup error float64 evaluation can be trusted to resolve for ``target``: ``ROUNDING_STEPS``
    units of float64 rounding at the problem's scale (the largest of 1, the box's bounds and the target's outputs on
    a sample)."""
    x = np.random.default_rng([seed, 3]).uniform(*target.domain, size=(256, target.n, target.d))
    scale = max(1.0, abs(target.domain[0]), abs(target.domain[1]), float(np.abs(target(x)).max()))
    return ROUNDING_STEPS * float(np.finfo(np.float64).eps) * scale


@dataclass
class Certificate:
    """The certified error budget of a construction and the size it took.

    ``total = interpolation_bound + leakage_bound`` bounds ``max |f_ic(X) - T(X)_ic|`` over the whole box and every
    output component in exact arithmetic. Evaluated in float64 the model also carries rounding error, of the order
    of ``rounding_floor`` (:func:`rounding_floor`); a measured error is checked against ``total + rounding_floor``,
    and an ``eps`` below the floor is refused (it could be certified but never observed).
    """

    method: str
    eps: float | None
    leakage_bound: float
    interpolation_bound: float
    beta: float
    lipschitz_target: float | None
    lipschitz_network: float
    ffn_width: int
    d_model: int
    n_heads: int
    n_params: int
    n_nonzero: int
    grid: dict | None = None
    attempts: list = field(default_factory=list)
    rounding_floor: float = 0.0

    @property
    def total(self) -> float:
        return self.leakage_bound + self.interpolation_bound

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


@dataclass
class Construction:
    """A constructed :class:`SingleLayerTransformer` (float64) with its :class:`Certificate` and target."""

    model: SingleLayerTransformer
    certificate: Certificate
    target: Target

    def __post_init__(self) -> None:
        self._params = self.model.numpy_params()

    def __call__(self, x) -> np.ndarray:
        """The transformer in float64 NumPy: ``(B, n, d) -> (B, n, d_out)``."""
        return forward_numpy(self._params, self.model.config, x)

    def attention(self, x) -> np.ndarray:
        """Attention weights ``(B, n_heads, n, n)``."""
        return forward_numpy(self._params, self.model.config, x, return_attention=True)[1]


def dense_param_count(cfg: SeqConfig) -> int:
    """Parameters of a :class:`SingleLayerTransformer` with ``cfg``, computed without building it."""
    return cfg.n_params


def _layout(n: int, d: int, d_out: int, width: int, beta: float, domain=None) -> SeqConfig:
    d_model = d + n + n * d + d_out
    return SeqConfig(n_ctx=n, d_in=d, d_out=d_out, d_model=d_model, n_heads=n, d_head=d, d_ff=width,
                     positional="onehot", attn_scale=beta, domain=domain)


def _refuse_size(eps: float, width: int, params: int, max_params: int) -> InputError:
    return InputError(
        f"eps: eps={eps:g} needs an FFN of about {width:,} hidden units ({params:,} parameters, "
        f"{params * 8 / 2**20:,.0f} MiB in float64), more than max_params={max_params:,}; pass a larger eps or "
        "raise max_params (a priori, each ridge term needs about range * sqrt(sup|g''| / (8 eps)) knots)"
    )


def _beta_for(leak_budget: float, n: int, width: float, lip_net: float) -> float:
    """Smallest softmax scale whose leakage ``lip_net (n-1) width / (e^beta + n - 1)`` is ``<= leak_budget``."""
    if n == 1 or lip_net == 0:
        return 1.0
    need = (n - 1) * (width * lip_net / leak_budget - 1.0)
    return max(1.0, math.log(max(need, 1.0)) + 1e-9)


def leakage(beta: float, n: int, width: float) -> float:
    """``max |g - vec(X)|``: the largest error of a gathered token, ``(n - 1) (b - a) / (e^beta + n - 1)``."""
    if n == 1:
        return 0.0
    return (n - 1) * width / (math.exp(min(beta, 700.0)) + n - 1)


def _ridge_nets(t: Target, eps_ffn: float, max_params: int, eps: float):
    """A priori route: per position, the interpolants of every output's ridge terms."""
    specs = t.ridge()
    width = sum(_ridge.knots_needed(spec, t.domain, eps_ffn) for row in specs for spec in row)
    params = dense_param_count(_layout(t.n, t.d, t.d_out, max(width, 1), 1.0))
    if params > max_params:
        raise _refuse_size(eps, width, params, max_params)
    nets, bound = [], 0.0
    for row in specs:
        pos_nets = []
        for c, spec in enumerate(row):
            net, b = _ridge.interpolate_ridge(spec, t.domain, eps_ffn)
            w = np.zeros((net.width, t.d_out))
            w[:, c] = net.w[:, 0]
            const = np.zeros(t.d_out)
            const[c] = net.const[0]
            pos_nets.append(_ridge.RidgeNet(net.theta, net.t, w, const, net.group))
            bound = max(bound, b)
        nets.append(pos_nets)
    return nets, bound, None, []


def _schedule(dim: int):
    if dim == 1:
        return [(1, 4 * 2**k) for k in range(12)]
    if dim == 2:
        return [(2 ** (k + 2), 2 ** (k + 3)) for k in range(6)]
    return [(2 ** (k + 3), 2 ** (k + 3)) for k in range(5)]


def _fit_rows(dim: int, width: int, n_knots: int) -> int:
    return {1: 8 * n_knots + 1, 2: (2 * n_knots + 1) ** 2}.get(dim, 6 * width)


def _check_grid_evaluations(t: Target, lip_f: float, eps_ffn: float, eps: float | None,
                            max_evaluations: float) -> None:
    """Refuse up front an ``eps_ffn`` whose grid certificate needs more than ``max_evaluations`` evaluations."""
    dim, a, b = t.n * t.d, t.domain[0], t.domain[1]
    lower = grid_points_needed(dim, b - a, lip_f, eps_ffn)
    if lower > max_evaluations:
        raise InputError(
            f"eps: certifying eps={eps:g} for a general map of n*d={dim} inputs needs at least {lower:.3g} "
            f"evaluations ((L (b - a) / 2 eps)^{dim}, L={lip_f:g}), more than max_evaluations="
            f"{max_evaluations:.3g}: the curse of dimensionality. Use a ridge-sum target (certified a priori), "
            "a larger eps, or n*d <= 3"
        )


def _flat_target(t: Target):
    """``t`` as a map of flattened inputs, ``(P, n * d) -> (P, n * d_out)``, the form the ridge fit takes."""

    def fn(pts):
        return t(pts.reshape(len(pts), t.n, t.d)).reshape(len(pts), -1)  # (P, n * d_out)

    return fn


def _asked(eps: float | None, size) -> str:
    """What the caller asked for, as the grid route's refusals quote it: ``eps=...`` or ``size=(...)``."""
    return f"eps={eps:g}" if eps is not None else f"size={size}"


def _needed_width(width: int, history: list, eps_ffn: float | None) -> tuple[int, str]:
    """The width per position that the error rate of the last two fits predicts for ``0.9 eps_ffn``, and why."""
    need_w, why = width, ""
    if len(history) >= 2 and history[-1][1] < history[-2][1] and eps_ffn is not None:
        (w0, e0), (w1, e1) = history[-2], history[-1]
        rate = math.log(e0 / e1) / math.log(w1 / w0)
        growth = math.log(e1 / (0.9 * eps_ffn)) / max(rate, 1e-3)  # in logs: a huge domain overflows floats
        need_w = int(w1 * math.exp(min(growth, math.log(1e18 / w1))))  # at most 1e18 (already far too many)
        why = (f" by the measured rate (widths {[w for w, _ in history]} per position gave errors "
               f"{[float(f'{e:.3g}') for _, e in history]})")
    return need_w, why


def _refuse_grid_size(t: Target, width: int, fit_bytes: int, attempts: list, history: list,
                      eps_ffn: float | None, eps: float | None, size, max_params: int, memory_budget: int,
                      max_evaluations: float) -> InputError:
    """The refusal when the next width exceeds ``max_params`` or ``memory_budget``: the certificate's budget ran
    out if a fit was accurate enough already, else the size the wanted error needs."""
    close = [r for r in attempts if eps_ffn is not None and r["sample_max_error"] < 0.9 * eps_ffn]
    if close:  # accurate enough already: what ran out is the certificate's evaluation budget
        return InputError(
            f"eps: {_asked(eps, size)}: a width of {close[0]['width_per_position']} per position already reaches a "
            f"sampled error of {close[0]['sample_max_error']:.3g}, but the grid certificate could not prove "
            f"the bound within max_evaluations={max_evaluations:.3g}, and the next width exceeds the "
            "limits; raise max_evaluations or pass a larger eps"
        )
    need_w, why = _needed_width(width, history, eps_ffn)
    need_params = dense_param_count(_layout(t.n, t.d, t.d_out, t.n * need_w, 1.0))
    limit = (f"its least-squares fit needs {fit_bytes / 2**20:,.0f} MiB at width {width}, more than "
             f"memory_budget={memory_budget / 2**20:,.0f} MiB") if fit_bytes > memory_budget else (
             f"more than max_params={max_params:,}")
    return InputError(
        f"eps: {_asked(eps, size)} needs an FFN of about {t.n * need_w:,} hidden units ({need_params:,} parameters)"
        f"{why}; {limit}. Pass a larger eps or raise the limit (the size grows like (1/eps)^(inputs/2) or worse: "
        "the curse of dimensionality)"
    )


def _fit_attempt(fn, t: Target, n_dirs: int, n_knots: int, probe: np.ndarray, rng: np.random.Generator):
    """A least-squares ridge net of ``n_dirs x n_knots`` units for ``fn`` and its largest error on ``probe``."""
    dim = t.n * t.d
    pts = _ridge.fit_points(dim, n_dirs * n_knots, n_knots, t.domain, rng)
    net = _ridge.fit_ridge(fn, dim, t.domain, n_dirs=n_dirs, n_knots=n_knots, points=pts)
    return net, float(np.abs(fn(probe) - net(probe)).max())


def _per_position(t: Target, net: _ridge.RidgeNet) -> list[list[_ridge.RidgeNet]]:
    """Split a net over all ``n * d_out`` outputs into one net per position (its ``d_out`` output columns)."""
    nets = []
    for i in range(t.n):
        cols = slice(i * t.d_out, (i + 1) * t.d_out)
        nets.append([_ridge.RidgeNet(net.theta, net.t, net.w[:, cols], net.const[cols], net.group)])
    return nets


def _grid_nets(t: Target, lip_f: float, eps_ffn: float | None, eps: float | None, max_params: int,
               memory_budget: int, max_evaluations: float, rng: np.random.Generator, size=None):
    """A posteriori route: least-squares ridge networks, grown until the certificate meets ``eps_ffn``
    (or of the fixed ``size = (directions, knots)``, certified as tightly as the evaluation budget allows)."""
    dim, a, b = t.n * t.d, t.domain[0], t.domain[1]
    if eps_ffn is not None:
        _check_grid_evaluations(t, lip_f, eps_ffn, eps, max_evaluations)
    fn = _flat_target(t)
    probe = rng.uniform(a, b, size=(20_000, dim))
    attempts, history = [], []
    for n_dirs, n_knots in [size] if size is not None else _schedule(dim):
        width = n_dirs * n_knots
        fit_bytes = _fit_rows(dim, width, n_knots) * width * 8 * 2
        params = dense_param_count(_layout(t.n, t.d, t.d_out, t.n * width, 1.0))
        if params > max_params or fit_bytes > memory_budget:
            raise _refuse_grid_size(t, width, fit_bytes, attempts, history, eps_ffn, eps, size, max_params,
                                    memory_budget, max_evaluations)
        net, sample_err = _fit_attempt(fn, t, n_dirs, n_knots, probe, rng)
        history.append((width, max(sample_err, 1e-300)))
        rec = {"directions": n_dirs, "knots": n_knots, "width_per_position": width, "sample_max_error": sample_err}
        attempts.append(rec)
        if eps_ffn is not None and sample_err >= 0.9 * eps_ffn:
            continue
        cert = certify_tightest(fn, net, dim, t.domain, lip_f, max(sample_err, 1e-12), eps_ffn, max_evaluations)
        rec.update(cert.to_dict())
        if cert.ok:
            grid = {"evaluations": cert.evaluations, "finest_spacing": cert.finest_spacing,
                    "max_error_seen": cert.lower, "directions": n_dirs, "knots": n_knots}
            return _per_position(t, net), cert.bound, grid, attempts
    raise InputError(
        f"eps: could not certify {_asked(eps, size)} within max_evaluations={max_evaluations:.3g} and max_params="
        f"{max_params:,} (attempts: {attempts}); pass a larger eps or raise the limits"
    )


def _assemble(t: Target, nets: list[list[_ridge.RidgeNet]], beta: float) -> SingleLayerTransformer:
    """Write the gather heads and the gated ridge units into a float64 :class:`SingleLayerTransformer`."""
    n, d, d_out = t.n, t.d, t.d_out
    width = sum(net.width for row in nets for net in row)
    cfg = _layout(n, d, d_out, max(width, 1), beta, t.domain)  # the certificate holds on this box only
    with torch_seed(None):  # every weight is overwritten: leave the caller's random stream alone
        model = SingleLayerTransformer(cfg).double()
    pos0, gat0, out0 = d, d + n, d + n + n * d  # residual-stream slots: token, position, gathered, output
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_in.weight[:d, :d] = torch.eye(d)  # token -> slot [0, d)
        model.W_in.weight[pos0 : pos0 + n, d:] = torch.eye(n)  # one-hot position -> slot [d, d + n)
        for j in range(n):
            model.W_q.bias[j * d] = 1.0  # constant query
            model.W_k.weight[j * d, pos0 + j] = 1.0  # key: "is this position j?"
            for c in range(d):
                model.W_v.weight[j * d + c, c] = 1.0  # value: the token
                model.W_o.weight[gat0 + j * d + c, j * d + c] = 1.0  # head j -> gathered slot j
        u = 0
        for i, row in enumerate(nets):
            for net in row:
                k = net.width
                top = np.maximum(net.theta * t.domain[0], net.theta * t.domain[1]).sum(axis=1) - net.t  # (k,)
                gate = torch.as_tensor(np.maximum(top, 0.0) + 1.0)  # > theta . g - t on the box: off elsewhere
                model.W_1.weight[u : u + k, gat0 : gat0 + n * d] = torch.as_tensor(net.theta)
                model.W_1.weight[u : u + k, pos0 + i] = gate
                model.W_1.bias[u : u + k] = -torch.as_tensor(net.t) - gate
                model.W_2.weight[out0 : out0 + d_out, u : u + k] = torch.as_tensor(net.w.T)
                model.W_out.weight[:, pos0 + i] += torch.as_tensor(net.const)
                u += k
        model.W_out.weight[:, out0 : out0 + d_out] = torch.eye(d_out)
    return model.eval()


def construct(
    target,
    n: int | None = None,
    d: int | None = None,
    domain=None,
    lipschitz: float | None = None,
    eps: float | None = 1e-2,
    *,
    size: tuple[int, int] | None = None,
    beta: float | None = None,
    method: str = "auto",
    max_params: int = 5_000_000,
    memory_budget: int = 2**30,
    max_evaluations: float = 5e7,
    seed: int = 0,
) -> Construction:
    """Build a single-layer Transformer approximating ``target`` on ``domain^(n x d)`` within a certified ``eps``.

    Args:
        target: a :class:`~lamina.seq.targets.Target`, or a function ``(B, n, d) -> (B, n, d_out)`` (then ``n``,
            ``d`` and, for a certificate, ``lipschitz`` are required).
        n, d: sequence length and token features (checked against a Target's own).
        domain: ``(a, b)``, ``a < b``: every token feature lies in ``[a, b]`` (default: the target's, or (0, 1)).
        lipschitz: max-norm Lipschitz constant of every output component, a finite number > 0 (overrides the
            target's). Refused when below a difference quotient measured on the target
            (:func:`~lamina.seq.verify.lipschitz_lower_bound`); a ``LipschitzWarning`` when below the target's own.
        eps: wanted sup-norm error, ``> 0``; may be ``None`` when ``size`` is given.
        size: ``(directions, knots)`` per position for the a-posteriori route: fit that size and certify it as
            tightly as ``max_evaluations`` allows, instead of growing it until ``eps`` is met.
        beta: softmax scale of the gathering heads (default: the smallest that keeps the leakage within a tenth
            of ``eps``).
        method: ``"ridge"`` (a priori; the target must be a ridge sum), ``"grid"`` (a posteriori) or ``"auto"``.
        max_params: refuse (with the size it would need) when the model would be larger.
        memory_budget: bytes the least-squares fit of the grid route may take.
        max_evaluations: point evaluations the a-posteriori certificate may spend.
        seed: seeds the random probe and fit points of the grid route.

    Returns:
        :class:`Construction`; ``construction.certificate.total <= eps`` unless ``beta`` was forced too small.

    Raises:
        InputError: bad arguments (NaN, infinite, negative, bool or complex numbers), a target returning a wrong
            shape or NaN, a Lipschitz constant that sampled inputs refute, or an ``eps`` that needs more than the
            budgets (the message gives the size it would need).
    """
    lipschitz = check_real("lipschitz", lipschitz, low=0.0, low_open=True, allow_none=True)
    t = as_target(target, n=n, d=d, domain=domain, lipschitz=lipschitz)
    if eps is None and size is None:
        raise InputError("eps: expected a number > 0 (or pass size=(directions, knots))")
    eps = check_real("eps", eps, low=0.0, low_open=True, allow_none=True)
    size = None if size is None else _check_size(size)
    if method not in ("auto", "ridge", "grid"):
        raise InputError(f"method: expected auto, ridge or grid, got {method!r}")
    beta = check_real("beta", beta, low=0.0, low_open=True, allow_none=True)
    max_params = check_count("max_params", max_params)
    memory_budget = check_count("memory_budget", memory_budget)
    max_evaluations = check_real("max_evaluations", max_evaluations, low=1.0)
    seed = check_seed("seed", seed)
    _check_problem_size(t, max_params)
    lip_f = lipschitz if lipschitz is not None else t.lipschitz
    t(np.random.default_rng(seed).uniform(*t.domain, size=(4, t.n, t.d)))  # shape and NaN check up front
    if lip_f is not None:
        check_lipschitz(t, lip_f, user=lipschitz is not None, seed=seed)
    floor = _checked_floor(t, eps, seed)
    use_ridge = _use_ridge(t, method, size)
    nets, interp, grid, attempts = _nets(t, use_ridge=use_ridge, lip_f=lip_f, eps=eps, size=size, seed=seed,
                                         max_params=max_params, memory_budget=memory_budget,
                                         max_evaluations=max_evaluations)
    construction = _certified(t, nets, interp, grid, attempts, use_ridge=use_ridge, eps=eps, beta=beta,
                              lip_f=lip_f, floor=floor)
    check_against_samples(construction, lip_f, seed=seed)
    return construction


def _check_size(size) -> tuple[int, int]:
    """``size=(directions, knots)``: two integers >= 1."""
    try:
        pair = tuple(size)
    except TypeError:
        pair = ()
    if len(pair) != 2 or any(isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer) or v < 1
                             for v in pair):
        raise InputError(f"size: expected (directions, knots), two integers >= 1, got {size!r}")
    return (int(pair[0]), int(pair[1]))


def _check_problem_size(t: Target, max_params: int) -> None:
    """Refuse, before any work, a target whose smallest construction exceeds ``max_params`` or whose check
    samples cannot fit in memory."""
    smallest = dense_param_count(_layout(t.n, t.d, t.d_out, t.n, 1.0))  # one hidden unit per position
    if smallest > max_params:
        raise InputError(f"n: a construction for n={t.n}, d={t.d} has at least {smallest:.3g} parameters (its "
                         f"attention grows like n^2 d), more than max_params={max_params:,}; use a smaller n or d, "
                         "or raise max_params")
    check_memory("n", 20_000 * t.n * (t.d + t.d_out) * 8 * 2, f"sampling 20,000 inputs of {t.n} x {t.d} to check "
                 "the construction", hint="use a smaller n or d")


def _checked_floor(t: Target, eps: float | None, seed: int) -> float:
    """The target's float64 rounding floor, refusing an ``eps`` below it (it could never be measured)."""
    floor = rounding_floor(t, seed)
    if eps is not None and eps < floor:
        raise InputError(f"eps: {eps:g} is below the float64 rounding floor {floor:.3g} of target {t.name!r} (its "
                         "scale times 64 roundings): such an error can be certified in exact arithmetic but never "
                         f"measured; ask eps >= {floor:.3g}")
    return floor


def _use_ridge(t: Target, method: str, size) -> bool:
    """Whether the a-priori (ridge sum) route is taken; refuses ``method="ridge"`` where it cannot be."""
    has_ridge = t.ridge() is not None
    if method == "ridge" and not has_ridge:
        raise InputError(f"method: target {t.name!r} with n={t.n} is not a ridge sum; use method='grid' or 'auto'")
    if size is not None and method == "ridge":
        raise InputError("size: a fixed (directions, knots) size is for the a-posteriori route (method='grid')")
    return has_ridge and method != "grid" and size is None


def _nets(t: Target, *, use_ridge: bool, lip_f: float | None, eps: float | None, size, seed: int, max_params: int,
          memory_budget: int, max_evaluations: float):
    """The feed-forward nets of every position by the route taken, with their interpolation bound, the grid
    certified (a posteriori) and the sizes tried; the nets get 90% of ``eps``, the leakage the rest (n > 1)."""
    leak_share = 0.0 if t.n == 1 else 0.1
    eps_ffn = None if eps is None else eps * (1.0 - leak_share)
    if use_ridge:
        return _ridge_nets(t, eps_ffn, max_params, eps)
    if lip_f is None:
        raise InputError(f"lipschitz: required to certify target {t.name!r} a posteriori (a number >= 0, the "
                         "max-norm Lipschitz constant of every output component on the box)")
    return _grid_nets(t, lip_f, eps_ffn, eps, max_params, memory_budget, max_evaluations,
                      np.random.default_rng(seed), size)


def _certified(t: Target, nets, interp: float, grid, attempts, *, use_ridge: bool, eps: float | None,
               beta: float | None, lip_f: float | None, floor: float) -> Construction:
    """The model assembled from ``nets`` with its certificate: the softmax scale chosen so the leakage stays
    within a tenth of ``eps`` (unless ``beta`` is forced), and the bound it gives."""
    lip_net = max((float(net.lipschitz().max()) for row in nets for net in row if net.width), default=0.0)
    leak_budget = 0.1 * (eps if eps is not None else max(interp, 1e-12))
    chosen = float(beta) if beta is not None else _beta_for(leak_budget, t.n, t.width, lip_net)
    leak = lip_net * leakage(chosen, t.n, t.width)
    model = _assemble(t, nets, chosen)
    cert = Certificate(
        method="a priori (ridge sum)" if use_ridge else "a posteriori (grid)",
        eps=eps,
        leakage_bound=leak,
        interpolation_bound=interp,
        beta=chosen,
        lipschitz_target=lip_f,
        lipschitz_network=lip_net,
        ffn_width=model.config.d_ff,
        d_model=model.config.d_model,
        n_heads=model.config.n_heads,
        n_params=model.n_params,
        n_nonzero=int(sum(int((p != 0).sum()) for p in model.parameters())),
        grid=grid,
        attempts=attempts,
        rounding_floor=floor,
    )
    return Construction(model=model, certificate=cert, target=t)
