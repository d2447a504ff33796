"""Fine-tuning the climate encoder (train = head, last, all) against the frozen linear probe of ``lamina geo
evaluate`` (method ``climplicit``), on the evaluation tasks and both splits.

Everything the probe sees, fine-tuning sees too: the same task samples (``EvalSettings.full()``: 6000 points for
koppen and koppen-main, all points for city-temperature and sdm-ariolimax, sample seed 0), the same outer splits
and seeds (:func:`lamina.geo.eval.splits.task_splits`), the same pooled test-side metrics. The probe is
:func:`lamina.geo.eval.evaluate.run_one` itself (logistic / ridge regression with the L2 strength chosen by inner
cross-validation on the training side). Fine-tuning (:func:`lamina.geo.finetune.finetune`) holds out whole
spatial blocks of the task's ``block_deg`` inside each training side for early stopping, and never sees the test
side. Seconds: per (task, split, seed) run, all folds; the probe's exclude computing the features once per task
(listed separately), fine-tuning's include embedding the training points.

Writes ``benchmarks/results/geo_finetune.{json,md}`` (or ``--out PREFIX``: PREFIX.json and PREFIX.md).

    python benchmarks/geo_finetune.py                                   # the full measurement (hours on 2 cores)
    python benchmarks/geo_finetune.py --tasks koppen --seeds 1 --n-points 300 --epochs 1 --out /tmp/ft  # a smoke run
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine
from lamina._io import write_json_atomic, write_text_atomic
from lamina.geo.eval.evaluate import EvalSettings, load_tasks, run_one
from lamina.geo.eval.features import EncoderFeatures
from lamina.geo.eval.splits import SPLIT_KINDS, task_splits
from lamina.geo.eval.tasks import task_names
from lamina.probe import classification_metrics, regression_metrics

METHODS = ("probe", "head", "last", "all")


def finetune_run(task, mode: str, *, split: str, seed: int, args) -> dict:
    """One (task, fine-tuning mode, split, seed): fit on each fold's training side, score the pooled test sides."""
    from lamina.geo.finetune import finetune

    t0 = time.perf_counter()
    folds, _ = task_splits(task, kind=split, seed=seed)
    k = len(task.labels)
    kind = "regression" if task.kind == "regression" else "classification"
    preds, probas, fits = [], [], []
    for train, test in folds:
        model = finetune(lon=task.lon[train], lat=task.lat[train], y=task.y[train], kind=kind,
                         checkpoint=args.checkpoint, train=mode, head_init=args.head_init, epochs=args.epochs,
                         block_deg=task.block_deg, seed=seed, threads=args.threads, progress=False)
        ft = model.provenance["finetune"]
        val = ft["validation"]
        fits.append({"best_stage": val["best_stage"], "best_epoch": val["best_epoch"],
                     "epochs_run": val["epochs_run"], "val_loss": val["metrics"]["loss"],
                     "start_val_loss": ft["head_init"]["val_loss"]})
        if kind == "regression":
            preds.append(np.asarray(model.predict(lon=task.lon[test], lat=task.lat[test])).reshape(len(test), -1))
            continue
        proba = model.predict_proba(lon=task.lon[test], lat=task.lat[test])
        full = np.zeros((len(test), k))
        full[:, np.asarray(model.classes_, dtype=int)] = proba  # classes absent from training get probability 0
        probas.append(full)
        preds.append(np.argmax(full, axis=1))
    test_all = np.concatenate([te for _, te in folds])
    y_true = task.y[test_all]
    if kind == "regression":
        metrics = regression_metrics(y_true, np.concatenate(preds), target_names=task.labels)
    else:
        metrics = classification_metrics(y_true, np.concatenate(preds), np.concatenate(probas), classes=np.arange(k))
    return {"task": task.name, "method": mode, "split": split, "seed": seed, "metrics": metrics,
            "score": metrics[task.metric], "folds": len(folds), "fit": fits, "seconds": time.perf_counter() - t0}


def summarise(records: list[dict]) -> dict:
    out: dict = {}
    for r in records:
        out.setdefault(r["task"], {}).setdefault(r["split"], {}).setdefault(r["method"], []).append(r)
    for task in out.values():
        for split in task.values():
            for method, rs in split.items():
                ok = [r["score"] for r in rs if "error" not in r]
                split[method] = {"mean": float(np.mean(ok)) if ok else None,
                                 "std": float(np.std(ok)) if ok else None, "n": len(ok),
                                 "errors": sum("error" in r for r in rs),
                                 "seconds_mean": float(np.mean([r["seconds"] for r in rs]))}
    return out


