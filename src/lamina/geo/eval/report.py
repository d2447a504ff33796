"""Report of a probe evaluation: summary statistics, target checks, results.json, results.md, one PNG per task."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lamina._io import atomic_path, write_json_atomic, write_text_atomic
from lamina._process import new_figure

METRIC_LABELS = {
    "f1_macro": "F1 macro",
    "f1_weighted": "F1 weighted",
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "r2_mean": "R² mean",
}
SCALAR_METRICS = ("accuracy", "f1_macro", "f1_weighted", "roc_auc", "r2_mean", "mae")
REFERENCE = "climplicit"
MUST_BEAT = ("lonlat", "sh10", "sh40")
FROM_SCRATCH = "mlp"
UNTRAINED = "random-init"
"""The same network left untrained: pretraining earns its place only where the reference beats it by more than the
seed noise ("beats"); within the noise it "matches" (pretraining adds nothing visible)."""


def _environment() -> dict:
    import sklearn
    import torch

    from lamina import __version__

    return {
        "lamina": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }


def summarise(records: Sequence[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per (task, method, split), for the headline score and each metric."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["task"], r["method"], r["split"]), []).append(r)
    out = []
    for (task, method, split), rs in groups.items():
        row = {"task": task, "method": method, "split": split, "n_seeds": len(rs)}
        scores = np.array([r["score"] for r in rs], dtype=float)
        row["score_mean"], row["score_std"] = float(scores.mean()), float(scores.std())
        for m in SCALAR_METRICS:
            vals = [r["metrics"][m] for r in rs if m in r["metrics"]]
            if vals:
                row[f"{m}_mean"], row[f"{m}_std"] = float(np.mean(vals)), float(np.std(vals))
        row["seconds_mean"] = float(np.mean([r["seconds"] for r in rs]))
        out.append(row)
    return out


def check_targets(summary: Sequence[dict], tasks: Sequence[str], splits: Sequence[str]) -> list[dict]:
    """The targets: the reference beats lonlat / SH on every task, matches or beats the MLP on half, and beats the
    same network untrained (pretraining must show).

    Versus the MLP, "matches" means the reference's mean is at most one standard deviation (the larger of the
    two, over seeds) below the MLP's mean. Versus the untrained network, "beats" needs a lead larger than that
    standard deviation; a smaller difference either way "matches".
    """
    idx = {(r["task"], r["method"], r["split"]): r for r in summary}
    checks = []
    for split in splits:
        for task in tasks:
            ref = idx.get((task, REFERENCE, split))
            if ref is None:
                continue
            for other in (*MUST_BEAT, FROM_SCRATCH, UNTRAINED):
                o = idx.get((task, other, split))
                if o is None:
                    continue
                diff = ref["score_mean"] - o["score_mean"]
                noise = max(ref["score_std"], o["score_std"])
                if other == FROM_SCRATCH:
                    verdict = "beats" if diff > 0 else ("matches" if diff >= -noise else "below")
                elif other == UNTRAINED:
                    verdict = "beats" if diff > noise else ("matches" if diff >= -noise else "below")
                else:
                    verdict = "beats" if diff > 0 else "below"
                checks.append({"task": task, "split": split, "versus": other, "difference": diff, "noise": noise,
                               "verdict": verdict})  # fmt: skip
    return checks


def build_report(*, tasks, methods, records, feature_info, skipped, settings, checkpoint, wall_seconds) -> dict:
    """Everything results.json holds."""
    summary = summarise(records)
    task_names = [t.name for t in tasks]
    return {
        "format": "lamina-geo-evaluation",
        "format_version": 1,
        "checkpoint": checkpoint,
        "settings": settings,
        "environment": _environment(),
        "wall_seconds": wall_seconds,
        "tasks": {
            t.name: {
                "kind": t.kind,
                "n_points": len(t),
                "metric": t.metric,
                "labels": list(t.labels),
                "units": t.units,
                "block_deg": t.block_deg,
                "n_folds": t.n_folds,
                "test_fraction": t.test_fraction,
                "description": t.description,
                "source": t.source,
            }
            for t in tasks
        },
        "methods": {m.name: m.description for m in methods},
        "skipped": skipped,
        "features": feature_info,
        "summary": summary,
        "targets": check_targets(summary, task_names, settings["splits"]),
        "records": records,
    }


def _fmt(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def markdown_table(report: dict, split: str) -> str:
    """Methods x tasks, headline metric mean ± std over seeds in percent; the best mean per task in bold."""
    tasks = list(report["tasks"])
    methods = list(report["methods"])
    idx = {(r["task"], r["method"], r["split"]): r for r in report["summary"]}
    head = (
        "| method | "
        + " | ".join(
            f"{t} ({METRIC_LABELS.get(report['tasks'][t]['metric'], report['tasks'][t]['metric'])})" for t in tasks
        )
        + " |"
    )
    lines = [head, "|---|" + "---:|" * len(tasks)]
    best = {}
    for t in tasks:
        vals = [idx[(t, m, split)]["score_mean"] for m in methods if (t, m, split) in idx]
        best[t] = max(vals) if vals else None
    for m in methods:
        cells = []
        for t in tasks:
            r = idx.get((t, m, split))
            if r is None:
                cells.append("–")
                continue
            cell = _fmt(r["score_mean"], r["score_std"])
            cells.append(f"**{cell}**" if r["score_mean"] == best[t] else cell)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    s = report["settings"]
    n_seeds = len(s["seeds"])
    parts = [
        "# lamina geo evaluate: single-layer probes on real ecological tasks",
        "",
        f"Checkpoint: {report['checkpoint'] or 'bundled default'}. Seeds: {n_seeds}. "
        f"Wall time: {report['wall_seconds'] / 60:.1f} min on {report['environment']['cpu_count']} CPU cores. "
        "Scores in %, mean ± std over seeds.",
    ]
    titles = {"random": "Random split (as in the paper)", "block": "Spatial block split"}
    for split in s["splits"]:
        parts += ["", f"## {titles[split]}", "", markdown_table(report, split)]
    if report["targets"]:
        parts += ["", "## Targets (climplicit versus baselines, difference in points)", ""]
        for c in report["targets"]:
            parts.append(
                f"- {c['task']} ({c['split']}): {c['verdict']} {c['versus']} "
                f"({100 * c['difference']:+.1f}, seed std {100 * c['noise']:.1f})"
            )
    if report["skipped"]:
        parts += ["", "## Skipped", ""] + [f"- {k}: {v}" for k, v in report["skipped"].items()]
    parts += ["", "## Tasks", ""]
    for name, t in report["tasks"].items():
        parts.append(f"- **{name}** ({t['kind']}, {t['n_points']} points, metric {t['metric']}): {t['description']} "
                     f"Block split cells: {t['block_deg']:g} degrees. Source: {t['source']}.")  # fmt: skip
    parts += ["", "## Methods", ""] + [f"- **{k}**: {v}" for k, v in report["methods"].items()]
    return "\n".join(parts) + "\n"


def task_figure(report: dict, task: str, path: Path) -> None:
    """Bar chart of one task: headline metric per method, random and block split, error bars = std over seeds."""
    methods = list(report["methods"])
    splits = report["settings"]["splits"]
    idx = {(r["method"], r["split"]): r for r in report["summary"] if r["task"] == task}
    info = report["tasks"][task]
    fig = new_figure(figsize=(1.1 * len(methods) + 2.5, 3.8), dpi=120)  # no pyplot: the backend stays as it is
    ax = fig.subplots()
    width = 0.8 / len(splits)
    x = np.arange(len(methods))
    for k, split in enumerate(splits):
        means = [100 * idx[(m, split)]["score_mean"] if (m, split) in idx else np.nan for m in methods]
        stds = [100 * idx[(m, split)]["score_std"] if (m, split) in idx else 0.0 for m in methods]
        ax.bar(x + (k - (len(splits) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=f"{split} split")
    ax.set_xticks(x, methods, rotation=30, ha="right")
    ax.set_ylabel(f"{METRIC_LABELS.get(info['metric'], info['metric'])} (%)")
    ax.set_title(f"{task}: {info['n_points']} points, {len(report['settings']['seeds'])} seeds", loc="left")
    lo = 50.0 if info["metric"] == "roc_auc" else 0.0
    ax.set_ylim(bottom=lo)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(splits), fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


def write_report(report: dict, out_dir: Path) -> list[Path]:
    """Write results.json, results.md and ``<task>.png`` into ``out_dir`` (each file atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        write_json_atomic(out_dir / "results.json", report),
        write_text_atomic(out_dir / "results.md", markdown_report(report)),
    ]
    for task in report["tasks"]:
        task_figure(report, task, out_dir / f"{task}.png")
        paths.append(out_dir / f"{task}.png")
    return paths
