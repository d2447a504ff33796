"""Probe evaluation: tasks x methods x splits x seeds, with progress, results.json, a Markdown table and figures.

A *method* is either a feature provider read out by a single-layer probe (:mod:`lamina.probe`) or the
from-scratch coordinate MLP (:class:`lamina.geo.eval.baselines.CoordinateMLP`), named in the registry of
:mod:`lamina.geo.eval.features`. Features are computed once per task and
provider; every (split, seed) then fits a fresh probe on the training side (regularisation by inner
cross-validation on the training side only: random folds for the random split, whole spatial cells for the block
split) and scores the test side. A seed sets the outer split, the cell-grid offset, the inner folds and the MLP's
initialisation; the task's point sample is fixed (``sample_seed``).

Typical use::

    from lamina.geo.eval.evaluate import EvalSettings, evaluate
    report = evaluate(["koppen"], ["climplicit", "lonlat", "mlp"], settings=EvalSettings.full(), out_dir="report")
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lamina._process import single_threaded
from lamina._validation import check_workers
from lamina.errors import InputError
from lamina.geo.eval.baselines import CoordinateMLP
from lamina.geo.eval.features import DEFAULT_METHODS, Method, build_methods
from lamina.geo.eval.splits import SPLIT_KINDS, task_splits
from lamina.geo.eval.tasks import Task, load_task, task_names
from lamina.probe import LinearProbeClassifier, LinearProbeRegressor, classification_metrics, regression_metrics

SPLITS = SPLIT_KINDS


@dataclass
class EvalSettings:
    """What an evaluation run does (saved in results.json).

    Attributes:
        seeds: seeds of the outer splits, inner folds and MLP initialisation.
        splits: ``"random"`` and / or ``"block"``.
        n_points: points per task (None: the task default; see :mod:`lamina.geo.eval.tasks`).
        sample_seed: seed of the tasks' point samples.
        probe_cs: inverse L2 strengths of the classification probe; probe_cv: its inner folds.
        mlp_epochs: maximum epochs of the from-scratch MLP (early stopping decides).
        n_jobs: worker processes; each (split, seed) fit runs single-threaded in one of them (on a 2-core machine
            two single-threaded fits are faster than one two-threaded fit, and far faster when cores are shared).
    """

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    splits: tuple[str, ...] = SPLITS
    n_points: dict = field(default_factory=lambda: {"koppen": 6000, "koppen-main": 6000})
    sample_seed: int = 0
    probe_cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)
    probe_cv: int = 3
    mlp_epochs: int = 150
    n_jobs: int = 2

    @classmethod
    def full(cls) -> EvalSettings:
        return cls()

    @classmethod
    def quick(cls) -> EvalSettings:
        """A CI-sized run: fewer points, two seeds, a shorter MLP schedule."""
        return cls(
            seeds=(0, 1),
            n_points={"koppen": 800, "koppen-main": 800, "sdm-ariolimax": 800},
            probe_cs=(1e-2, 1e-1, 1.0),
            mlp_epochs=60,
        )


def load_tasks(names: Sequence[str], settings: EvalSettings) -> list[Task]:
    """Load tasks by name with the settings' sample sizes (raises InputError for an unknown name)."""
    for n in names:
        if n not in task_names():
            raise InputError(f"tasks: unknown task {n!r}; expected some of {', '.join(task_names())}")
    return [load_task(n, n=settings.n_points.get(n), seed=settings.sample_seed) for n in names]


def linear_probe(kind: str, *, seed: int, grouped: bool, settings: EvalSettings | None = None):
    """The unfitted probe this evaluation fits on a training side (also the start of ``lamina geo finetune``).

    Args:
        kind: the task kind: ``"regression"`` (a :class:`~lamina.probe.LinearProbeRegressor`), anything else a
            :class:`~lamina.probe.LinearProbeClassifier`.
        seed: seed of its inner folds.
        grouped: whether ``fit`` will get groups (spatial blocks): the regressor then uses grouped 5-fold
            cross-validation instead of efficient leave-one-out.
        settings: the classifier's ``probe_cs`` and ``probe_cv`` (default: :meth:`EvalSettings.full`).
    """
    settings = settings or EvalSettings.full()
    if kind == "regression":
        return LinearProbeRegressor(cv=5 if grouped else None, random_state=seed)
    return LinearProbeClassifier(Cs=settings.probe_cs, cv=settings.probe_cv, random_state=seed)


