"""Single-layer probes as scikit-learn estimators.

A probe is one affine map on frozen features, ``X @ coef_.T + intercept_``, read out by a softmax (classification)
or as is (regression). Features are standardised inside the probe (mean 0, variance 1 on the training set), and
the L2 regularisation strength is chosen by inner cross-validation on the training set only. After fitting, the
standardisation is folded into ``coef_`` and ``intercept_``, so the fitted probe is literally one linear layer on
the raw features and can be saved as two arrays (see :mod:`lamina.probe.io`).

Both estimators follow scikit-learn's API (``fit`` / ``predict`` / ``predict_proba`` / ``score``) and pass
``sklearn.utils.estimator_checks.parametrize_with_checks``. ``fit`` also accepts ``groups``: with groups (for
example spatial blocks), the inner cross-validation keeps each group within one fold.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from lamina._validation import check_choice

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 5, 17))
_EPS = 1e-12


def inner_splits(y, *, cv: int, groups=None, stratify: bool = True, random_state=0) -> list[tuple]:
    """Inner cross-validation folds over the rows of a training set.

    Args:
        y: (N,) class labels (used for stratification) or (N, T) targets.
        cv: requested number of folds (>= 2); reduced when the data cannot fill them.
        groups: optional (N,) group ids; a group never spans two folds (spatial blocks).
        stratify: keep class proportions per fold (classification).
        random_state: seed of the fold assignment.

    Returns:
        A list of ``(train_idx, val_idx)``; empty when fewer than 2 folds are possible.
    """
    y = np.asarray(y)
    n = len(y)
    k = min(int(cv), n)
    if groups is not None:
        k = min(k, len(np.unique(groups)))
    if stratify and y.ndim == 1:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            k_strat = min(k, int(counts.min()))
            if k_strat >= 2:
                splitter = (
                    StratifiedGroupKFold(n_splits=k_strat, shuffle=True, random_state=random_state)
                    if groups is not None
                    else StratifiedKFold(n_splits=k_strat, shuffle=True, random_state=random_state)
                )
                return list(splitter.split(np.zeros(n), y, groups))
    if k < 2:
        return []
    if groups is not None:
        # GroupKFold has no seed: permute the group ids so that the fold assignment depends on random_state.
        uniq, inv = np.unique(groups, return_inverse=True)
        perm = np.random.default_rng(random_state).permutation(len(uniq))
        return list(GroupKFold(n_splits=k).split(np.zeros(n), y, perm[inv]))
    return list(KFold(n_splits=k, shuffle=True, random_state=random_state).split(np.zeros(n)))


def ridge_path_predict(X, y, X_new, alphas) -> np.ndarray:
    """Ridge predictions at ``X_new`` for every strength in ``alphas``, from one SVD of the centred ``X``.

    Args:
        X: (N, D) training features. y: (N, T) targets. X_new: (M, D). alphas: (A,) L2 strengths.

    Returns:
        (A, M, T) predictions (intercept fitted, not penalised; the same solutions as ``Ridge(alpha)``).
    """
    x_mean, y_mean = X.mean(axis=0), y.mean(axis=0)
    U, s, Vt = np.linalg.svd(X - x_mean, full_matrices=False)
    uty = U.T @ (y - y_mean)  # (K, T)
    proj = (X_new - x_mean) @ Vt.T  # (M, K)
    shrink = s[None, :] / (s[None, :] ** 2 + np.asarray(alphas, dtype=float)[:, None])  # (A, K)
    return np.einsum("mk,ak,kt->amt", proj, shrink, uty) + y_mean


def _fold_into_linear(scaler: StandardScaler, coef: np.ndarray, intercept: np.ndarray):
    """Fold ``(x - mean) / scale`` into an affine map: returns ``coef / scale``, ``intercept - coef' @ mean``."""
    coef_raw = coef / scaler.scale_[None, :]
    intercept_raw = intercept - coef_raw @ scaler.mean_
    return coef_raw, intercept_raw


class LinearProbeClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression probe (binary: logistic) with inner-CV L2 strength.

    Args:
        Cs: inverse L2 strengths tried (LogisticRegression's ``C``), on standardised features.
        cv: inner cross-validation folds (stratified; grouped when ``fit`` gets ``groups``).
        scoring: inner-CV criterion, ``"log_loss"`` (default, smooth) or ``"accuracy"``.
        max_iter: L-BFGS iterations per fit.
        tol: L-BFGS tolerance (1e-3: on probe features tighter tolerances cost 5x the iterations for
            the same held-out accuracy).
        class_weight: as in LogisticRegression (``None`` or ``"balanced"``).
        random_state: seed of the inner folds.

    Attributes:
        classes_: (K,) class labels.
        coef_: (K, D) weights on the raw features (binary: (1, D)); ``intercept_``: (K,) (binary: (1,)).
        C_: chosen ``C``. cv_scores_: (len(Cs),) mean inner-CV score per ``C`` (higher is better), or None
            when the training set was too small for 2 folds with 2 classes each (then ``C_`` is the middle of
            ``Cs``).
    """

    def __init__(
        self,
        Cs=DEFAULT_CS,
        cv: int = 3,
        scoring: str = "log_loss",
        max_iter: int = 500,
        tol: float = 1e-3,
        class_weight=None,
        random_state=0,
    ):
        self.Cs = Cs
        self.cv = cv
        self.scoring = scoring
        self.max_iter = max_iter
        self.tol = tol
        self.class_weight = class_weight
        self.random_state = random_state

    def _logreg(self, C: float, warm_start: bool = False) -> LogisticRegression:
        return LogisticRegression(
            C=C, max_iter=self.max_iter, tol=self.tol, class_weight=self.class_weight, warm_start=warm_start
        )

    def _score(self, model: LogisticRegression, X, y_enc, n_classes: int) -> float:
        if self.scoring == "accuracy":
            return float(np.mean(model.predict(X) == y_enc))
        proba = np.full((len(y_enc), n_classes), _EPS)
        proba[:, model.classes_] = np.maximum(model.predict_proba(X), _EPS)
        proba /= proba.sum(axis=1, keepdims=True)
        return float(np.mean(np.log(proba[np.arange(len(y_enc)), y_enc])))

    def fit(self, X, y, groups=None):
        """Fit the probe.

        Args:
            X: (N, D) features.
            y: (N,) class labels (at least two distinct).
            groups: optional (N,) group ids for the inner cross-validation (e.g. spatial blocks).

        Returns:
            self
        """
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        check_choice("scoring", self.scoring, ("log_loss", "accuracy"))
        Cs = np.sort(np.asarray(self.Cs, dtype=float).ravel())
        if Cs.size == 0 or np.any(Cs <= 0):
            raise ValueError(f"Cs: expected positive values, got {self.Cs!r}")
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y: a classifier needs at least 2 classes in the data, got 1 class: {self.classes_[0]!r}")
        scaler = StandardScaler().fit(X)
        Z = scaler.transform(X)
        n_classes = len(self.classes_)
        folds = inner_splits(y_enc, cv=self.cv, groups=groups, random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            usable = [(tr, va) for tr, va in folds if len(np.unique(y_enc[tr])) >= 2]
            if usable and Cs.size > 1:
                scores = np.zeros(Cs.size)
                for tr, va in usable:
                    model = self._logreg(Cs[0], warm_start=True)
                    for j, C in enumerate(Cs):  # from strong to weak L2 along the path, warm-started
                        model.set_params(C=C)
                        model.fit(Z[tr], y_enc[tr])
                        scores[j] += self._score(model, Z[va], y_enc[va], n_classes) / len(usable)
                self.cv_scores_ = scores
                self.C_ = float(Cs[int(np.argmax(scores))])
            else:
                self.cv_scores_ = None
                self.C_ = float(Cs[Cs.size // 2])
            model = self._logreg(self.C_).fit(Z, y_enc)
        self.n_iter_ = int(np.max(model.n_iter_))
        self.coef_, self.intercept_ = _fold_into_linear(scaler, model.coef_, model.intercept_)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits: (N, K) for K > 2 classes, (N,) for binary problems (log-odds of ``classes_[1]``)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        logits = X @ self.coef_.T + self.intercept_
        return logits.ravel() if logits.shape[1] == 1 else logits

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, (N, K), columns ordered as ``classes_``."""
        from scipy.special import expit, softmax

        logits = self.decision_function(X)
        if logits.ndim == 1:
            p1 = expit(logits)
            return np.column_stack([1.0 - p1, p1])
        return softmax(logits, axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        from scipy.special import log_expit, log_softmax

        logits = self.decision_function(X)
        if logits.ndim == 1:
            return np.column_stack([log_expit(-logits), log_expit(logits)])
        return log_softmax(logits, axis=1)

    def predict(self, X) -> np.ndarray:
        """Most probable class label per row, (N,)."""
        logits = self.decision_function(X)
        idx = (logits > 0).astype(int) if logits.ndim == 1 else np.argmax(logits, axis=1)
        return self.classes_[idx]


class LinearProbeRegressor(RegressorMixin, BaseEstimator):
    """Ridge regression probe, single or multi-output, with the L2 strength chosen per target by inner CV.

    Args:
        alphas: L2 strengths tried, on standardised features.
        cv: ``None`` for efficient leave-one-out (generalised) cross-validation, or a number of folds (>= 2);
            with ``groups`` given to ``fit``, grouped k-fold (``cv`` or 5 folds).
        random_state: seed of the k-fold assignment.

    Attributes:
        coef_: (T, D) weights on the raw features ((D,) for a 1-d target); ``intercept_``: (T,) (scalar for 1-d).
        alpha_: (T,) chosen strength per target (scalar for a 1-d target).
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, cv: int | None = None, random_state=0):
        self.alphas = alphas
        self.cv = cv
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y, groups=None):
        """Fit the probe.

        Args:
            X: (N, D) features.
            y: (N,) or (N, T) targets.
            groups: optional (N,) group ids for grouped inner k-fold (spatial blocks).

        Returns:
            self
        """
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
        alphas = np.asarray(self.alphas, dtype=float).ravel()
        if alphas.size == 0 or np.any(alphas <= 0):
            raise ValueError(f"alphas: expected positive values, got {self.alphas!r}")
        y2 = y.reshape(len(y), -1).astype(np.float64)
        scaler = StandardScaler().fit(X)
        Z = scaler.transform(X)
        n_targets = y2.shape[1]
        folds = None
        if groups is not None or self.cv is not None:
            folds = inner_splits(y2, cv=self.cv or 5, groups=groups, stratify=False, random_state=self.random_state)
        if folds:  # k-fold (grouped or not): mean squared error per (alpha, target)
            mse = np.zeros((alphas.size, n_targets))
            for tr, va in folds:
                pred = ridge_path_predict(Z[tr], y2[tr], Z[va], alphas)  # (A, n_va, T)
                mse += np.mean((pred - y2[va][None]) ** 2, axis=1) / len(folds)
            alpha = alphas[np.argmin(mse, axis=0)]  # (T,)
            self.cv_scores_ = -mse
        elif len(X) >= 3:  # efficient leave-one-out
            from sklearn.linear_model import RidgeCV

            rcv = RidgeCV(alphas=alphas, alpha_per_target=True, store_cv_results=False).fit(Z, y2)
            alpha = np.broadcast_to(np.asarray(rcv.alpha_, dtype=float), (n_targets,)).copy()
            self.cv_scores_ = None
        else:
            alpha = np.full(n_targets, alphas[alphas.size // 2])
            self.cv_scores_ = None
        model = Ridge(alpha=alpha if n_targets > 1 else float(alpha[0])).fit(Z, y2)
        coef, intercept = _fold_into_linear(scaler, model.coef_.reshape(n_targets, -1), model.intercept_)
        if y.ndim == 1:
            self.coef_, self.intercept_, self.alpha_ = coef[0], float(intercept[0]), float(alpha[0])
        else:
            self.coef_, self.intercept_, self.alpha_ = coef, intercept, alpha
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted targets, (N,) or (N, T) as in ``fit``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return X @ self.coef_.T + self.intercept_
