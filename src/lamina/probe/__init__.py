"""Single-layer probes shared by all of lamina's parts: scikit-learn estimators and their metrics.

- :class:`LinearProbeClassifier`: multinomial logistic regression on standardised features, L2 strength by inner
  cross-validation.
- :class:`LinearProbeRegressor`: multi-output ridge regression on standardised features, L2 strength per target
  by inner cross-validation.
- :func:`classification_metrics`, :func:`regression_metrics`, :func:`roc_auc`.
- :func:`save_probe` / :func:`load_probe`: a fitted probe as a lamina checkpoint.
"""

from lamina.probe.io import load_probe, probe_info, save_probe
from lamina.probe.linear import LinearProbeClassifier, LinearProbeRegressor, inner_splits
from lamina.probe.metrics import classification_metrics, regression_metrics, roc_auc

__all__ = [
    "LinearProbeClassifier",
    "LinearProbeRegressor",
    "classification_metrics",
    "inner_splits",
    "load_probe",
    "probe_info",
    "regression_metrics",
    "roc_auc",
    "save_probe",
]