def _fit_predict(task: Task, is_mlp: bool, feats, train, test, groups, seed: int, settings: EvalSettings):
    """Fit on ``train``, predict ``test``: returns (labels or values, probabilities or None, fitted-info dict)."""
    y = task.y
    if is_mlp:
        mlp = CoordinateMLP(task.kind, epochs=settings.mlp_epochs, random_state=seed)
        mlp.fit(lon=task.lon[train], lat=task.lat[train], y=y[train])
        if task.kind == "regression":
            return mlp.predict(lon=task.lon[test], lat=task.lat[test]), None, {}
        return (
            mlp.predict(lon=task.lon[test], lat=task.lat[test]),
            (mlp.predict_proba(lon=task.lon[test], lat=task.lat[test]), mlp.classes_),
            {},
        )
    g = None if groups is None else groups[train]
    probe = linear_probe(task.kind, seed=seed, grouped=g is not None, settings=settings)
    probe.fit(feats[train], y[train], groups=g)
    if task.kind == "regression":
        return probe.predict(feats[test]), None, {"alpha": np.atleast_1d(probe.alpha_).tolist()}
    return probe.predict(feats[test]), (probe.predict_proba(feats[test]), probe.classes_), {"C": probe.C_}


def run_one(
    task: Task, method_name: str, feats, *, split: str, seed: int, settings: EvalSettings, is_mlp: bool = False
) -> dict:
    """Score one (task, method, split, seed): fits on each fold's training side, scores the pooled test sides.

    Args:
        task: the task.
        method_name: label of the record.
        feats: (N, D) features of all the task's points (ignored when ``is_mlp``).
        split: ``"random"`` or ``"block"``. seed: seed of the split, inner folds and MLP.
        settings: probe and MLP settings.
        is_mlp: train the from-scratch coordinate MLP instead of a probe.
    """
    t0 = time.perf_counter()
    folds, groups = task_splits(task, kind=split, seed=seed)
    test_all = np.concatenate([te for _, te in folds])
    k = len(task.labels)
    preds, probas, infos = [], [], []
    for train, test in folds:
        pred, proba, info = _fit_predict(task, is_mlp, feats, train, test, groups, seed, settings)
        preds.append(pred)
        infos.append(info)
        if proba is not None:
            full = np.zeros((len(test), k))
            full[:, np.asarray(proba[1], dtype=int)] = proba[0]  # classes absent from training get probability 0
            probas.append(full)
    y_true = task.y[test_all]
    if task.kind == "regression":
        metrics = regression_metrics(y_true, np.concatenate(preds), target_names=task.labels)
    else:
        metrics = classification_metrics(y_true, np.concatenate(preds), np.concatenate(probas), classes=np.arange(k))
    n_train = int(np.mean([len(tr) for tr, _ in folds]))
    return {
        "task": task.name,
        "method": method_name,
        "split": split,
        "seed": seed,
        "metrics": metrics,
        "score": metrics[task.metric],
        "n_train": n_train,
        "n_test": len(test_all),
        "folds": len(folds),
        "fit": infos,
        "seconds": time.perf_counter() - t0,
    }


