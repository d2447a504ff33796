"""Writing the evaluation report: JSON, a Markdown table (mean +- std over seeds) and figures (PNG)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from lamina._io import atomic_path, write_json_atomic, write_text_atomic
from lamina._process import new_figure
from lamina.weights.probes.probex import settings_text

METRICS = ("map", "map_chance", "auc", "accuracy", "accuracy_chance", "fit_seconds", "n_params")


def _method_order(m: str) -> tuple:
    order = ["probex", "probex@", "probex-compact@", "dense-logistic@", "ridge@", "low-rank@", "statnn", "cross-tree@",
             "text", "zero-shot", "text (root)", "zero-shot (root)", "data-aware (layer)", "data-aware (model)"]
    for i, p in enumerate(order):
        if m == p or (p.endswith("@") and m.startswith(p)):
            return (i, m)
    return (len(order), m)


def aggregate(rows: list[dict]) -> dict:
    """(tree, method) -> {metric: (mean, std)} over seeds."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    layers = {}
    for r in rows:
        if r["method"].startswith("_"):
            continue
        for k in METRICS:
            acc[(r["tree"], r["method"])][k].append(float(r[k]))
        layers[(r["tree"], r["method"])] = r["layer"]
    out = {}
    for key, d in acc.items():
        out[key] = {k: (float(np.mean(v)), float(np.std(v))) for k, v in d.items()}
        out[key]["layer"] = layers[key]
        out[key]["n_seeds"] = len(d["map"])
    return out


