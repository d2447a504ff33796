"""Fit a single-layer probe for a task on an encoder's features, save it, and apply it to new points.

The saved probe (a lamina checkpoint, :func:`lamina.probe.save_probe`) records which representation it reads
(``encoder``: a method name of :mod:`lamina.geo.eval.features`, and the checkpoint path for encoder methods), the
task, and the feature size. Applying it computes the same features at the new points and refuses features of
another size (for example a checkpoint with another embedding size) with a clear error.

Typical use::

    probe = fit_task_probe("koppen", encoder="climplicit")          # bundled encoder
    save_task_probe(probe, "probes/koppen")
    table = predict_points("probes/koppen", lon=[8.55], lat=[47.37])   # pandas DataFrame
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lamina._validation import check_lon_lat, check_seed
from lamina.errors import InputError
from lamina.geo.eval.features import feature_provider
from lamina.geo.eval.tasks import load_task
from lamina.probe import LinearProbeClassifier, LinearProbeRegressor, load_probe, save_probe


@dataclass
class TaskProbe:
    """A fitted probe and what it reads: ``encoder`` name, ``checkpoint`` (or None), task name and labels."""

    probe: LinearProbeClassifier | LinearProbeRegressor
    encoder: str
    checkpoint: str | None
    task: str
    kind: str
    labels: tuple[str, ...]
    units: str = ""
    encoder_sha256: str | None = None


def fit_task_probe(
    task: str,
    *,
    encoder: str = "climplicit",
    checkpoint: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int = 0,
) -> TaskProbe:
    """Fit a probe on all points of a task.

    Args:
        task: task name (see :func:`lamina.geo.eval.tasks.task_names`).
        encoder: method name whose features the probe reads (default: the climate encoder).
        checkpoint: encoder checkpoint directory (None: bundled default).
        n: task sample size (None: the task default).
        seed: seed of the task sample and of the probe's inner cross-validation.
    """
    seed = check_seed("seed", seed)
    t = load_task(task, n=n, seed=seed)
    provider = feature_provider(encoder, checkpoint)
    feats = provider.features(lon=t.lon, lat=t.lat, month=t.month)
    if t.kind == "regression":
        probe = LinearProbeRegressor(random_state=seed).fit(feats, t.y)
    else:
        probe = LinearProbeClassifier(random_state=seed).fit(feats, t.y)
    return TaskProbe(probe, encoder, _checkpoint_ref(checkpoint), t.name, t.kind, tuple(t.labels), t.units,
                     _encoder_sha256(encoder, checkpoint))


ENCODER_METHODS = ("climplicit", "random-init")
"""Methods whose features come from an encoder checkpoint (the probe records which one, by its sha256)."""


def _checkpoint_ref(checkpoint) -> str | None:
    """How a probe refers to its checkpoint: a bundled name as it is, a folder as an absolute path."""
    if checkpoint is None:
        return None
    text = os.fspath(checkpoint)
    return text if text.startswith("bundled:") else str(Path(text).resolve())


def _encoder_sha256(encoder: str, checkpoint) -> str | None:
    """sha256 of the weights an encoder method reads (None for the baselines, which have no checkpoint)."""
    if encoder not in ENCODER_METHODS:
        return None
    from lamina._io import read_checkpoint_config
    from lamina.geo.encoder import resolve_checkpoint

    return read_checkpoint_config(resolve_checkpoint(checkpoint))["sha256"]


def save_task_probe(tp: TaskProbe, directory: str | os.PathLike) -> Path:
    """Save a :class:`TaskProbe` as a lamina checkpoint directory (atomically)."""
    meta = {
        "encoder": tp.encoder,
        "checkpoint": tp.checkpoint,
        "task": tp.task,
        "kind": tp.kind,
        "labels": list(tp.labels),
        "units": tp.units,
        "n_features": int(tp.probe.n_features_in_),
        "encoder_sha256": tp.encoder_sha256,
        "input": "lon, lat in degrees; features of months 3, 6, 9, 12 concatenated where the encoder has months",
    }
    return save_probe(tp.probe, directory, metadata=meta)


def load_task_probe(directory: str | os.PathLike) -> TaskProbe:
    """Load a probe written by :func:`save_task_probe`."""
    probe, meta = load_probe(directory)
    missing = [k for k in ("encoder", "task", "kind", "labels") if k not in meta]
    if missing:
        raise InputError(f"probe: {directory} was not saved by lamina geo probe-fit (no {missing[0]!r} in metadata)")
    return TaskProbe(
        probe, meta["encoder"], meta.get("checkpoint"), meta["task"], meta["kind"], tuple(meta["labels"]),
        meta.get("units", ""), meta.get("encoder_sha256"),
    )  # fmt: skip


def predict_points(
    probe_dir: str | os.PathLike,
    *,
    lon,
    lat,
    checkpoint: str | os.PathLike | None = None,
    wrap_lon: bool = False,
):
    """Apply a saved probe at points.

    Args:
        probe_dir: directory written by :func:`save_task_probe`.
        lon: (N,) degrees east in [-180, 180] (any value with ``wrap_lon``). lat: (N,) degrees in [-90, 90].
        checkpoint: encoder checkpoint to read features from (None: the one the probe was fitted on).
        wrap_lon: wrap longitudes into [-180, 180).

    Returns:
        A pandas DataFrame with ``lon``, ``lat`` and, for classification, ``label`` and one ``p_<class>`` column
        per class; for regression one column per target (in the task's units).

    Raises:
        InputError: invalid coordinates, or features whose size differs from the probe's (for example a
            checkpoint with another embedding size).
    """
    import pandas as pd

    lon, lat = check_lon_lat(lon, lat, wrap=wrap_lon)
    tp = load_task_probe(probe_dir)
    ck = checkpoint if checkpoint is not None else tp.checkpoint
    provider = feature_provider(tp.encoder, ck)
    feats = provider.features(lon=lon, lat=lat, month=None)
    expected = int(tp.probe.n_features_in_)
    if feats.shape[1] != expected:
        source = f"checkpoint {ck}" if ck is not None else f"encoder {tp.encoder}"
        raise InputError(
            f"checkpoint: {source} gives {feats.shape[1]} features per point, but the probe in {probe_dir} was fitted "
            f"on {expected}; use the checkpoint the probe was fitted with, or fit a new probe (lamina geo probe-fit)"
        )
    if tp.encoder_sha256 is not None:  # the same weights, not just the same feature size
        used = _encoder_sha256(tp.encoder, ck)
        if used != tp.encoder_sha256:
            where = ck if ck is not None else "the bundled default"
            raise InputError(f"checkpoint: the probe in {probe_dir} was fitted on the encoder with sha256 "
                             f"{tp.encoder_sha256[:12]}..., {where} has {used[:12]}...; give the checkpoint it was "
                             "fitted on (--checkpoint), or fit a new probe (lamina geo probe-fit)")
    out = {"lon": lon, "lat": lat}
    if tp.kind == "regression":
        pred = np.asarray(tp.probe.predict(feats)).reshape(len(lon), -1)
        for j, name in enumerate(tp.labels):
            out[name] = pred[:, j]
    else:
        proba = tp.probe.predict_proba(feats)
        classes = np.asarray(tp.probe.classes_, dtype=int)
        out["label"] = np.asarray(tp.labels, dtype=object)[classes[np.argmax(proba, axis=1)]]
        for j, c in enumerate(classes):
            out[f"p_{tp.labels[c]}"] = proba[:, j]
    return pd.DataFrame(out)


def read_points(path: str | os.PathLike, *, lon_col: str = "lon", lat_col: str = "lat"):
    """Read ``lon`` and ``lat`` columns from a CSV or Parquet file (coordinates are validated by the caller).

    Raises:
        InputError: unknown format, or a missing column.
    """
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pd.read_csv(path)
    elif suffix in (".parquet", ".pq"):
        table = pd.read_parquet(path)
    else:
        raise InputError(f"points: expected a .csv or .parquet file, got {path.name!r}")
    for col, opt in ((lon_col, "--lon-col"), (lat_col, "--lat-col")):
        if col not in table.columns:
            raise InputError(f"points: {path} has no column {col!r} (columns: {', '.join(map(str, table.columns))}; "
                             f"choose one with {opt})")  # fmt: skip
    return table[lon_col].to_numpy(), table[lat_col].to_numpy()
