"""Behaviour of the linear probes on SYNTHETIC data (made up here with known answers)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from lamina.errors import CheckpointError
from lamina.probe import (
    LinearProbeClassifier,
    LinearProbeRegressor,
    classification_metrics,
    inner_splits,
    load_probe,
    regression_metrics,
    roc_auc,
    save_probe,
)


def _blobs(n=600, d=20, k=4, seed=0, scale=None):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2.0
    y = rng.integers(0, k, n)
    X = centres[y] + rng.normal(size=(n, d))
    if scale is not None:
        X = X * scale
    return X, y


def test_classifier_learns_and_folds_standardisation_into_one_layer():
    X, y = _blobs(scale=np.logspace(-3, 3, 20))  # wildly different feature scales: standardisation matters
    probe = LinearProbeClassifier(Cs=(0.01, 1.0), cv=3).fit(X[:400], y[:400])
    assert probe.score(X[400:], y[400:]) > 0.9
    assert probe.coef_.shape == (4, 20) and probe.intercept_.shape == (4,)
    # the folded single layer equals scaler + logistic regression fitted with the chosen C
    scaler = StandardScaler().fit(X[:400])
    ref = LogisticRegression(C=probe.C_, max_iter=500, tol=1e-3).fit(scaler.transform(X[:400]), y[:400])
    np.testing.assert_allclose(probe.predict_proba(X[400:]), ref.predict_proba(scaler.transform(X[400:])), atol=1e-6)
    np.testing.assert_allclose(probe.predict_proba(X).sum(axis=1), 1.0)


def test_classifier_picks_strong_regularisation_for_noise_labels():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 50))
    y = rng.integers(0, 3, 300)  # labels independent of X
    probe = LinearProbeClassifier(Cs=(1e-4, 1e-2, 1.0, 100.0), cv=3).fit(X, y)
    assert probe.C_ <= 1e-2
    assert probe.cv_scores_.shape == (4,) and np.argmax(probe.cv_scores_) == list((1e-4, 1e-2, 1.0, 100.0)).index(
        probe.C_
    )


def test_classifier_binary_string_labels_and_decision_function():
    X, y = _blobs(k=2, seed=3)
    labels = np.array(["absent", "present"])[y]
    probe = LinearProbeClassifier().fit(X, labels)
    assert probe.coef_.shape == (1, 20)
    d = probe.decision_function(X)
    assert d.shape == (len(X),)
    np.testing.assert_array_equal(probe.predict(X), np.where(d > 0, "present", "absent"))
    assert probe.score(X, labels) > 0.95


def test_classifier_rejects_one_class():
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearProbeClassifier().fit(np.ones((10, 2)), np.zeros(10))


def test_inner_splits_keep_groups_together_and_depend_on_seed():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 30, 500)
    y = rng.integers(0, 3, 500)
    folds = inner_splits(y, cv=3, groups=groups, random_state=0)
    assert len(folds) == 3
    for tr, va in folds:
        assert not set(groups[tr]) & set(groups[va])
    other = inner_splits(y, cv=3, groups=groups, random_state=1)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))
    assert len(inner_splits(np.array([0, 1]), cv=3)) == 2  # too few for stratified folds: plain k-fold
    assert inner_splits(np.array([0]), cv=3) == []


def test_regressor_multi_output_per_target_alpha():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 10))
    w = rng.normal(size=10)
    Y = np.column_stack([X @ w + 0.01 * rng.normal(size=400), rng.normal(size=400)])  # signal, pure noise
    probe = LinearProbeRegressor().fit(X, Y)
    assert probe.coef_.shape == (2, 10) and probe.alpha_.shape == (2,)
    assert probe.alpha_[0] < probe.alpha_[1]  # the noise target gets the stronger penalty
    np.testing.assert_allclose(probe.coef_[0], w, atol=0.02)
    one = LinearProbeRegressor().fit(X, Y[:, 0])
    assert one.predict(X).shape == (400,) and isinstance(one.alpha_, float)
    grouped = LinearProbeRegressor().fit(X, Y, groups=np.arange(400) // 40)
    assert grouped.cv_scores_.shape == (len(grouped.alphas), 2)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_save_load_round_trip(tmp_path, kind):
    X, y = _blobs(seed=5)
    if kind == "classifier":
        probe = LinearProbeClassifier(Cs=(0.1, 1.0)).fit(X, np.array(["a", "b", "c", "d"])[y])
    else:
        probe = LinearProbeRegressor().fit(X, np.column_stack([X[:, 0], X[:, 1] * 2]))
    save_probe(probe, tmp_path / "p", metadata={"task": "synthetic"})
    loaded, meta = load_probe(tmp_path / "p")
    assert meta == {"task": "synthetic"}
    assert type(loaded) is type(probe) and loaded.n_features_in_ == 20
    np.testing.assert_allclose(loaded.predict(X), probe.predict(X), rtol=1e-12) if kind == "regressor" else (
        np.testing.assert_array_equal(loaded.predict(X), probe.predict(X))
    )
    with pytest.raises(ValueError, match="features"):
        loaded.predict(X[:, :5])
    (tmp_path / "p" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="sha256"):
        load_probe(tmp_path / "p")


def test_classification_metrics_by_hand():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    m = classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per-class F1: class 0: p=1/2 r=1/2 -> 0.5; class 1: p=2/3 r=1 -> 0.8; class 2: p=1 r=1/2 -> 2/3
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert "roc_auc" not in m
    with pytest.raises(ValueError, match="classes"):
        classification_metrics(y_true, y_pred, np.full((6, 3), 1 / 3))


def test_roc_auc_skips_classes_absent_from_the_test_set():
    y_true = np.array([0, 0, 1, 1])  # class 2 never occurs
    proba = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]])
    assert roc_auc(y_true, proba, classes=[0, 1, 2]) == pytest.approx(1.0)
    assert roc_auc(np.array([0, 1, 1, 0]), np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]]),
                   classes=[0, 1]) == pytest.approx(0.5)  # fmt: skip
    assert np.isnan(roc_auc(np.zeros(3), np.full((3, 2), 0.5), classes=[0, 1]))


def test_regression_metrics_by_hand():
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    p = np.array([[1.0, 12.0], [2.0, 20.0], [3.0, 28.0]])
    m = regression_metrics(y, p, target_names=["a", "b"])
    assert m["r2"]["a"] == pytest.approx(1.0)
    assert m["r2"]["b"] == pytest.approx(1 - 8 / 200)
    assert m["r2_mean"] == pytest.approx((1 + 1 - 8 / 200) / 2)
    assert m["rmse"]["b"] == pytest.approx(np.sqrt(8 / 3))
    with pytest.raises(ValueError, match="shape"):
        regression_metrics(y, p[:, :1])


def test_ridge_path_equals_ridge_per_alpha():
    from sklearn.linear_model import Ridge

    from lamina.probe.linear import ridge_path_predict

    rng = np.random.default_rng(0)
    X, y, X_new = rng.normal(size=(40, 60)), rng.normal(size=(40, 3)), rng.normal(size=(5, 60))  # D > N too
    path = ridge_path_predict(X, y, X_new, [0.01, 1.0, 100.0])
    for a, pred in zip([0.01, 1.0, 100.0], path, strict=True):
        np.testing.assert_allclose(pred, Ridge(alpha=a).fit(X, y).predict(X_new), atol=1e-10)
