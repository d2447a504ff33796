"""Sweeps: trained error against heads, FFN width, d_model and sequence length, with fitted power-law slopes; and
constructed versus trained parameters for the same error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from lamina._process import torch_seed
from lamina._validation import check_choice, check_count, check_real
from lamina.errors import InputError
from lamina.seq.model import SeqConfig, SingleLayerTransformer
from lamina.seq.targets import Target
from lamina.seq.train import TrainConfig, baselines, check_training_memory, gather_init, train

SWEEPABLE = {"heads": "n_heads", "d_ff": "d_ff", "width": "d_ff", "d_model": "d_model", "n": "n"}


def power_law_slope(x: Sequence[float], y: Sequence[float]) -> dict:
    """Least-squares fit of ``log y = slope * log x + c``: ``{"slope", "prefactor", "r2"}`` (NaN if < 2 points)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return {"slope": float("nan"), "prefactor": float("nan"), "r2": float("nan")}
    lx, ly = np.log(x[ok]), np.log(y[ok])
    design = np.stack([lx, np.ones_like(lx)], axis=1)
    (slope, c), *_ = np.linalg.lstsq(design, ly, rcond=None)
    resid = ly - (slope * lx + c)
    ss = np.sum((ly - ly.mean()) ** 2)
    return {"slope": float(slope), "prefactor": float(np.exp(c)), "r2": float(1 - resid @ resid / ss) if ss else 1.0}


