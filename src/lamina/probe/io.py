"""Saving and loading fitted probes as lamina checkpoints (safetensors + JSON, no pickle).

A saved probe holds its single linear layer (``coef``, ``intercept``), its class labels or target names, the chosen
regularisation and the number of input features, plus free metadata (for example which encoder and task it was
fitted on). :func:`load_probe` rebuilds a fitted estimator that predicts exactly as the saved one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lamina._io import load_checkpoint, read_checkpoint_config, save_checkpoint
from lamina.errors import CheckpointError
from lamina.probe.linear import LinearProbeClassifier, LinearProbeRegressor

KIND_CLASSIFIER = "probe.LinearProbeClassifier"
KIND_REGRESSOR = "probe.LinearProbeRegressor"


def _label_list(classes: np.ndarray) -> list:
    return [c.item() if isinstance(c, np.generic) else c for c in classes]


def save_probe(probe, directory: str | os.PathLike, *, metadata: dict | None = None) -> Path:
    """Write a fitted :class:`LinearProbeClassifier` or :class:`LinearProbeRegressor` to ``directory`` atomically.

    Args:
        probe: a fitted probe.
        directory: checkpoint directory (created or replaced).
        metadata: JSON-serialisable provenance, e.g. ``{"task": "koppen", "encoder": "..."}``.
    """
    if isinstance(probe, LinearProbeClassifier):
        kind = KIND_CLASSIFIER
        config = {"n_features_in": int(probe.n_features_in_), "classes": _label_list(probe.classes_), "C": probe.C_}
    elif isinstance(probe, LinearProbeRegressor):
        kind = KIND_REGRESSOR
        config = {
            "n_features_in": int(probe.n_features_in_),
            "n_targets": None if np.ndim(probe.coef_) == 1 else int(np.shape(probe.coef_)[0]),
            "alpha": np.asarray(probe.alpha_).tolist(),
        }
    else:
        raise TypeError(f"probe: expected a LinearProbeClassifier or LinearProbeRegressor, got {type(probe).__name__}")
    tensors = {
        "coef": np.ascontiguousarray(np.atleast_1d(probe.coef_), dtype=np.float64),
        "intercept": np.ascontiguousarray(np.atleast_1d(probe.intercept_), dtype=np.float64),
    }
    return save_checkpoint(directory, tensors, kind=kind, config=config, metadata=metadata)


def probe_info(directory: str | os.PathLike) -> dict:
    """The saved probe's ``config.json`` (kind, config, metadata) without loading its weights."""
    doc = read_checkpoint_config(directory)
    if doc.get("kind") not in (KIND_CLASSIFIER, KIND_REGRESSOR):
        raise CheckpointError(f"probe: {directory} holds a {doc.get('kind')!r}, not a lamina probe")
    return doc


def load_probe(directory: str | os.PathLike):
    """Load a probe written by :func:`save_probe`.

    Returns:
        ``(probe, metadata)``: a fitted estimator and the metadata dict it was saved with.

    Raises:
        CheckpointError: not a probe checkpoint, corrupt, or inconsistent shapes.
    """
    doc = probe_info(directory)
    tensors, _ = load_checkpoint(directory, kind=doc["kind"])
    cfg = doc["config"]
    coef = tensors["coef"].numpy()
    intercept = tensors["intercept"].numpy()
    n_features = int(cfg["n_features_in"])
    if coef.shape[-1] != n_features:
        raise CheckpointError(f"probe: {directory} has coef of shape {coef.shape}, config says {n_features} features")
    if doc["kind"] == KIND_CLASSIFIER:
        probe = LinearProbeClassifier()
        probe.classes_ = np.asarray(cfg["classes"])
        probe.C_ = cfg["C"]
        probe.coef_, probe.intercept_ = coef, intercept
    else:
        probe = LinearProbeRegressor()
        if cfg["n_targets"] is None:
            probe.coef_, probe.intercept_ = coef.reshape(-1), float(intercept.reshape(-1)[0])
            probe.alpha_ = float(np.asarray(cfg["alpha"]).reshape(-1)[0])
        else:
            probe.coef_, probe.intercept_ = coef, intercept
            probe.alpha_ = np.asarray(cfg["alpha"], dtype=float)
    probe.n_features_in_ = n_features
    return probe, dict(doc.get("metadata") or {})
