import math

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.seq.model import SeqConfig
from lamina.seq.sweep import construct_vs_train, power_law_slope, sweep
from lamina.seq.targets import MovingAverage, SmoothCumMax
from lamina.seq.train import TrainConfig

TINY = TrainConfig(steps=30, batch_size=16, num_train=300, num_test=100, eval_every=30, threads=1, warmup_steps=5)


def test_power_law_slope_recovers_an_exact_power_law():
    x = np.array([1, 2, 4, 8, 16])
    fit = power_law_slope(x, 3.0 * x**-0.75)
    assert fit["slope"] == pytest.approx(-0.75) and fit["prefactor"] == pytest.approx(3.0)
    assert fit["r2"] == pytest.approx(1.0)
    assert math.isnan(power_law_slope([1], [1.0])["slope"])


@pytest.mark.parametrize("vary, values", [("heads", [1, 2]), ("d_ff", [4, 8]), ("n", [3, 4])])
def test_sweep_trains_one_model_per_value(vary, values):
    base = SeqConfig(n_ctx=3, d_in=1, d_model=8, n_heads=2, d_ff=8)
    res = sweep(lambda n: MovingAverage(n, 1), base, TINY, vary=vary, values=values, n=3, progress=False)
    assert [r["value"] for r in res["runs"]] == values
    assert all(r["steps"] == 30 and r["rel_mse"] > 0 for r in res["runs"])
    assert set(res["slopes"]) == {"rel_mse", "sup_error", "rel_mse_vs_params"}
    if vary == "n":
        assert all("baselines" in r for r in res["runs"])
    if vary == "d_ff":
        assert res["runs"][1]["n_params"] > res["runs"][0]["n_params"]
    with pytest.raises(InputError, match="vary"):
        sweep(lambda n: MovingAverage(n, 1), base, TINY, vary="depth", values=[1], n=3, progress=False)


def test_heads_sweep_can_keep_the_head_width_and_start_from_gathering_heads():
    base = SeqConfig(n_ctx=4, d_in=1, d_model=8, n_heads=2, d_head=2, d_ff=8)
    res = sweep(lambda n: MovingAverage(n, 1), base, TINY, vary="heads", values=[1, 4], n=4, progress=False,
                keep_d_head=True, init="gather")
    assert [r["d_head"] for r in res["runs"]] == [2, 2] and res["init"] == "gather"
    split = sweep(lambda n: MovingAverage(n, 1), base, TINY, vary="heads", values=[1, 4], n=4, progress=False)
    assert [r["d_head"] for r in split["runs"]] == [8, 2]
    with pytest.raises(InputError, match="init"):
        sweep(lambda n: MovingAverage(n, 1), base, TINY, vary="heads", values=[1], n=4, init="zeros")


def test_construct_vs_train_reports_both_sides():
    res = construct_vs_train(SmoothCumMax(2, 1), eps_values=[0.1, 0.02], widths=[4], train_cfg=TINY, d_model=8,
                             sup_kwargs={"num_random": 200, "num_corners": 20, "starts": 1, "steps": 2},
                             progress=False)
    c = res["constructed"]
    assert len(c) == 2 and c[1]["n_params"] >= c[0]["n_params"]
    assert all(r["measured_sup"] <= r["certified"] + 1e-9 for r in c)
    assert len(res["trained"]) == 1 and res["trained"][0]["measured_sup"] > 0


@pytest.mark.parametrize("values", [[], [1, 0], [2.5], [True], [float("nan")], ["4"]])
def test_sweep_refuses_values_that_are_not_counts(values):
    base = SeqConfig(n_ctx=3, d_in=1, d_model=8, n_heads=2, d_ff=8)
    with pytest.raises(InputError, match="values"):
        sweep(lambda n: MovingAverage(n, 1), base, TINY, vary="d_ff", values=values, n=3, progress=False)


@pytest.mark.parametrize("kw, match", [(dict(eps_values=[0.1, float("nan")]), "eps_values"),
                                       (dict(eps_values=[-0.1]), "eps_values"),
                                       (dict(widths=[4, 0]), "widths"), (dict(widths=[1.5]), "widths")])
def test_construct_vs_train_refuses_bad_sizes(kw, match):
    args = {"eps_values": [0.1], "widths": [4], **kw}
    with pytest.raises(InputError, match=match):
        construct_vs_train(SmoothCumMax(2, 1), train_cfg=TINY, d_model=8, progress=False, **args)
