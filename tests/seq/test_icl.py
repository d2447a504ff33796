import numpy as np
import pytest
import torch

from lamina.errors import InputError
from lamina.seq.icl import InContextRegression, compare_with_gd
from lamina.seq.model import SeqConfig, SingleLayerTransformer


def _gd_layer(task: InContextRegression, eta: float) -> SingleLayerTransformer:
    """Linear self-attention written by hand to implement one GD step: query/key read x, value reads y."""
    d, L = task.dx, task.n
    cfg = SeqConfig(n_ctx=L, d_in=d + 1, d_out=1, d_model=d + 1, n_heads=1, d_head=d + 1, d_ff=0,
                    positional="none", attention="linear", attn_scale=eta * L / task.n_context)
    model = SingleLayerTransformer(cfg).double()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_in.weight.copy_(torch.eye(d + 1))
        model.W_q.weight[:d, :d] = torch.eye(d)
        model.W_k.weight[:d, :d] = torch.eye(d)
        model.W_v.weight[d, d] = 1.0
        model.W_o.weight[d, d] = 1.0
        model.W_out.weight[0, d] = 1.0  # the query's label slot is 0 before attention
    return model


def test_a_layer_that_implements_one_gd_step_is_recognised_exactly():
    task = InContextRegression(n_context=12, d=3)
    res = compare_with_gd(_gd_layer(task, task.eta_star).predict, task, num=2000)
    assert res["relative_difference"] < 1e-20
    assert res["gamma_r2"] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res["gamma"], task.eta_star * np.eye(3), atol=1e-10)
    assert res["mse_model"] == pytest.approx(res["mse_gd_eta_star"])
    assert res["mse_least_squares"] < 1e-20 < res["mse_gd_eta_star"] < res["mse_zero"]


def test_a_different_step_is_told_apart():
    task = InContextRegression(n_context=12, d=3)
    res = compare_with_gd(_gd_layer(task, 0.5 * task.eta_star).predict, task, num=2000)
    assert res["gamma_vs_eta_identity"] == pytest.approx(0.5, abs=1e-9)
    assert res["mse_model"] > res["mse_gd_eta_star"]


def test_eta_star_is_the_best_step():
    task = InContextRegression(n_context=10, d=4, noise=0.5)
    res = compare_with_gd(_gd_layer(task, task.eta_star).predict, task, num=20000, seed=1)
    assert task.eta_star == pytest.approx(10 / (10 + 4 + 1 + 0.25))
    assert res["eta_fitted"] == pytest.approx(task.eta_star, rel=0.05)  # Monte-Carlo optimum of the step


def test_sampling_hides_the_query_label():
    task = InContextRegression(n_context=5, d=2)
    x, y = task.sample(4, np.random.default_rng(0))
    assert x.shape == (4, 6, 3) and y.shape == (4, 6, 1)
    assert np.all(x[:, -1, -1] == 0) and np.all(y[:, :-1] == 0)
    with pytest.raises(InputError, match="noise"):
        InContextRegression(noise=-1.0)
