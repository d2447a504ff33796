"""The start of a fine-tuning (``head_init="probe"``): the cross-validated linear probe, copied into the head.

Linear probing first, then fine-tuning ("LP-FT", Kumar et al. 2022, arXiv:2202.10054). The probe is the one
``lamina geo evaluate`` fits for the task kind (:func:`lamina.geo.eval.evaluate.linear_probe`: logistic regression
or ridge on standardised features, the L2 strength chosen by inner cross-validation), fitted on the training
points' embeddings only, with the training points' spatial blocks as the groups of its inner cross-validation (as
``geo evaluate`` does for its block split); the validation blocks stay unseen. Its affine map is then written into
the :class:`~lamina.geo.finetune_model.Head` so that the head's outputs are the probe's:

- classification: the head's logits are the probe's, its rows mapped from the probe's classes to the head's class
  order; a binary probe's single log-odds row ``z`` becomes the logits ``(-z / 2, z / 2)``, whose softmax is
  ``(1 - sigmoid(z), sigmoid(z))``. A class absent from the training blocks (the probe never saw it) gets the
  mean of the other rows' logits plus ``log(ABSENT_CLASS_PROBABILITY)``, so its probability stays at most that
  (the probe itself gives it 0; a finite logit keeps the validation loss finite);
- regression: the probe predicts each target column in its units; the head predicts z-scores, so each row is
  divided by that target's standard deviation after subtracting its mean.
"""

from __future__ import annotations

import math

import numpy as np

from lamina.errors import InputError
from lamina.geo.finetune_model import Head
from lamina.geo.finetune_target import Target

ABSENT_CLASS_PROBABILITY = 1e-6


def fit_probe(features: np.ndarray, y: np.ndarray, tgt: Target, groups: np.ndarray | None, *, seed: int):
    """Fit ``geo evaluate``'s linear probe for ``tgt.kind`` on training points.

    Args:
        features: (N, D) embeddings of the training points.
        y: their targets: (N,) int64 class indices into ``tgt.labels``, or (N, T) values in the targets' units.
        tgt: the target (its kind and labels).
        groups: (N,) spatial block of each point for the inner cross-validation, or None.
        seed: seed of the inner folds.

    Returns:
        The fitted :class:`~lamina.probe.LinearProbeClassifier` (on class indices) or
        :class:`~lamina.probe.LinearProbeRegressor` (on the (N, T) values).

    Raises:
        InputError: the training points hold one class only.
    """
    from lamina.geo.eval.evaluate import linear_probe

    if tgt.kind == "classification" and len(np.unique(y)) < 2:
        raise InputError(f"target: the training blocks hold one class only ({tgt.labels[int(y[0])]!r}), so no probe "
                         "can be fitted; give a smaller block_deg (--block-deg), more data, or head_init='zero'")
    probe = linear_probe(tgt.kind, seed=seed, grouped=groups is not None)
    return probe.fit(features, y, groups=groups)


def probe_affine(probe, tgt: Target) -> tuple[np.ndarray, np.ndarray]:
    """The probe as the head's affine map on raw features: ``(weight (K or T, D), bias (K or T,))`` float64, giving
    logits over all of ``tgt.labels`` (classification) or z-scored targets (regression)."""
    coef = np.atleast_2d(np.asarray(probe.coef_, dtype=np.float64))  # (K', D) or (T, D)
    intercept = np.atleast_1d(np.asarray(probe.intercept_, dtype=np.float64))
    if tgt.kind == "regression":
        mean, std = np.asarray(tgt.mean, dtype=np.float64), np.asarray(tgt.std, dtype=np.float64)
        return coef / std[:, None], (intercept - mean) / std
    classes = np.asarray(probe.classes_, dtype=np.int64)  # indices into tgt.labels
    if len(classes) == 2 and coef.shape[0] == 1:  # binary: one log-odds row for classes[1]
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    k = tgt.n_outputs
    weight = np.tile(coef.mean(axis=0), (k, 1))  # absent classes: the mean logit ...
    bias = np.full(k, intercept.mean() + math.log(ABSENT_CLASS_PROBABILITY))  # ... plus log(probability)
    weight[classes], bias[classes] = coef, intercept
    return weight, bias


def probe_head(head: Head, features: np.ndarray, y: np.ndarray, tgt: Target, groups: np.ndarray | None, *,
               seed: int) -> dict:
    """Fit the probe on training points (:func:`fit_probe`, same arguments) and write it into ``head``
    (:meth:`Head.set_affine`), whose feature standardisation must already be set.

    Returns:
        A JSON-friendly record: the estimator, the chosen L2 strength, the inner cross-validation and, for
        classification, the classes absent from the training points.
    """
    probe = fit_probe(features, y, tgt, groups, seed=seed)
    head.set_affine(*probe_affine(probe, tgt))
    if probe.cv is None:
        inner = "leave-one-out"
    else:
        inner = f"up to {probe.cv} folds, " + ("whole spatial blocks" if groups is not None else "random")
    info = {"estimator": f"lamina.probe.{type(probe).__name__}", "inner_cv": inner, "seed": seed}
    if tgt.kind == "classification":
        absent = sorted(set(range(tgt.n_outputs)) - {int(c) for c in probe.classes_})
        info.update(C=probe.C_, Cs=[float(c) for c in probe.Cs],
                    classes_absent_from_training=[tgt.labels[i] for i in absent])
    else:
        info.update(alpha=np.atleast_1d(probe.alpha_).tolist(), alphas_tried=len(probe.alphas))
    return info
