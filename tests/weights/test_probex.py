"""ProbeX on synthetic weight matrices (a planted signal), and its error messages."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.probes.metrics import multilabel_metrics
from lamina.weights.probes.probex import ProbeX, ProbeXConfig, ProbeXNet


def planted(n=300, d_h=16, d_w=24, c=6, seed=0):
    """Synthetic: each category adds a fixed rank-1 pattern (times a random sign per unit) to a shared base."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((d_h, d_w))
    pats = rng.standard_normal((c, d_w))
    units = rng.standard_normal((c, d_h))
    y = (rng.random((n, c)) < 0.35).astype(np.float32)
    x = base[None] + 0.3 * rng.standard_normal((n, d_h, d_w))
    x += np.einsum("nc,ch,cw->nhw", y, units, pats) * rng.uniform(0.5, 2.0, (n, 1, 1))
    return x.astype(np.float32), y


def test_probex_reads_a_planted_signal():
    x, y = planted()
    est = ProbeX(ProbeXConfig(r_u=8, r_v=8, r_t=16, epochs=30, seed=0)).fit(x[:200], y[:200])
    m = multilabel_metrics(y[200:], est.decision_function(x[200:]))
    assert m["map"] > 2 * m["map_chance"] and m["auc"] > 0.85
    assert est.transform(x[:3]).shape == (3, 16)
    assert est.predict_proba(x[:3]).shape == (3, 6) and set(np.unique(est.predict(x[:3]))) <= {0, 1}


def test_parameter_count_matches_the_architecture():
    cfg = ProbeXConfig(r_u=4, r_v=3, r_t=5)
    net = ProbeXNet(10, 7, 2, cfg)
    n = sum(p.numel() for p in net.parameters())
    assert n == 7 * 4 + 10 * 3 + (4 * 3 * 5 + 5) + (5 * 2 + 2)


def test_linear_activation_makes_the_expert_linear_in_the_weights():
    """``activation="linear"`` drops the ReLU: without centring and scaling, embed(a + b) = embed(a) + embed(b) -
    embed(0); with the paper's ReLU that fails."""
    import torch

    x, _ = planted(n=2)
    a, b, zero = (torch.from_numpy(v[None]) for v in (x[0], x[1], np.zeros_like(x[0])))
    for activation, linear in (("linear", True), ("relu", False)):
        torch.manual_seed(0)
        net = ProbeXNet(16, 24, 3, ProbeXConfig(r_u=5, r_v=4, r_t=6, activation=activation)).eval()
        with torch.no_grad():
            lhs, rhs = net.embed(a + b), net.embed(a) + net.embed(b) - net.embed(zero)
        assert torch.allclose(lhs, rhs, atol=1e-4) is linear, activation


def test_linear_probex_reads_a_planted_signal_and_round_trips(tmp_path):
    x, y = planted()
    est = ProbeX(ProbeXConfig(r_u=8, r_v=8, r_t=16, epochs=30, activation="linear")).fit(x[:200], y[:200])
    m = multilabel_metrics(y[200:], est.decision_function(x[200:]))
    assert m["map"] > 2 * m["map_chance"] and m["auc"] > 0.85
    est.save(tmp_path / "p")
    again = ProbeX.load(tmp_path / "p")
    assert again.config_.activation == "linear"
    np.testing.assert_allclose(again.decision_function(x[:5]), est.decision_function(x[:5]), rtol=1e-5, atol=1e-6)


def test_save_load_roundtrip(tmp_path):
    x, y = planted(n=60)
    est = ProbeX(ProbeXConfig(r_u=4, r_v=4, r_t=8, epochs=2)).fit(x, y)
    est.save(tmp_path / "p")
    again = ProbeX.load(tmp_path / "p")
    np.testing.assert_allclose(again.decision_function(x[:5]), est.decision_function(x[:5]), rtol=1e-5, atol=1e-6)


def test_errors_name_the_problem():
    x, y = planted(n=40)
    with pytest.raises(InputError, match="not trained"):
        ProbeX().predict(x)
    est = ProbeX(ProbeXConfig(r_u=4, r_v=4, r_t=8, epochs=1)).fit(x, y)
    with pytest.raises(InputError, match=r"shape \(16, 25\).*\(16, 24\)"):
        est.predict(np.zeros((2, 16, 25), np.float32))
    bad = x[:2].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        est.predict(bad)
    with pytest.raises(InputError, match="r_u"):
        ProbeXConfig(r_u=0)
    with pytest.raises(InputError, match="^activation: expected one of relu, linear, got 'tanh'"):
        ProbeXConfig(activation="tanh")


def test_public_api_is_reachable_lazily():
    import lamina.weights as w

    assert w.ProbeX is ProbeX and callable(w.build_zoo) and callable(w.search_text)
    with pytest.raises(AttributeError):
        w.nothing_here  # noqa: B018


def _ridge_scores(x, y):
    from lamina.weights.probes.linear import RidgeProbe
    from lamina.weights.probes.probex import RIDGE_ALPHAS

    return RidgeProbe(alphas=RIDGE_ALPHAS).fit(x, y).decision_function(x)


