"""The baselines ProbeX is measured against: each reads a planted signal, the dense logistic probe reads the tiny
real zoo, and the feature functions compute what their docstrings say."""

import numpy as np
import pytest
import torch

from lamina.errors import InputError
from lamina.weights.baselines import (
    DenseLinearProbe,
    RidgeProbe,
    StatNN,
    UpperBound,
    behaviour,
    first_layer_response,
    weight_statistics,
)
from lamina.weights.layers import read_layer
from lamina.weights.metrics import labels_matrix, multilabel_metrics

from .conftest import read_catalogue
from .test_probex import planted


@pytest.mark.parametrize("make", [lambda: RidgeProbe(), lambda: DenseLinearProbe(epochs=30, lr=3e-3, seed=0)],
                         ids=["ridge", "dense-logistic"])
def test_linear_baselines_read_a_planted_signal(make):
    x, y = planted()
    est = make().fit(x[:200], y[:200])
    m = multilabel_metrics(y[200:], est.decision_function(x[200:]))
    assert m["map"] > 1.8 * m["map_chance"] and m["auc"] > 0.8
    p = est.predict_proba(x[200:])
    assert p.shape == (100, 6) and p.min() >= 0 and p.max() <= 1
    assert est.n_params_ == 16 * 24 * 6 + 6


def test_ridge_picks_a_larger_penalty_for_noise():
    rng = np.random.default_rng(0)
    x, y = planted()
    noise = rng.standard_normal(x.shape).astype(np.float32)
    assert RidgeProbe().fit(noise, y).alpha_ > RidgeProbe().fit(x, y).alpha_


def test_dense_logistic_beats_chance_on_the_tiny_zoo(tiny_zoo):
    models = read_catalogue(tiny_zoo, "models", tree="mlp-digits-fashion")
    X = np.stack([read_layer(tiny_zoo / m["path"], "fc1") for m in models])
    Y = labels_matrix([m["categories"] for m in models], 60)
    scores = np.zeros_like(Y)
    for k in range(4):  # 4-fold: every model is scored by a probe that never saw it
        test = np.arange(len(X)) % 4 == k
        scores[test] = DenseLinearProbe(epochs=10, lr=3e-3).fit(X[~test], Y[~test]).decision_function(X[test])
    m = multilabel_metrics(Y, scores)
    assert m["map"] > 1.5 * m["map_chance"] and m["auc"] > 0.55


def test_statnn_and_upper_bound_read_planted_features():
    rng = np.random.default_rng(1)
    n, c = 240, 3
    y = (rng.random((n, c)) < 0.4).astype(np.float32)
    y[:, 2] = 0  # a category no model learned: a constant answer
    feats = rng.standard_normal((n, 5)).astype(np.float32)
    feats[:, :2] += 2.0 * y[:, :2]
    stat = StatNN(max_iter=20).fit(feats[:160], y[:160])
    p = stat.predict_proba(feats[160:])
    assert p.shape == (80, 3) and np.all(p[:, 2] == 0.0)
    assert multilabel_metrics(y[160:, :2], p[:, :2])["auc"] > 0.85
    per_cat = rng.standard_normal((n, c, 2)).astype(np.float32)  # (N, C, k): category c's own features
    per_cat[:, :, 0] += 2.0 * y
    ub = UpperBound().fit(per_cat[:160], y[:160])
    q = ub.predict_proba(per_cat[160:])
    assert q.shape == (80, 3) and multilabel_metrics(y[160:, :2], q[:, :2])["auc"] > 0.85


def test_weight_statistics_by_hand():
    state = {"b.weight": np.array([[1.0, -1.0], [3.0, -3.0]], np.float32), "a.bias": np.array([0.0, 2.0], np.float32),
             "head.weight": np.full((3, 2), 99.0, np.float32)}
    f = weight_statistics(state)
    # sorted by name, head left out; per tensor: mean, std, mean |w|, min, q25, median, q75, max
    np.testing.assert_allclose(f[:8], [1.0, 1.0, 1.0, 0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(f[8:], [0.0, np.sqrt(5.0), 2.0, -3.0, -1.5, 0.0, 1.5, 3.0])


def test_first_layer_response_peaks_at_the_category_written_into_the_layer():
    rng = np.random.default_rng(2)
    means = rng.standard_normal((4, 28, 28)).astype(np.float32)
    delta = np.stack([means[2].ravel(), -means[2].ravel()]) * 5.0  # (out=2, 784): unit 0 learned category 2
    r = first_layer_response(delta, means, "linear")
    assert r.shape == (4, 2) and int(np.argmax(r[:, 0])) == 2
    np.testing.assert_allclose(r, first_layer_response(delta / 5.0, means, "linear"), rtol=1e-5)  # scale-free
    kernel = rng.standard_normal((3, 1, 5, 5)).astype(np.float32)
    assert first_layer_response(kernel, means, "conv").shape == (4, 3 * 7 * 7)
    with pytest.raises(InputError, match="kind"):
        first_layer_response(delta, means, "attention")


def test_behaviour_of_a_model_that_always_answers_one_class():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
    b = behaviour(net, np.random.default_rng(3).random((2, 5, 28, 28)).astype(np.float32))
    assert b.shape == (2, 2)
    np.testing.assert_allclose(b[:, 0], 1.0)  # every image gets the same class
    np.testing.assert_allclose(b[:, 1], np.exp(10) / (np.exp(10) + 2), rtol=1e-5)
