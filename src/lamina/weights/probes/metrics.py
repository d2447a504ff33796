"""Multi-label metrics for "which categories was this model trained on", each with its chance level.

With sparse labels (a model learns a few of many categories) per-class accuracy alone is misleading: predicting
"no" everywhere already scores 1 - prevalence. So every metric is reported next to what a predictor that knows
nothing reaches:

- ``map`` (mean over categories of average precision, ranking models per category); chance: mean prevalence;
- ``auc`` (mean ROC AUC per category); chance: 0.5;
- ``accuracy`` (the paper's per-class binary accuracy over all model x category entries, threshold 0.5);
  chance: the majority rule per category, mean of max(p, 1 - p).

Categories with no positive or no negative test model are left out of ``map`` and ``auc`` (their AP/AUC is
undefined); ``n_categories`` says how many were scored.
"""

from __future__ import annotations

import numpy as np

from lamina.errors import InputError


def multilabel_metrics(y_true, scores, *, threshold: float = 0.5) -> dict[str, float]:
    """Score predictions of which categories each model was trained on.

    Args:
        y_true: (N, C) 0/1 labels.
        scores: (N, C) scores, higher = more likely (probabilities for ``accuracy``).
        threshold: decision threshold on ``scores`` for ``accuracy``.

    Returns:
        ``{"map", "map_chance", "auc", "auc_chance", "accuracy", "accuracy_chance", "n_categories", "n_models"}``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise InputError(f"scores: expected the shape of y_true {y.shape}, got {s.shape}")
    if y.shape[0] == 0:
        raise InputError("y_true: no models to score")
    prev = y.mean(0)
    ok = np.flatnonzero((prev > 0) & (prev < 1))
    if ok.size == 0:
        raise InputError("y_true: no category has both positive and negative models")
    aps = [average_precision_score(y[:, c], s[:, c]) for c in ok]
    aucs = [roc_auc_score(y[:, c], s[:, c]) for c in ok]
    pred = s >= threshold
    return {
        "map": float(np.mean(aps)),
        "map_chance": float(np.mean(prev[ok])),
        "auc": float(np.mean(aucs)),
        "auc_chance": 0.5,
        "accuracy": float(np.mean(pred == (y > 0.5))),
        "accuracy_chance": float(np.mean(np.maximum(prev, 1 - prev))),
        "n_categories": int(ok.size),
        "n_models": int(y.shape[0]),
    }


def labels_matrix(category_lists, n_categories: int) -> np.ndarray:
    """(N, C) 0/1 float32 matrix from per-model lists of category indices."""
    y = np.zeros((len(category_lists), n_categories), dtype=np.float32)
    for i, cats in enumerate(category_lists):
        y[i, list(cats)] = 1.0
    return y
