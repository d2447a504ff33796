"""Reports: run a construction, a training or a sweep and write JSON + Markdown + PNG figures into a directory.

Each function returns the JSON-able summary it wrote (``<kind>.json``), next to ``<kind>.md`` and ``figures/``;
constructions and trainings also write the model as a lamina checkpoint (``model/``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from lamina._io import write_json_atomic, write_text_atomic
from lamina._process import torch_seed
from lamina._validation import SEED_MAX, check_count, check_seed
from lamina.errors import InputError
from lamina.seq import figures
from lamina.seq.model import SeqConfig, SingleLayerTransformer, save_model
from lamina.seq.targets import Target


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def md_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows`` restricted to ``columns``."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows)


def _mean_attention(model: SingleLayerTransformer, x: np.ndarray) -> np.ndarray:
    model = model.eval()
    with torch.no_grad():
        _, pattern = model(torch.as_tensor(x, dtype=model.dtype), return_attention=True)
    return pattern.double().mean(dim=0).numpy()  # (H, L, L)


def _finish(out: Path, kind: str, summary: dict, markdown: str) -> dict:
    write_json_atomic(out / f"{kind}.json", summary)
    write_text_atomic(out / f"{kind}.md", markdown)
    return summary


def construct_report(out, target: Target, *, eps: float | None, size=None, beta=None, method: str = "auto",
                     lipschitz=None, max_params: int = 5_000_000, max_evaluations: float = 5e7,
                     verify_random: int = 20_000, adversarial_starts: int = 8, seed: int = 0) -> dict:
    """Construct, measure the sup error (random, corners, adversarial) and write ``construct.{json,md}``."""
    from lamina.seq.construct import construct
    from lamina.seq.verify import sup_error

    verify_random = check_count("verify_random", verify_random)
    adversarial_starts = check_count("adversarial_starts", adversarial_starts, minimum=0)
    seed = check_seed("seed", seed)
    out = Path(out)
    t0 = time.perf_counter()
    c = construct(target, eps=eps, size=size, beta=beta, method=method, lipschitz=lipschitz,
                  max_params=max_params, max_evaluations=max_evaluations, seed=seed)
    build_s = time.perf_counter() - t0
    dim = c.target.n * c.target.d  # each ascent step costs dim + 1 evaluations
    measured = sup_error(c, c.target, num_random=verify_random, num_corners=max(100, verify_random // 10),
                         starts=adversarial_starts if dim <= 10 else min(adversarial_starts, 2),
                         steps=30 if dim <= 10 else 10, seed=(seed + 1) % (SEED_MAX + 1))
    cert = c.certificate.to_dict()
    holds = measured["max"] <= c.certificate.total * (1 + 1e-9) + c.certificate.rounding_floor
    if not holds:  # nothing is written: a report never carries a certificate that a measured input refutes
        raise InputError(
            f"lipschitz: the certificate {c.certificate.total:.4g} is below the error {measured['max']:.4g} measured "
            f"at an input of target {c.target.name!r}: the Lipschitz constant {c.certificate.lipschitz_target} is "
            "too small; pass an upper bound of the max-norm Lipschitz constant"
        )
    save_model(c.model, out / "model", metadata={"target": c.target.describe(), "certificate": cert})
    x = np.random.default_rng(seed).uniform(*c.target.domain, size=(64, c.target.n, c.target.d))
    figs = {"attention": figures.attention_maps(out / "figures" / "attention.png", c.attention(x).mean(axis=0),
                                                title=f"constructed attention, beta={c.certificate.beta:.3g}")}
    summary = {
        "target": c.target.describe(),
        "certificate": cert,
        "measured": {k: v for k, v in measured.items() if k != "argmax"},
        "worst_input": measured["argmax"],
        "certificate_holds": bool(holds),
        "seconds": round(build_s, 2),
        "figures": {k: str(v.relative_to(out)) for k, v in figs.items()},
    }
    md = [f"# Constructed single-layer Transformer: {c.target.name}\n",
          f"Target: `{c.target.describe()}`\n",
          f"Method: {cert['method']}; built in {build_s:.2f} s.\n",
          "## Certificate against measurement\n",
          md_table([{"quantity": k, "value": v} for k, v in (
              ("eps asked", cert["eps"]), ("interpolation bound", cert["interpolation_bound"]),
              ("attention-leakage bound", cert["leakage_bound"]), ("certified total", cert["total"]),
              ("float64 rounding floor", cert["rounding_floor"]),
              ("measured sup, random", measured["random"]), ("measured sup, corners", measured["corners"]),
              ("measured sup, adversarial", measured["adversarial"]), ("certificate holds", holds))],
              ["quantity", "value"]),
          "\n## Size\n",
          md_table([{"quantity": k, "value": cert[k]} for k in (
              "beta", "n_heads", "d_model", "ffn_width", "n_params", "n_nonzero", "lipschitz_target",
              "lipschitz_network")], ["quantity", "value"]),
          "\n![attention](figures/attention.png)\n"]
    return _finish(out, "construct", summary, "\n".join(md))


def train_report(out, task, model_cfg: SeqConfig, train_cfg, *, init: str = "default", beta: float = 4.0,
                 progress: bool = True) -> dict:
    """Train, compute the baselines (or the GD comparison for in-context regression), write ``train.{json,md}``."""
    from lamina.seq.train import baselines, gather_init, train

    out = Path(out)
    with torch_seed(train_cfg.seed):  # scoped: the caller's RNG is restored
        model = SingleLayerTransformer(model_cfg)
    if init == "gather":
        gather_init(model, beta=beta)
    result = train(model, task, train_cfg, checkpoint_dir=out / "checkpoint", progress=progress)
    model = result.model
    summary = {"task": task.describe(), "model_config": model_cfg.to_dict(), "train_config": train_cfg.to_dict(),
               "init": init, "metrics": result.metrics, "history": result.history}
    if getattr(task, "name", "") == "icl-regression":
        from lamina.seq.icl import compare_with_gd

        summary["gd_comparison"] = compare_with_gd(model.predict, task, seed=train_cfg.seed)
        lines = {}
    else:
        n_fit = train_cfg.num_train or 50_000
        xtr, ytr = task.sample(n_fit, np.random.default_rng([train_cfg.seed, 1]))
        xte, yte = task.sample(train_cfg.num_test, np.random.default_rng([train_cfg.seed, 2]))
        summary["baselines"] = lines = baselines(task, xtr, ytr, xte, yte)
    save_model(model, out / "model", metadata={"task": task.describe(), "metrics": result.metrics})
    x = task.sample(256, np.random.default_rng([train_cfg.seed, 9]))[0]
    title = f"{task.name}: mean attention over 256 inputs"
    figs = {
        "learning_curve": figures.learning_curve(out / "figures" / "learning_curve.png", result.history,
                                                 baselines={f"{k} baseline": v for k, v in lines.items()},
                                                 title=f"{task.name}, {model.n_params:,} parameters"),
        "attention": figures.attention_maps(out / "figures" / "attention.png", _mean_attention(model, x),
                                            title=title),
    }
    summary["figures"] = {k: str(v.relative_to(out)) for k, v in figs.items()}
    m = result.metrics
    md = [f"# Trained single-layer Transformer: {task.name}\n", f"Task: `{task.describe()}`\n",
          f"Model: `{model_cfg.to_dict()}` ({m['n_params']:,} parameters), init {init}.\n",
          f"Training: `{train_cfg.to_dict()}`; {m['steps']} steps in {m['seconds']} s "
          f"(stopped by {m['stopped_by']}).\n",
          "## Test error\n",
          md_table([{"model": "trained", "relative MSE": m["rel_mse"], "sup error (test set)": m["sup_error"]}]
                   + [{"model": f"{k} baseline", "relative MSE": v} for k, v in lines.items()],
                   ["model", "relative MSE", "sup error (test set)"])]
    if "gd_comparison" in summary:
        g = summary["gd_comparison"]
        md += ["\n## Against one step of gradient descent\n",
               md_table([{"quantity": k, "value": g[k]} for k in (
                   "mse_model", "mse_gd_eta_star", "mse_gd_eta_fitted", "mse_least_squares", "mse_zero", "eta_star",
                   "eta_fitted", "relative_difference", "gamma_r2", "gamma_vs_eta_identity")], ["quantity", "value"])]
    md += ["\n![learning curve](figures/learning_curve.png)\n", "![attention](figures/attention.png)\n"]
    return _finish(out, "train", summary, "\n".join(md))


def sweep_report(out, make_target, base: SeqConfig, train_cfg, *, vary: str, values, n: int,
                 progress: bool = True, log=None, **sweep_kwargs) -> dict:
    """Run :func:`lamina.seq.sweep.sweep` and write ``sweep.{json,md}`` with the error-versus-value figure."""
    from lamina.seq.sweep import sweep

    out = Path(out)
    res = sweep(make_target, base, train_cfg, vary=vary, values=values, n=n, progress=progress, log=log,
                **sweep_kwargs)
    runs = res["runs"]
    lines = {f"{k} baseline": v for k, v in (res["baselines"] or {}).items()} if vary != "n" else None
    fig = figures.error_vs(out / "figures" / f"error_vs_{vary}.png", res["values"],
                           {"test relative MSE": [r["rel_mse"] for r in runs],
                            "test sup error": [r["sup_error"] for r in runs]},
                           xlabel=vary, hlines=lines,
                           slopes={"test relative MSE": res["slopes"]["rel_mse"]["slope"],
                                   "test sup error": res["slopes"]["sup_error"]["slope"]},
                           title=f"error vs {vary}")
    res["figures"] = {"error": str(fig.relative_to(out))}
    md = [f"# Sweep over {vary}\n", f"Base model: `{base.to_dict()}`, init {res['init']}, d_head kept: "
          f"{res['keep_d_head']}\n", f"Training: `{train_cfg.to_dict()}`\n",
          md_table(runs, ["value", "n_params", "rel_mse", "sup_error", "steps", "seconds"]),
          "\nFitted power laws (error ~ value^slope):\n",
          md_table([{"error": k, **v} for k, v in res["slopes"].items()], ["error", "slope", "prefactor", "r2"]),
          f"\nBaselines: `{res['baselines']}`\n", f"\n![error vs {vary}]({res['figures']['error']})\n"]
    return _finish(out, "sweep", res, "\n".join(md))


def compare_report(out, target: Target, *, eps_values, widths, train_cfg, d_model: int = 32,
                   progress: bool = True) -> dict:
    """Constructed versus trained: parameters against measured sup error; writes ``compare.{json,md}``."""
    from lamina.seq.sweep import construct_vs_train

    out = Path(out)
    res = construct_vs_train(target, eps_values=eps_values, widths=widths, train_cfg=train_cfg, d_model=d_model,
                             progress=progress)
    fig = figures.scatter_params(out / "figures" / "construct_vs_train.png", {
        "constructed (measured sup)": ([r["n_params"] for r in res["constructed"]],
                                       [r["measured_sup"] for r in res["constructed"]]),
        "constructed (certified)": ([r["n_params"] for r in res["constructed"]],
                                    [r["certified"] for r in res["constructed"]]),
        "trained (measured sup)": ([r["n_params"] for r in res["trained"]],
                                   [r["measured_sup"] for r in res["trained"]]),
    }, ylabel="sup error", title=f"{target.name}: constructed vs trained")
    res["figures"] = {"construct_vs_train": str(fig.relative_to(out))}
    md = [f"# Constructed versus trained: {target.name}\n", f"Target: `{target.describe()}`\n",
          "## Constructed\n",
          md_table(res["constructed"], ["eps", "n_params", "n_nonzero", "certified", "measured_sup"]),
          "\n## Trained\n", md_table(res["trained"], ["d_ff", "n_params", "rel_mse", "measured_sup", "seconds"]),
          "\n![constructed vs trained](figures/construct_vs_train.png)\n"]
    return _finish(out, "compare", res, "\n".join(md))