def _config_for(base: SeqConfig, field: str, value: int, keep_d_head: bool) -> SeqConfig:
    if field == "n":
        return replace(base, n_ctx=value)
    if field == "n_heads":
        return replace(base, n_heads=value, d_head=base.d_head if keep_d_head else max(1, base.d_model // value))
    if field == "d_model":
        return replace(base, d_model=value, d_head=max(1, value // base.n_heads))
    return replace(base, **{field: value})


def sweep(
    make_target: Callable[[int], Target],
    base: SeqConfig,
    train_cfg: TrainConfig,
    *,
    vary: str,
    values: Sequence[int],
    n: int,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    keep_d_head: bool = False,
    init: str = "default",
    beta: float = 4.0,
) -> dict:
    """Train one model per value of ``vary`` and fit how the test error falls.

    Args:
        make_target: ``n -> Target`` (the sequence length only changes when ``vary == "n"``).
        base: architecture of every run but the swept field (``d_head`` follows ``d_model // n_heads`` when
            heads or d_model vary).
        train_cfg: training of every run.
        vary: ``heads``, ``d_ff`` (alias ``width``), ``d_model`` or ``n``.
        values: the values, integers >= 1.
        n: sequence length when ``vary != "n"``.
        progress: progress bars.
        log: called with one line per finished run.
        keep_d_head: when heads vary, keep ``base.d_head`` (``d_model`` unchanged) instead of ``d_model // heads``.
        init: ``"default"``, or ``"gather"`` (:func:`lamina.seq.train.gather_init` with ``beta``).

    Returns:
        ``{"vary", "values", "runs": [...], "slopes": {"rel_mse": ..., "sup_error": ..., "rel_mse_vs_params": ...},
        "baselines": {...}}``; each run has the value, parameter count, test ``rel_mse``, ``mse``, ``sup_error``,
        seconds and steps. Baselines are for the target at ``n`` (per run when ``vary == "n"``).
    """
    if init not in ("default", "gather"):
        raise InputError(f"init: expected default or gather, got {init!r}")
    check_choice("vary", vary, SWEEPABLE)
    values = [check_count("values", v) for v in values]
    if len(set(values)) != len(values) or len(values) < 2:
        raise InputError(f"values: expected two or more distinct integers >= 1 (a power law is fitted through "
                         f"them), got {values}")
    n = check_count("n", n)
    field = SWEEPABLE[vary]
    for v in values:  # every run's size checked against memory before the first one trains
        target = make_target(v if field == "n" else n)
        cfg = _config_for(replace(base, n_ctx=target.n, d_in=target.d, d_out=target.d_out), field, v, keep_d_head)
        check_training_memory(cfg, target, train_cfg)
    runs = []
    base_lines = None
    for v in values:
        target = make_target(v if field == "n" else n)
        cfg = _config_for(replace(base, n_ctx=target.n, d_in=target.d, d_out=target.d_out), field, v, keep_d_head)
        with torch_seed(train_cfg.seed):  # scoped: the caller's RNG is restored
            model = SingleLayerTransformer(cfg)
        if init == "gather":
            gather_init(model, beta=beta)
        result = train(model, target, train_cfg, progress=progress)
        run = {"value": v, "n_params": model.n_params, "d_model": cfg.d_model, "d_head": cfg.d_head, **result.metrics}
        if field == "n" or base_lines is None:
            n_fit = min(train_cfg.num_train or 50_000, 50_000)
            xtr, ytr = target.sample(n_fit, np.random.default_rng([train_cfg.seed, 1]))
            xte, yte = target.sample(train_cfg.num_test, np.random.default_rng([train_cfg.seed, 2]))
            base_lines = baselines(target, xtr, ytr, xte, yte)
            run["baselines"] = base_lines
        runs.append(run)
        if log is not None:
            log(f"{vary}={v}: rel. MSE {run['rel_mse']:.4g}, sup error {run['sup_error']:.3g}, "
                f"{run['n_params']:,} parameters, {run['seconds']:.0f} s")
    vals = [r["value"] for r in runs]
    slopes = {
        "rel_mse": power_law_slope(vals, [r["rel_mse"] for r in runs]),
        "sup_error": power_law_slope(vals, [r["sup_error"] for r in runs]),
        "rel_mse_vs_params": power_law_slope([r["n_params"] for r in runs], [r["rel_mse"] for r in runs]),
    }
    return {"vary": vary, "values": vals, "base_config": base.to_dict(), "train_config": train_cfg.to_dict(),
            "init": init, "keep_d_head": keep_d_head, "runs": runs, "slopes": slopes, "baselines": base_lines}


def construct_vs_train(
    target: Target,
    *,
    eps_values: Sequence[float],
    widths: Sequence[int],
    train_cfg: TrainConfig,
    d_model: int = 32,
    sup_kwargs: dict | None = None,
    progress: bool = True,
) -> dict:
    """Parameters needed for a given sup error: the certified construction against trained models.

    For each ``eps`` the construction's parameter count, certificate and measured sup error; for each FFN width a
    trained model (one-hot positions, ``n`` heads, ``d_model``) and its measured sup error (random, corner and
    adversarial inputs, :func:`lamina.seq.verify.sup_error`).
    """
    from lamina.seq.construct import construct
    from lamina.seq.verify import sup_error

    kw = {"num_random": 5_000, "num_corners": 500, "starts": 4, "steps": 20, **(sup_kwargs or {})}
    constructed = []
    eps_values = [check_real("eps_values", e, low=0.0, low_open=True) for e in eps_values]
    widths = [check_count("widths", w) for w in widths]
    for name, vals in (("eps_values", eps_values), ("widths", widths)):
        if not vals or len(set(vals)) != len(vals):
            raise InputError(f"{name}: expected distinct values, at least one, got {vals}")
    configs = [SeqConfig(n_ctx=target.n, d_in=target.d, d_out=target.d_out, d_model=d_model, n_heads=target.n,
                         d_ff=w, positional="onehot") for w in widths]
    for cfg in configs:  # before the first construction: a width too large for memory fails at once
        check_training_memory(cfg, target, train_cfg)
    for eps in eps_values:
        c = construct(target, eps=eps)
        measured = sup_error(c, target, **kw)
        constructed.append({"eps": eps, "n_params": c.certificate.n_params, "n_nonzero": c.certificate.n_nonzero,
                            "certified": c.certificate.total, "measured_sup": measured["max"]})
    trained = []
    for w, cfg in zip(widths, configs, strict=True):
        with torch_seed(train_cfg.seed):  # scoped: the caller's RNG is restored
            model = SingleLayerTransformer(cfg)
        result = train(model, target, train_cfg, progress=progress)
        model = result.model.double()
        measured = sup_error(model.predict, target, **kw)
        trained.append({"d_ff": w, "n_params": model.n_params, "rel_mse": result.metrics["rel_mse"],
                        "measured_sup": measured["max"], "seconds": result.metrics["seconds"]})
    return {
        "target": target.describe(),
        "constructed": constructed,
        "trained": trained,
        "slopes": {
            "constructed_sup_vs_params": power_law_slope([r["n_params"] for r in constructed],
                                                         [r["measured_sup"] for r in constructed]),
            "trained_sup_vs_params": power_law_slope([r["n_params"] for r in trained],
                                                     [r["measured_sup"] for r in trained]),
        },
    }