@pytest.mark.parametrize("dims", [(24, 16, 6), (32, 20, 10)])  # exactly the data's sizes; larger (zero-padded)
def test_ridge_start_is_the_ridge_solution_written_in_probex_factors(dims):
    """init="ridge" with no training: the linear expert's logits are the ridge scores under one affine map (the
    Platt sigmoid) for every category, whenever the view is at least as large as the layer and the category count."""
    x, y = planted(n=150)
    r_u, r_v, r_t = dims
    est = ProbeX(ProbeXConfig(r_u=r_u, r_v=r_v, r_t=r_t, init="ridge", activation="linear", epochs=0)).fit(x, y)
    logits, ridge = est.decision_function(x), _ridge_scores(x, y)
    slope, icpt = np.polyfit(ridge.ravel(), logits.ravel(), 1)
    assert slope > 0 and np.all(np.isfinite(logits))
    np.testing.assert_allclose(logits, slope * ridge + icpt, atol=1e-3 * np.abs(logits).max())


def test_ridge_start_leaves_no_dead_dimensions():
    """Past the data's sizes the factors start at random unit vectors that the head does not read yet: training
    takes them up (all-zero slots would sit at a saddle with no gradient)."""
    x, y = planted(n=120)
    cfg = ProbeXConfig(r_u=32, r_v=20, r_t=10, init="ridge", activation="linear", epochs=0)
    start = ProbeX(cfg).fit(x, y).net_
    assert np.allclose(start.head.weight[:, 6:].detach().numpy(), 0)  # 6 categories: columns 6-9 unread
    assert np.all(np.linalg.norm(start.U.detach().numpy()[:, 24:], axis=0) > 0.99)  # extra probes: unit vectors
    trained = ProbeX(ProbeXConfig(**{**cfg.to_dict(), "epochs": 2, "lr": 1e-3})).fit(x, y).net_
    assert np.abs(trained.head.weight[:, 6:].detach().numpy()).max() > 1e-4


def test_ridge_start_without_both_labels_gives_the_base_rate():
    x, _ = planted(n=60)
    est = ProbeX(ProbeXConfig(r_u=4, r_v=4, r_t=4, init="ridge", activation="linear", epochs=0)).fit(
        x, np.zeros((60, 3), np.float32))
    p = est.predict_proba(x)
    assert np.all(np.isfinite(p)) and p.max() < 0.01


def test_ridge_start_keeps_the_leading_part_of_the_solution_in_a_smaller_view():
    """A view smaller than the layer keeps a truncation of the ridge solution: still a reader of the planted signal,
    and closer to ridge than an untrained expert from the usual start."""
    x, y = planted(n=300)
    small = dict(r_u=6, r_v=6, r_t=6, activation="linear")
    est = ProbeX(ProbeXConfig(init="ridge", epochs=0, **small)).fit(x[:200], y[:200])
    m = multilabel_metrics(y[200:], est.decision_function(x[200:]))
    assert m["map"] > 2 * m["map_chance"]
    rng_start = ProbeX(ProbeXConfig(init="pca", epochs=1, lr=1e-6, **small)).fit(x[:200], y[:200])
    assert m["map"] > multilabel_metrics(y[200:], rng_start.decision_function(x[200:]))["map"] + 0.1


def test_ridge_start_trains_on_and_round_trips(tmp_path):
    x, y = planted(n=120)
    cfg = ProbeXConfig(r_u=8, r_v=8, r_t=8, init="ridge", activation="linear", epochs=2, lr=1e-4, weight_decay=0.0,
                       dropout=0.0)
    est = ProbeX(cfg).fit(x, y)
    start = ProbeX(ProbeXConfig(**{**cfg.to_dict(), "epochs": 0})).fit(x, y)
    assert start.ridge_alpha_ in (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
    assert not np.allclose(est.decision_function(x), start.decision_function(x))  # training moved it
    est.save(tmp_path / "p")
    again = ProbeX.load(tmp_path / "p")
    assert again.config_.init == "ridge"
    np.testing.assert_allclose(again.decision_function(x[:5]), est.decision_function(x[:5]), rtol=1e-5, atol=1e-6)


def test_ridge_start_settings_are_checked():
    with pytest.raises(InputError, match="init='ridge' needs activation='linear'"):
        ProbeXConfig(init="ridge")
    with pytest.raises(InputError, match="^epochs: expected an integer >= 1, got 0"):
        ProbeXConfig(epochs=0)
    with pytest.raises(InputError, match="^init: expected one of pca, random, ridge, got 'svd'"):
        ProbeXConfig(init="svd", activation="linear")
    assert ProbeXConfig(init="ridge", activation="linear", epochs=0).epochs == 0


@pytest.mark.parametrize("shape", [(12, 90), (90, 12), (20, 20)])
def test_leading_singular_vectors_match_the_svd_and_drop_null_directions(shape):
    from lamina.weights.probes._linalg import leading_singular_vectors

    rng = np.random.default_rng(3)
    m = rng.standard_normal(shape) * np.geomspace(10, 0.1, shape[1])  # distinct singular values
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    for side, ref in (("left", u[:, :4]), ("right", vt[:4].T)):
        got = leading_singular_vectors(m, 4, side=side)
        np.testing.assert_allclose(np.abs(np.sum(got * ref, axis=0)), 1.0, atol=1e-8)  # the same, up to sign
    rank_one = np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[1]))
    assert leading_singular_vectors(rank_one, 4).shape == (shape[0], 1)
    assert leading_singular_vectors(rank_one, 4, side="right").shape == (shape[1], 1)
    with pytest.raises(ValueError, match="side"):
        leading_singular_vectors(m, 2, side="up")
