"""scikit-learn conventions of the weights estimators, and library calls that leave the process as they found it."""

import os

import numpy as np
import pytest
import torch
from sklearn.base import clone

from lamina.weights.experts import ProbeXMixture, TrainConfig
from lamina.weights.probes.linear import DenseLinearProbe, LowRankProbe, RidgeProbe, StatNN, UpperBound
from lamina.weights.probes.probex import ProbeX, ProbeXConfig
from lamina.weights.text.aligner import TextAligner
from lamina.weights.trees import Router

from .test_probex import planted

ESTIMATORS = [
    ProbeX(ProbeXConfig(r_u=4, r_v=4, r_t=8, epochs=2, seed=3)),
    DenseLinearProbe(epochs=3, lr=1e-2, seed=1),
    RidgeProbe(alphas=(1.0, 10.0)),
    LowRankProbe(rank=1, alphas=(1.0, 10.0), steps=2),
    StatNN(max_iter=5, seed=2),
    UpperBound(),
    TextAligner(k=4, rank=2, epochs=5, seed=4),
    Router(dim=16, seed=5),
    ProbeXMixture(TrainConfig(seed=2)),
]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_clone_get_params_set_params(est):
    params = est.get_params()
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est
    assert twin.get_params().keys() == params.keys()
    for k, v in params.items():
        assert twin.get_params()[k] == v  # equal values (configs are copied, not shared)
    if params:
        k = sorted(params)[0]
        assert twin.set_params(**{k: params[k]}) is twin
    assert not [a for a in vars(twin) if a.endswith("_") and not a.startswith("_")]  # no learned state in __init__


def test_a_fitted_clone_is_unfitted_and_refits_to_the_same_predictions():
    x, y = planted(n=80)
    for est in (ProbeX(ProbeXConfig(r_u=4, r_v=4, r_t=8, epochs=3, seed=1)), DenseLinearProbe(epochs=3, seed=1),
                LowRankProbe(rank=2)):
        est.fit(x, y)
        twin = clone(est)
        assert not hasattr(twin, "net_") and not hasattr(twin, "probes_")
        np.testing.assert_array_equal(twin.fit(x, y).decision_function(x[:5]), est.decision_function(x[:5]))
    assert ProbeX().config is None and ProbeX().fit(x, y).config_ == ProbeXConfig()  # None means the defaults


@pytest.fixture
def other_threads():
    """Run a test with a torch thread count no library call sets (3), restoring the suite's afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(previous)


def _process_state():
    return torch.get_num_threads(), torch.get_rng_state().clone(), dict(os.environ)


def _assert_unchanged(before):
    threads, rng, env = _process_state()
    assert threads == before[0]
    assert torch.equal(rng, before[1])
    assert env == before[2]


def test_fitting_leaves_threads_rng_and_environment_unchanged(other_threads):
    from lamina.weights.text.aligner import embed_text
    from lamina.weights.zoo.models import ArchConfig, build_model

    x, y = planted(n=60)
    torch.manual_seed(123)
    before = _process_state()
    ProbeX(ProbeXConfig(r_u=4, r_v=4, r_t=8, epochs=2, dropout=0.5)).fit(x, y)
    DenseLinearProbe(epochs=2).fit(x, y)
    R = np.random.default_rng(0).standard_normal((30, 6, 4)).astype(np.float32)
    TextAligner(k=2, rank=1, epochs=3).fit(R, y[:30, :3], embed_text(["a coat", "a bag", "a shirt"]))
    build_model(ArchConfig("mlp", [4, 4]), 3, seed=0)
    _assert_unchanged(before)
    expected = torch.rand(3)  # the caller's random stream continues where it was
    torch.set_rng_state(before[1])
    assert torch.equal(torch.rand(3), expected)


def test_zoo_build_leaves_threads_and_rng_unchanged(other_threads, tmp_path):
    from lamina.weights.zoo.build import ZooConfig, build_zoo

    from .test_integrity import MICRO

    (tmp_path / "micro.toml").write_text(MICRO)
    before = _process_state()
    build_zoo(ZooConfig.load(tmp_path / "micro.toml"), tmp_path / "zoo", workers=1, quiet=True)
    _assert_unchanged(before)


def test_report_figures_leave_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    from lamina.weights.eval.report import write_report

    from .test_report import fake_report

    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        write_report(fake_report(), tmp_path)
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(previous)
    assert (tmp_path / "map_per_method.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unfitted_estimators_raise_sklearns_not_fitted_error():
    """Before fit, the weights estimators raise scikit-learn's NotFittedError (also a lamina InputError)."""
    from sklearn.exceptions import NotFittedError

    from lamina.errors import InputError
    from lamina.weights.probes.linear import LowRankProbe
    from lamina.weights.probes.probex import ProbeX, ProbeXConfig
    from lamina.weights.text.aligner import TextAligner

    X = np.zeros((2, 4, 3), np.float32)
    for call in (lambda: ProbeX(ProbeXConfig()).predict_proba(X), lambda: LowRankProbe().decision_function(X),
                 lambda: TextAligner().features(np.zeros((2, 4, 8), np.float32))):
        with pytest.raises(NotFittedError) as err:
            call()
        assert isinstance(err.value, InputError)


def test_probex_settings_are_flat_hyperparameters_grid_search_can_tune():
    """Every ProbeXConfig setting is a keyword of ProbeX: get_params shows it, GridSearchCV tunes it (a config object
    and keyword settings together are refused rather than one silently winning)."""
    from sklearn.model_selection import GridSearchCV

    from lamina.errors import InputError

    X, Y = planted(n=48, seed=0)
    assert {"r_u", "activation", "dropout", "seed"} <= set(ProbeX().get_params())

    def neg_bce(est, X, y):
        p = np.clip(est.predict_proba(X), 1e-6, 1 - 1e-6)
        return float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    search = GridSearchCV(ProbeX(r_v=4, r_t=8, epochs=3), {"r_u": [2, 6], "activation": ["relu", "linear"]},
                          scoring=neg_bce, cv=2).fit(X, Y)
    assert set(search.best_params_) == {"r_u", "activation"}
    assert search.best_estimator_.config_.r_u == search.best_params_["r_u"]
    assert search.best_estimator_.config_.r_v == 4
    with pytest.raises(InputError, match="not both"):
        ProbeX(ProbeXConfig(r_u=4), r_u=8).fit(X, Y)
    with pytest.raises(InputError, match="^r_u: expected an integer >= 1"):
        ProbeX(r_u=0).fit(X, Y)