def markdown(report: dict) -> str:
    agg = aggregate(report["rows"])
    trees = sorted({t for t, _ in agg})
    methods = sorted({m for _, m in agg}, key=_method_order)
    lines = [
        f"Zoo: `{report['zoo']}`; models per tree: "
        + ", ".join(f"{t} {n}" for t, n in report["n_models"].items())
        + f"; seeds: {report['config']['seeds']}; evaluation took {report['seconds']:.0f} s.",
        "",
        f"Seen categories: {len(report['categories']['seen'])}; held-out (zero-shot): "
        + ", ".join(report["categories"]["heldout"]) + ".",
        "",
        "| tree | method | layer | mAP | mAP chance | AUC (chance 0.5) | per-class acc. | acc. chance | "
        "trainable params | fit time (s) | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trees:
        for m in methods:
            if (t, m) not in agg:
                continue
            a = agg[(t, m)]

            def pm(k, nd=3, a=a):
                return f"{a[k][0]:.{nd}f} ± {a[k][1]:.{nd}f}"

            params = f"{a['n_params'][0]:,.0f}" if a["n_params"][0] > 0 else "n/a"
            lines.append(f"| {t} | {m} | {a['layer']} | {pm('map')} | {a['map_chance'][0]:.3f} | {pm('auc')} | "
                         f"{pm('accuracy')} | {a['accuracy_chance'][0]:.3f} | {params} | {pm('fit_seconds', 1)} | "
                         f"{a['n_seeds']} |")
    d = report["discovery"]
    lines += ["", f"Tree discovery from weights alone: adjusted Rand index {d['ari']:.3f} "
              f"({d['n_found']} trees found, {d['n_true']} true; {d['seconds']:.0f} s)."]
    for k, v in d.items():
        if k.startswith("ari["):
            lines.append(f"Pair {k[4:-1]} (a nested root and its parent, or two trees of one root): adjusted Rand "
                         f"index {v:.3f}.")
    lines += ["", "Layer sweep (ProbeX, validation mAP, seed " + str(report["config"]["seeds"][0]) + "):", ""]
    grid = report["config"].get("probex_grid") or []
    if not grid:
        lines += ["| tree | layer | shape | validation mAP |", "|---|---|---|---|"]
    else:  # the sweep also chose among ProbeX settings
        lines += ["| tree | layer | shape | ProbeX settings | validation mAP |", "|---|---|---|---|---|"]
    for r in sorted(report["layer_sweep"], key=lambda r: (r["tree"], r["layer"], r.get("variant", 0))):
        how = ""
        if grid:
            how = f" {settings_text(r['settings'])} |"
        lines.append(f"| {r['tree']} | {r['layer']} | {'x'.join(map(str, r['shape']))} |{how} {r['val_map']:.3f} |")
    dense_settings = report.get("dense_settings") or {}
    for t, o in sorted((report.get("best_settings") or {}).items()):
        if not o:
            continue
        lines.append("")
        if o.get("init") == "ridge":
            dense = dense_settings.get(t, {})
            lines.append(f"Tree {t}: ProbeX and its compact variant train with the chosen settings "
                         f"{settings_text(o)} (from the closed-form ridge start); the dense logistic probe, which "
                         f"starts from zero, trains with the best settings without that start "
                         f"({settings_text(dense)}).")
        else:
            lines.append(f"Tree {t}: ProbeX, its compact variant and the dense logistic probe train with the chosen "
                         f"settings {settings_text(o)}.")
    chosen: dict[str, list[str]] = {}
    for r in report["rows"]:
        if r["method"] == "zero-shot" and "text_rank" in r:
            cv = ", ".join(f"{k}: " + ("n/a" if v is None else f"{v:.3f}") for k, v in r["text_rank_cv"].items())
            chosen.setdefault(r["tree"], []).append(f"seed {r['seed']}: rank {r['text_rank']} ({cv})")
    for t, runs in sorted(chosen.items()):
        lines += ["", f"Tree {t}: the text readout's rank, chosen per seed by zero-shot mAP on folds of the seen "
                      f"categories (validation models; held-out categories unseen): {'; '.join(runs)}."]
    skipped = sum(len(v) for v in report["skipped"].values()) + len(d.get("skipped", []))
    lines += ["", f"Broken models skipped: {skipped}."]
    return "\n".join(lines) + "\n"


def figures(report: dict, out: Path) -> list[Path]:
    """Draw ``map_per_method.png`` and ``representation_map.png`` into ``out`` (no pyplot, no backend change)."""
    written = []
    agg = aggregate(report["rows"])
    trees = sorted({t for t, _ in agg})
    methods = sorted({m for _, m in agg}, key=_method_order)
    fig = new_figure(figsize=(4.2 * len(trees), 4.2))
    axes = fig.subplots(1, len(trees), squeeze=False)
    for ax, t in zip(axes[0], trees, strict=True):
        ms = [m for m in methods if (t, m) in agg]
        vals = [agg[(t, m)]["map"][0] for m in ms]
        errs = [agg[(t, m)]["map"][1] for m in ms]
        ax.barh(range(len(ms)), vals, xerr=errs, color="#4C72B0")
        for i, m in enumerate(ms):
            ax.plot([agg[(t, m)]["map_chance"][0]] * 2, [i - 0.4, i + 0.4], color="k", lw=1.5)
        ax.set_yticks(range(len(ms)), ms, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("mean average precision (black: chance)")
    fig.tight_layout()
    p = out / "map_per_method.png"
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=120)
    written.append(p)

    # 2-D maps: fingerprints (all models) and the cross-tree ProbeX representation (test models)
    m = report.get("_map")
    zs = [r for r in report["rows"] if r["method"] == "_map"]
    fig = new_figure(figsize=(11, 4.8))
    axes = fig.subplots(1, 2)
    if m is not None and len(m["fingerprints"]):
        from sklearn.decomposition import PCA

        v = np.asarray(m["fingerprints"])
        keys = np.array(m["keys"])
        true = np.array(m["true"])
        for key in sorted(set(keys)):
            sel = keys == key
            xy = PCA(2).fit_transform(v[sel]) if sel.sum() > 2 else np.zeros((sel.sum(), 2))
            off = 0 if key == sorted(set(keys))[0] else (np.ptp(xy[:, 0]) * 1.3 if len(xy) else 0)
            for t in sorted(set(true[sel])):
                s2 = true[sel] == t
                axes[0].scatter(xy[s2, 0] + off, xy[s2, 1], s=3, label=t)
        axes[0].set_title("weight fingerprints (PCA per architecture), by true tree", fontsize=9)
        axes[0].legend(fontsize=7, markerscale=3)
    if zs:
        from sklearn.decomposition import PCA

        z = np.concatenate([np.asarray(r["z"]) for r in zs])
        lab = np.concatenate([[r["tree"]] * len(r["z"]) for r in zs])
        xy = PCA(2).fit_transform(z)
        for t in sorted(set(lab)):
            axes[1].scatter(xy[lab == t, 0], xy[lab == t, 1], s=4, label=t)
        axes[1].set_title("cross-tree ProbeX representation of test models (PCA)", fontsize=9)
        axes[1].legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    p = out / "representation_map.png"
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=120)
    written.append(p)
    return written


def write_report(report: dict, out: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and the figures into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = figures(report, out)
    clean = {k: v for k, v in report.items() if not k.startswith("_")}
    clean["rows"] = [r for r in report["rows"] if not r["method"].startswith("_")]
    clean["summary"] = [{"tree": t, "method": m, **{k: v for k, v in a.items()}}
                        for (t, m), a in sorted(aggregate(report["rows"]).items())]
    write_json_atomic(out / "report.json", clean)
    write_text_atomic(out / "report.md", markdown(report))
    return {"json": out / "report.json", "markdown": out / "report.md", **{p.stem: p for p in figs}}
