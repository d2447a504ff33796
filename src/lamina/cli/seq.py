"""``lamina seq``: single-layer transformers as universal approximators."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from lamina.cli._common import echo_written, new_app, number_or_text, positive_ints

app = new_app("Single-layer transformers: constructed with a certified error, and trained.")

OUT = typer.Option(..., "-o", "--out", help="Report directory (JSON, Markdown, figures/, model/).")
PARAM = typer.Option(None, "--param", "-p", help="Target parameter key=value (repeatable), e.g. tau=10.")


def _params(items: list[str] | None) -> dict:
    from lamina.errors import InputError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--param: expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        out[key.strip().replace("-", "_")] = number_or_text(raw)
    return out


def _floats(text: str, name: str) -> list[float]:
    from lamina.errors import InputError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(f"{name}: expected comma-separated finite numbers > 0, got {text!r}")
    return values


def _report_files(out: Path, kind: str, *more: str) -> list[Path]:
    """What a report command wrote into ``out``: ``<kind>.json``, ``<kind>.md``, ``figures/`` and ``more``."""
    return [out / f"{kind}.json", out / f"{kind}.md", out / "figures", *(out / m for m in more)]


def _model_sha256(folder: Path) -> str:
    from lamina._io import read_checkpoint_config

    return read_checkpoint_config(folder)["sha256"]


def _model_config(task, heads, d_model, d_head, d_ff, positional, attention, attn_scale, layer_norm):
    from lamina.seq.model import SeqConfig

    return SeqConfig(n_ctx=task.n, d_in=task.d, d_out=task.d_out, d_model=d_model, n_heads=heads, d_head=d_head,
                     d_ff=d_ff, positional=positional, attention=attention, attn_scale=attn_scale,
                     layer_norm=layer_norm)


def _train_config(steps, batch_size, lr, num_train, num_test, time_limit, threads, seed, eval_every):
    from lamina.seq.train import TrainConfig

    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, num_train=num_train or None, num_test=num_test,
                       time_limit_s=time_limit, threads=threads, seed=seed, eval_every=eval_every)


@app.command("targets")
def targets_cmd() -> None:
    """List the target maps (and the in-context regression task) with their defaults."""
    from lamina.seq.targets import TARGETS

    for name, cls in sorted(TARGETS.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        typer.echo(f"{name:16s} {doc}")
    typer.echo(f"{'icl-regression':16s} In-context linear regression (n: context examples, d: inputs), "
               "scored at the query.")


@app.command("construct")
def construct_cmd(
    target: str = typer.Argument(..., help="Target name (see `lamina seq targets`)."),
    out: Path = OUT,
    n: int = typer.Option(None, help="Sequence length (default: the target's)."),
    d: int = typer.Option(None, help="Features per token (default: the target's)."),
    domain: tuple[float, float] = typer.Option((0.0, 1.0), help="Box [a, b] of every token feature."),
    eps: float = typer.Option(None, help="Certified sup error to reach (default 0.01 unless --size is given)."),
    size: tuple[int, int] = typer.Option(None, help="Fixed (directions, knots) per position, a-posteriori route."),
    lipschitz: float = typer.Option(None, help="Max-norm Lipschitz constant of the target (overrides its own)."),
    beta: float = typer.Option(None, help="Softmax scale of the gathering heads (default: automatic)."),
    method: str = typer.Option("auto", help="auto, ridge (a priori) or grid (a posteriori)."),
    param: list[str] = PARAM,
    max_params: int = typer.Option(5_000_000, help="Refuse constructions larger than this."),
    max_evaluations: float = typer.Option(5e7, help="Point evaluations the a-posteriori certificate may spend."),
    verify_random: int = typer.Option(20_000, help="Random inputs for the measured sup error."),
    seed: int = typer.Option(0),
) -> None:
    """Build a transformer for TARGET with explicit weights and a certified error bound; measure it."""
    from lamina.errors import InputError
    from lamina.seq.report import construct_report
    from lamina.seq.targets import Target, make_task

    task = make_task(target, n=n, d=d, domain=domain, **_params(param))
    if not isinstance(task, Target):
        raise InputError(f"target: {target} is a sampled task, not a map on a box; train it instead of constructing")
    if eps is None and size is None:
        eps = 0.01
    s = construct_report(out, task, eps=eps, size=size, beta=beta, method=method, lipschitz=lipschitz,
                         max_params=max_params, max_evaluations=max_evaluations, verify_random=verify_random,
                         seed=seed)
    c, m = s["certificate"], s["measured"]
    typer.echo(f"certified sup error {c['total']:.4g} (interpolation {c['interpolation_bound']:.3g} + leakage "
               f"{c['leakage_bound']:.3g}; float64 rounding floor {c['rounding_floor']:.2g}); measured "
               f"{m['max']:.4g} (random {m['random']:.3g}, adversarial "
               f"{m['adversarial']:.3g}); {c['n_params']:,} parameters; holds: {s['certificate_holds']}", err=True)
    typer.echo(f"report: {out / 'construct.md'}", err=True)
    echo_written("seq construct", _report_files(out, "construct", "model"), {
        "target": target, "certificate_holds": s["certificate_holds"], "certified_error": c["total"],
        "measured_error": m["max"], "parameters": c["n_params"], "seed": seed,
        "model_sha256": _model_sha256(out / "model")})


@app.command("train")
def train_cmd(
    target: str = typer.Argument(..., help="Target name, or icl-regression."),
    out: Path = OUT,
    n: int = typer.Option(None, help="Sequence length (icl-regression: context examples)."),
    d: int = typer.Option(None, help="Features per token (icl-regression: regression inputs)."),
    param: list[str] = PARAM,
    heads: int = typer.Option(4, help="Attention heads."),
    d_model: int = typer.Option(64, help="Residual width."),
    d_head: int = typer.Option(None, help="Width per head (default d_model // heads)."),
    d_ff: int = typer.Option(256, help="Hidden ReLU units of the feed-forward layer (0: attention only)."),
    positional: str = typer.Option("onehot", help="onehot, learned, sinusoidal or none."),
    attention: str = typer.Option("softmax", help="softmax or linear."),
    attn_scale: float = typer.Option(None, help="Softmax scale (default 1/sqrt(d_head))."),
    layer_norm: bool = typer.Option(False, help="Pre-norm layer norms."),
    init: str = typer.Option("default", help="default, or gather (heads start attending to fixed positions)."),
    steps: int = typer.Option(20_000),
    batch_size: int = typer.Option(256),
    lr: float = typer.Option(3e-3),
    num_train: int = typer.Option(50_000, help="Training sequences (0: fresh samples every step)."),
    num_test: int = typer.Option(2_000),
    time_limit: float = typer.Option(None, help="Stop after this many seconds."),
    threads: int = typer.Option(2),
    eval_every: int = typer.Option(500),
    seed: int = typer.Option(0),
) -> None:
    """Train a single-layer transformer on TARGET by Adam; report against the baselines."""
    from lamina.errors import InputError
    from lamina.seq.report import train_report
    from lamina.seq.targets import make_task

    if init not in ("default", "gather"):
        raise InputError(f"--init: expected default or gather, got {init!r}")
    task = make_task(target, n=n, d=d, **_params(param))
    mcfg = _model_config(task, heads, d_model, d_head, d_ff, positional, attention, attn_scale, layer_norm)
    tcfg = _train_config(steps, batch_size, lr, num_train, num_test, time_limit, threads, seed, eval_every)
    s = train_report(out, task, mcfg, tcfg, init=init)
    m = s["metrics"]
    extra = ""
    if "baselines" in s:
        extra = f"; linear baseline {s['baselines']['linear']:.4g}, mean-field {s['baselines']['mean_field']:.4g}"
    if "gd_comparison" in s:
        g = s["gd_comparison"]
        extra = f"; one GD step MSE {g['mse_gd_eta_star']:.4g} vs model {g['mse_model']:.4g}"
    typer.echo(f"test relative MSE {m['rel_mse']:.4g} ({m['n_params']:,} parameters, {m['steps']} steps, "
               f"{m['seconds']} s){extra}", err=True)
    typer.echo(f"report: {out / 'train.md'}", err=True)
    echo_written("seq train", _report_files(out, "train", "model", "checkpoint"), {
        "target": target, "rel_mse": m["rel_mse"], "parameters": m["n_params"], "steps": m["steps"], "seed": seed,
        "model_sha256": _model_sha256(out / "model")})


@app.command("sweep")
def sweep_cmd(
    target: str = typer.Argument(..., help="Target name."),
    out: Path = OUT,
    vary: str = typer.Option("heads", help="heads, d_ff (width), d_model or n."),
    values: str = typer.Option("1,2,4,8,16", help="Comma-separated values."),
    n: int = typer.Option(None, help="Sequence length when not swept (default: the target's)."),
    d: int = typer.Option(None),
    param: list[str] = PARAM,
    heads: int = typer.Option(4),
    d_model: int = typer.Option(64),
    d_head: int = typer.Option(None, help="Keep this width per head (default: d_model // heads)."),
    d_ff: int = typer.Option(256),
    positional: str = typer.Option("onehot"),
    init: str = typer.Option("default", help="default, or gather (heads start attending to fixed positions)."),
    steps: int = typer.Option(5_000),
    batch_size: int = typer.Option(256),
    lr: float = typer.Option(3e-3),
    num_train: int = typer.Option(50_000, help="Training sequences (0: fresh samples every step)."),
    num_test: int = typer.Option(2_000),
    time_limit: float = typer.Option(None, help="Seconds per run."),
    threads: int = typer.Option(2),
    seed: int = typer.Option(0),
) -> None:
    """Train one model per value and fit how the error falls (log-log slopes)."""
    from lamina.seq.report import sweep_report
    from lamina.seq.targets import make_task

    extra = _params(param)
    vals = positive_ints(values, "--values")
    first = make_task(target, n=n, d=d, **extra)
    mcfg = _model_config(first, heads, d_model, d_head, d_ff, positional, "softmax", None, False)
    tcfg = _train_config(steps, batch_size, lr, num_train, num_test, time_limit, threads, seed, max(1, steps // 10))
    res = sweep_report(out, lambda length: make_task(target, n=length, d=first.d if d is None else d, **extra),
                       mcfg, tcfg, vary=vary, values=vals, n=first.n, log=lambda m: typer.echo(m, err=True), init=init,
                       keep_d_head=d_head is not None)
    typer.echo(f"slope of relative MSE vs {vary}: {res['slopes']['rel_mse']['slope']:.3f}; "
               f"report: {out / 'sweep.md'}", err=True)
    echo_written("seq sweep", _report_files(out, "sweep"), {
        "target": target, "vary": vary, "values": vals, "runs": len(res["runs"]),
        "slope_rel_mse": res["slopes"]["rel_mse"]["slope"], "seed": seed})


@app.command("compare")
def compare_cmd(
    target: str = typer.Argument(..., help="Target name (small n*d, e.g. smooth-cummax with n=2)."),
    out: Path = OUT,
    n: int = typer.Option(2),
    d: int = typer.Option(1),
    param: list[str] = PARAM,
    eps: str = typer.Option("0.1,0.03,0.01,0.003", help="Certified errors to construct."),
    widths: str = typer.Option("4,16,64,256", help="FFN widths to train."),
    d_model: int = typer.Option(32),
    steps: int = typer.Option(3_000),
    lr: float = typer.Option(3e-3),
    threads: int = typer.Option(2),
    seed: int = typer.Option(0),
) -> None:
    """Parameters needed for a given sup error: certified construction against trained models."""
    from lamina.errors import InputError
    from lamina.seq.report import compare_report
    from lamina.seq.targets import Target, make_task

    task = make_task(target, n=n, d=d, **_params(param))
    if not isinstance(task, Target):
        raise InputError(f"target: {target} is a sampled task, not a map on a box; it cannot be constructed")
    tcfg = _train_config(steps, 256, lr, 0, 2_000, None, threads, seed, max(1, steps // 10))
    res = compare_report(out, task, eps_values=_floats(eps, "--eps"), widths=positive_ints(widths, "--widths"),
                         train_cfg=tcfg, d_model=d_model)
    typer.echo(f"constructed: {[(r['n_params'], round(r['measured_sup'], 5)) for r in res['constructed']]}", err=True)
    typer.echo(f"trained:     {[(r['n_params'], round(r['measured_sup'], 5)) for r in res['trained']]}", err=True)
    typer.echo(f"report: {out / 'compare.md'}", err=True)
    echo_written("seq compare", _report_files(out, "compare"), {
        "target": target, "constructed": len(res["constructed"]), "trained": len(res["trained"]), "seed": seed})