def markdown(res: dict) -> str:
    methods = res["settings"]["methods"]
    lines = [
        "# Fine-tuning the climate encoder vs the frozen linear probe",
        "",
        f"Command: `{res['command']}`  ",
        f"Checkpoint: {res['settings']['checkpoint'] or 'bundled:default'}; seeds {res['settings']['seeds']}; "
        f"fine-tuning epochs (max per stage) {res['settings']['epochs']}; wall {res['wall_seconds']:.0f} s; "
        f"{res['machine']['cpus']} CPUs, {res['settings']['threads'] or res['machine']['threads']} torch threads "
        "(fine-tuning).",
        "",
        "Score: the task's metric on the pooled test sides (mean ± std over seeds; seconds per run in brackets). "
        "probe = `lamina geo evaluate`'s climplicit linear probe; head / last / all = `lamina geo finetune "
        "--train head|last|all`, whose head starts " + (
            "from the same probe fitted on the training side less its validation blocks (`--head-init probe`)."
            if res["settings"].get("head_init", "probe") == "probe" else "from a zero head (`--head-init zero`)."),
        "",
        "| task | metric | split | " + " | ".join(methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for task, splits in res["summary"].items():
        for split, by_method in splits.items():
            cells = []
            for m in methods:
                s = by_method.get(m)
                if s is None or s["mean"] is None:
                    cells.append("failed" if s else "")
                else:
                    cells.append(f"{s['mean']:.3f} ± {s['std']:.3f} ({s['seconds_mean']:.0f} s)")
            lines.append(f"| {task} | {res['metrics'][task]} | {split} | " + " | ".join(cells) + " |")
    errors = [r for r in res["records"] if "error" in r]
    if errors:
        lines += ["", "Failed runs:", ""] + [f"- {r['task']} {r['split']} seed {r['seed']} {r['method']}: "
                                              f"{r['error']}" for r in errors]
    feats = ", ".join(f"{k} {v:.1f} s" for k, v in res["probe_feature_seconds"].items())
    lines += ["", f"Probe features computed once per task: {feats or 'none'}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(task_names()), help="comma-separated tasks (default: all four)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (geo evaluate's default: 5)")
    ap.add_argument("--splits", default=",".join(SPLIT_KINDS), help="random, block (default: both)")
    ap.add_argument("--methods", default=",".join(METHODS), help="probe, head, last, all (default: all four)")
    ap.add_argument("--n-points", type=int, default=None, help="points per task (default: geo evaluate's)")
    ap.add_argument("--epochs", type=int, default=50, help="maximum fine-tuning epochs per stage")
    ap.add_argument("--checkpoint", default=None, help="parent encoder (default: the bundled one)")
    ap.add_argument("--head-init", default="probe", choices=("probe", "zero"),
                    help="where fine-tuning's head starts (default: probe, lamina geo finetune's default)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the fine-tuning (default: torch's)")
    ap.add_argument("--out", type=Path, default=RESULTS / "geo_finetune", help="output prefix (.json and .md)")
    args = ap.parse_args()
    tasks_wanted = [t for t in args.tasks.split(",") if t]
    splits = [s for s in args.splits.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    for name, values, allowed in (("--tasks", tasks_wanted, task_names()), ("--splits", splits, SPLIT_KINDS),
                                  ("--methods", methods, METHODS)):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            ap.error(f"{name}: expected some of {', '.join(allowed)}, got {bad or values}")
    if args.seeds < 1 or args.epochs < 1:
        ap.error("--seeds and --epochs: expected integers >= 1")
    settings = EvalSettings.full()
    settings.seeds = tuple(range(args.seeds))
    settings.splits = tuple(splits)
    if args.n_points is not None:
        settings.n_points = dict.fromkeys(tasks_wanted, args.n_points)
    t0 = time.perf_counter()
    tasks = load_tasks(tasks_wanted, settings)
    records, feature_seconds = [], {}
    encoder = None
    for task in tasks:
        feats = None
        if "probe" in methods:
            if encoder is None:
                import lamina.geo

                encoder = lamina.geo.load(args.checkpoint)
            tf = time.perf_counter()
            feats = EncoderFeatures(encoder, "climplicit").features(lon=task.lon, lat=task.lat)
            feature_seconds[task.name] = time.perf_counter() - tf
        for split in splits:
            for seed in settings.seeds:
                for method in methods:
                    try:
                        if method == "probe":
                            rec = run_one(task, "probe", feats, split=split, seed=seed, settings=settings)
                        else:
                            rec = finetune_run(task, method, split=split, seed=seed, args=args)
                    except Exception as exc:  # keep the rest of a long run; the failure is reported
                        rec = {"task": task.name, "method": method, "split": split, "seed": seed,
                               "error": f"{type(exc).__name__}: {exc}", "seconds": 0.0}
                    records.append(rec)
                    score = f"{rec['score']:.4f}" if "score" in rec else rec["error"]
                    print(f"{task.name} {split} seed {seed} {method}: {task.metric} {score} "
                          f"({rec['seconds']:.1f} s)", file=sys.stderr, flush=True)
    res = {
        "machine": machine(),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "settings": {"tasks": tasks_wanted, "seeds": list(settings.seeds), "splits": splits, "methods": methods,
                     "n_points": {t.name: len(t) for t in tasks}, "epochs": args.epochs,
                     "head_init": args.head_init, "checkpoint": args.checkpoint, "threads": args.threads,
                     "sample_seed": settings.sample_seed},
        "metrics": {t.name: t.metric for t in tasks},
        "probe_feature_seconds": feature_seconds,
        "summary": summarise(records),
        "records": records,
        "wall_seconds": time.perf_counter() - t0,
    }
    out = Path(args.out)
    write_json_atomic(out.with_name(out.name + ".json"), res)
    write_text_atomic(out.with_name(out.name + ".md"), markdown(res))
    print(f"wrote {out}.json and {out}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