def run_evaluation(
    tasks: Sequence[Task], methods: Sequence[Method], settings: EvalSettings, *, progress: bool = True
) -> tuple[list[dict], dict]:
    """Run every (task, method, split, seed).

    Returns:
        ``(records, features_info)``: one dict per run (see :func:`run_one`), and per (task, method) the feature
        dimension and seconds taken to compute the features.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    for s in settings.splits:
        if s not in SPLITS:
            raise InputError(f"splits: expected some of {', '.join(SPLITS)}, got {s!r}")
    from joblib import Parallel, delayed

    total = len(tasks) * len(methods) * len(settings.splits) * len(settings.seeds)
    records, feature_info = [], {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    n_jobs = check_workers("n_jobs", settings.n_jobs, tasks=total)
    pool = Parallel(n_jobs=n_jobs, return_as="generator_unordered", backend="loky" if n_jobs > 1 else "sequential")
    with pool, Progress(*columns, disable=not progress, transient=False) as bar:
        job = bar.add_task("evaluate", total=total)
        for task in tasks:
            for method in methods:
                feats = None
                if method.provider is not None:
                    bar.update(job, description=f"{task.name} / {method.name}: features")
                    t0 = time.perf_counter()
                    feats = np.asarray(method.provider.features(lon=task.lon, lat=task.lat, month=task.month))
                    if feats.ndim != 2 or len(feats) != len(task) or not np.all(np.isfinite(feats)):
                        raise InputError(f"{method.name}: features must be finite (N, D), got shape {feats.shape}")
                    feature_info[f"{task.name}/{method.name}"] = {
                        "dim": int(feats.shape[1]),
                        "seconds": time.perf_counter() - t0,
                    }
                bar.update(job, description=f"{task.name} / {method.name}: fits")
                runs = [(split, seed) for split in settings.splits for seed in settings.seeds]
                is_mlp = method.provider is None
                calls = (
                    delayed(_run_single_threaded)(
                        task, method.name, feats, split=split, seed=seed, settings=settings, is_mlp=is_mlp
                    )
                    for split, seed in runs
                )
                for rec in pool(calls):
                    records.append(rec)
                    bar.advance(job)
    order = {(t.name, m.name): i for i, (t, m) in enumerate((t, m) for t in tasks for m in methods)}
    records.sort(key=lambda r: (order[(r["task"], r["method"])], settings.splits.index(r["split"]), r["seed"]))
    return records, feature_info


def _run_single_threaded(*args, **kwargs) -> dict:
    """:func:`run_one` with BLAS, OpenMP and torch limited to one thread (the parallelism is across fits)."""
    with single_threaded():
        return run_one(*args, **kwargs)


def evaluate(
    task_list: Sequence[str],
    method_list: Sequence[str] = DEFAULT_METHODS,
    *,
    settings: EvalSettings | None = None,
    checkpoint: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    methods: Sequence[Method] | None = None,
    progress: bool = True,
) -> dict:
    """Load tasks and methods, run the evaluation, and (with ``out_dir``) write the report.

    Args:
        task_list: task names (see :func:`lamina.geo.eval.tasks.task_names`).
        method_list: method names (see :data:`DEFAULT_METHODS`); ignored when ``methods`` is given.
        settings: :class:`EvalSettings` (default: the full run).
        checkpoint: encoder checkpoint directory (None: the bundled default).
        out_dir: where results.json, results.md and one PNG per task are written.
        methods: ready-made :class:`Method` objects (e.g. a custom provider) instead of names.
        progress: show a progress bar.

    Returns:
        The report dict written to results.json.
    """
    from lamina.geo.eval.report import build_report, write_report

    settings = settings or EvalSettings.full()
    t0 = time.perf_counter()
    tasks = load_tasks(task_list, settings)
    skipped: dict[str, str] = {}
    if methods is None:
        methods, skipped = build_methods(method_list, checkpoint=checkpoint)
    records, feature_info = run_evaluation(tasks, methods, settings, progress=progress)
    report = build_report(
        tasks=tasks,
        methods=methods,
        records=records,
        feature_info=feature_info,
        skipped=skipped,
        settings=asdict(settings),
        checkpoint=None if checkpoint is None else str(checkpoint),
        wall_seconds=time.perf_counter() - t0,
    )
    if out_dir is not None:
        write_report(report, Path(out_dir))
    return report
