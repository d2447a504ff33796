"""The baselines ProbeX is measured against: each reads a planted signal, the dense logistic probe reads the tiny
real zoo, and the feature functions compute what their docstrings say."""

import numpy as np
import pytest
import torch

from lamina.errors import InputError
from lamina.weights.layers import read_layer
from lamina.weights.probes.linear import (
    DenseLinearProbe,
    LowRankProbe,
    RidgeProbe,
    StatNN,
    UpperBound,
    behaviour,
    first_layer_response,
    weight_statistics,
)
from lamina.weights.probes.metrics import labels_matrix, multilabel_metrics

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


def _per_category_rank_one(n, d=32, c=8, amp=0.08, seed=0):
    """SYNTHETIC: noise layers plus, for each category a model has, the category's own rank-1 pattern a_c b_c^T."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((c, d)), rng.standard_normal((c, d))
    y = (rng.random((n, c)) < 0.3).astype(np.float32)
    x = rng.standard_normal((n, d, d)) + amp * np.einsum("nc,ch,cw->nhw", y, a, b)
    return x.astype(np.float32), y


@pytest.mark.parametrize("seed", [0, 1])
def test_low_rank_probe_beats_ridge_where_each_category_has_its_own_low_rank_pattern(seed):
    x, y = _per_category_rank_one(600, seed=seed)
    ridge = RidgeProbe().fit(x[:150], y[:150])
    low = LowRankProbe(rank=1).fit(x[:150], y[:150])
    m_ridge = multilabel_metrics(y[150:], ridge.decision_function(x[150:]))["map"]
    m_low = multilabel_metrics(y[150:], low.decision_function(x[150:]))["map"]
    assert m_low > m_ridge + 0.1  # 150 models cannot pin 1024 numbers per category; 64 per category they can
    assert low.n_params_ == 8 * (32 + 32 + 1) and low.n_params_ * 15 < ridge.n_params_
    # the probes found are the planted input directions (up to sign and scale)
    b = np.random.default_rng(seed).standard_normal((2, 8, 32))[1]
    cos = np.abs(np.sum(low.probes_[:, :, 0] * b, 1)) / (np.linalg.norm(low.probes_[:, :, 0], axis=1)
                                                          * np.linalg.norm(b, axis=1))
    assert np.median(cos) > 0.7


def test_low_rank_probe_reads_the_planted_signal_and_counts_its_parameters():
    x, y = planted()
    est = LowRankProbe(rank=2).fit(x[:200], y[:200])
    m = multilabel_metrics(y[200:], est.decision_function(x[200:]))
    assert m["map"] > 1.8 * m["map_chance"] and m["auc"] > 0.8
    assert est.n_params_ == 6 * (2 * (16 + 24) + 1)
    p = est.predict_proba(x[200:])
    assert p.shape == (100, 6) and p.min() >= 0 and p.max() <= 1
    # a rank above the layer's smaller side is clipped to it
    assert LowRankProbe(rank=50).fit(x[:60], y[:60]).probes_.shape == (6, 24, 16)


def test_low_rank_probe_rejects_bad_input():
    x, y = planted(n=40)
    with pytest.raises(InputError, match="rank"):
        LowRankProbe(rank=0).fit(x, y)
    with pytest.raises(InputError, match="steps"):
        LowRankProbe(steps=0).fit(x, y)
    with pytest.raises(InputError, match="N, d_H, d_W"):
        LowRankProbe().fit(x.reshape(40, -1), y)
    with pytest.raises(InputError, match="Y: expected"):
        LowRankProbe().fit(x, y[:30])
    bad = x.copy()
    bad[3, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        LowRankProbe().fit(bad, y)
    with pytest.raises(InputError, match="label is NaN"):
        LowRankProbe().fit(x, np.where(y > 0, np.inf, 0))
    with pytest.raises(InputError, match="not fitted"):
        LowRankProbe().decision_function(x)
    est = LowRankProbe().fit(x, y)
    with pytest.raises(InputError, match="16, 24"):
        est.decision_function(x[:, :8])
    with pytest.raises(InputError, match="NaN or infinite"):  # never a NaN score
        est.decision_function(bad)


@pytest.mark.parametrize("steps", [1, 3])
def test_low_rank_probe_scores_are_its_bilinear_form_with_the_last_fits_intercept(steps):
    from sklearn.base import clone
    from sklearn.linear_model import RidgeCV

    from lamina.weights.probes.probex import preprocess

    x, y = _per_category_rank_one(200, d=12, c=4, amp=0.3, seed=3)
    y[:, 2] = 0  # a category no training model has: scored, never an error
    est = clone(LowRankProbe(rank=2, steps=steps)).fit(x, y)
    assert est.get_params()["steps"] == steps
    z = preprocess(x, est.mean_, True)
    manual = np.einsum("nhw,chk,cwk->nc", z, est.read_, est.probes_) + est.intercept_
    np.testing.assert_allclose(est.decision_function(x), manual, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.decision_function(x)[:, 2], 0.0, atol=1e-6)
    # the intercept is the one of the probes' refit, given the read vectors
    for c in (0, 3):
        feats = np.einsum("nhw,hk->nwk", z, est.read_[c]).reshape(len(z), -1)
        fit = RidgeCV(alphas=est.alphas).fit(feats, y[:, c])
        assert est.intercept_[c] == pytest.approx(fit.intercept_, abs=1e-5)
        np.testing.assert_allclose(est.probes_[c], fit.coef_.reshape(12, 2), rtol=1e-4, atol=1e-6)


def test_low_rank_probe_calibrates_and_round_trips_through_its_state():
    x, y = _per_category_rank_one(300, d=12, c=5, amp=0.4, seed=4)
    est = LowRankProbe(rank=1).fit(x[:200], y[:200])
    clipped = est.predict_proba(x[200:])
    assert clipped.min() >= 0 and clipped.max() <= 1
    est.calibrate(x[200:250], y[200:250])
    p, s = est.predict_proba(x[250:]), est.decision_function(x[250:])
    assert np.all((p > 0) & (p < 1)) and est.platt_[0] > 0  # higher score, higher probability
    order = np.argsort(s.ravel())
    assert np.all(np.diff(p.ravel()[order]) >= 0)
    back = LowRankProbe.from_state(est.state_tensors("t/"), est.state_config(), prefix="t/")
    np.testing.assert_array_equal(back.predict_proba(x[250:]), p)
    with pytest.raises(InputError, match="both labels"):
        est.calibrate(x[:10], np.zeros((10, 5)))
    with pytest.raises(InputError, match=r"\(10, 5\)"):
        est.calibrate(x[:10], np.zeros((10, 4)))


@pytest.mark.parametrize("make", [RidgeProbe, LowRankProbe])
@pytest.mark.parametrize("alphas", [(), (-1.0,), (float("nan"),), "abc", (True,)])
def test_ridge_penalties_are_checked(make, alphas):
    x, y = planted(n=30)
    with pytest.raises(InputError, match="alphas"):
        make(alphas=alphas).fit(x, y)
