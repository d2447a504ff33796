"""Metrics of probe predictions (thin wrappers over scikit-learn, returning plain dicts of floats)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score


def roc_auc(y_true, proba, *, classes) -> float:
    """ROC AUC of class probabilities.

    Binary: the AUC of ``proba[:, 1]`` for ``classes[1]``. Multiclass: the mean one-versus-rest AUC over the classes
    that occur in ``y_true`` alongside at least one other class (a class absent from the test set has no AUC).

    Args:
        y_true: (N,) labels.
        proba: (N, K) probabilities, columns ordered as ``classes``.
        classes: (K,) labels.

    Returns:
        The AUC in [0, 1], or NaN when no class has both positives and negatives in ``y_true``.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes)
    if len(classes) == 2:
        pos = y_true == classes[1]
        return float(roc_auc_score(pos, proba[:, 1])) if 0 < pos.sum() < len(pos) else float("nan")
    aucs = []
    for k, c in enumerate(classes):
        pos = y_true == c
        if 0 < pos.sum() < len(pos):
            aucs.append(roc_auc_score(pos, proba[:, k]))
    return float(np.mean(aucs)) if aucs else float("nan")


def classification_metrics(y_true, y_pred, proba=None, *, classes=None) -> dict[str, float]:
    """Accuracy, macro and weighted F1, and (given probabilities) ROC AUC.

    Args:
        y_true: (N,) true labels.
        y_pred: (N,) predicted labels.
        proba: optional (N, K) class probabilities with columns ordered as ``classes``.
        classes: (K,) labels of the probability columns (required with ``proba``).

    Returns:
        ``{"accuracy", "f1_macro", "f1_weighted"[, "roc_auc"]}``, each in [0, 1]. F1 averages over the labels
        present in ``y_true`` or ``y_pred`` (scikit-learn's convention).
    """
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }
    if proba is not None:
        if classes is None:
            raise ValueError("classes: required with proba (the labels of its columns)")
        out["roc_auc"] = roc_auc(y_true, proba, classes=classes)
    return out


def regression_metrics(y_true, y_pred, *, target_names=None) -> dict:
    """R^2 per target and their mean, RMSE per target, and the mean absolute error.

    Args:
        y_true: (N,) or (N, T) targets.
        y_pred: predictions of the same shape.
        target_names: optional T names for the per-target entries.

    Returns:
        ``{"r2_mean": float, "r2": {name: float}, "rmse": {name: float}, "mae": float}``; RMSE and MAE in the
        targets' units.
    """
    yt = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
    yp = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)
    if yt.shape != yp.shape:
        raise ValueError(f"y_pred: expected shape {yt.shape} like y_true, got {yp.shape}")
    names = list(target_names) if target_names is not None else [str(i) for i in range(yt.shape[1])]
    if len(names) != yt.shape[1]:
        raise ValueError(f"target_names: expected {yt.shape[1]} names, got {len(names)}")
    r2 = r2_score(yt, yp, multioutput="raw_values")
    rmse = np.sqrt(np.mean((yt - yp) ** 2, axis=0))
    return {
        "r2_mean": float(np.mean(r2)),
        "r2": {n: float(v) for n, v in zip(names, r2, strict=True)},
        "rmse": {n: float(v) for n, v in zip(names, rmse, strict=True)},
        "mae": float(mean_absolute_error(yt, yp)),
    }
