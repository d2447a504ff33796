import math

import pytest
import torch

from lamina.nn import SIREN, Sine, SineLayer


def test_default_architecture_matches_climplicit_size():
    net = SIREN(dim_in=4)  # 16 x 512 -> 256, as in the paper
    n_params = sum(p.numel() for p in net.parameters())
    head = 256 * 11 + 11
    assert abs(n_params + head - 4.07e6) < 0.01e6
    assert len(net.layers) == 16
    assert net.layers[0].activation.w0 == 30.0 and net.layers[0].activation.hyperbolic
    assert all(layer.activation.w0 == 1.0 and not layer.activation.hyperbolic for layer in net.layers[1:])


def test_siren_initialisation_bounds():
    layer = SineLayer(512, 512, w0=1.0, c=6.0)
    bound = math.sqrt(6.0 / 512)
    assert layer.linear.weight.abs().max() <= bound
    assert layer.linear.weight.abs().max() > 0.9 * bound
    first = SineLayer(4, 512, w0=30.0, is_first=True)
    assert first.linear.weight.abs().max() <= 1.0 / 4


def test_hsiren_activation():
    act = Sine(30.0, hyperbolic=True)
    z = torch.linspace(-1, 1, 11)
    torch.testing.assert_close(act(z), torch.sin(30.0 * torch.sinh(2 * z)))


def test_residual_averaging_carries_the_input_through_dead_layers():
    """ReSIREN's pre-activation averaging is a skip path: with every hidden layer after the first zeroed, the
    residual network still depends on its input (halved pre-activations reach the head), a plain SIREN does not."""
    x = torch.rand(64, 3) * 2 - 1
    outputs = {}
    for residual in (True, False):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = SIREN(dim_in=3, dim_hidden=16, dim_out=5, num_layers=4, residual=residual, hyperbolic_first=False)
        with torch.no_grad():
            for layer in net.layers[1:]:
                layer.linear.weight.zero_()
                layer.linear.bias.zero_()
            outputs[residual] = net(x)
    assert outputs[True].std(dim=0).min() > 1e-3
    torch.testing.assert_close(outputs[False], outputs[False][:1].expand_as(outputs[False]))


@pytest.mark.parametrize("residual", [True, False])
def test_inference_path_matches_forward(residual):
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net = SIREN(dim_in=4, dim_hidden=64, dim_out=16, num_layers=5, residual=residual)
    x = torch.rand(1000, 4) * 2 - 1
    with torch.no_grad():
        ref = net(x)
    out = net.forward_inference(x, chunk=128)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    low = net.forward_inference(x, chunk=300, dtype=torch.bfloat16)
    assert (low - ref).abs().max() < 0.1 * ref.abs().max()


def test_siren_rejects_zero_layers():
    with pytest.raises(ValueError, match="num_layers"):
        SIREN(dim_in=2, num_layers=0)


@pytest.mark.parametrize("n, chunk, threads", [(1000, 128, 2), (1000, 128, 3), (257, 128, 2), (100, 128, 2)])
def test_row_parallel_inference_equals_the_single_threaded_pass(n, chunk, threads):
    """Rows split across threads give the same rows (each row's arithmetic does not depend on its neighbours), and
    torch's thread count is the caller's again afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        net = SIREN(4, 64, 16, num_layers=4)
        x = torch.rand(n, 4) * 2 - 1
    before = torch.get_num_threads()
    one = net.forward_inference(x, chunk=chunk, threads=1)
    many = net.forward_inference(x, chunk=chunk, threads=threads)
    assert torch.get_num_threads() == before
    # the same chunks either way; only the BLAS thread count differs, which may reorder a dot product's sums
    torch.testing.assert_close(many, one, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(many, net(x).detach(), rtol=1e-5, atol=1e-5)
    low = net.forward_inference(x, chunk=chunk, threads=threads, dtype=torch.bfloat16)
    torch.testing.assert_close(low, net.forward_inference(x, chunk=chunk, threads=1, dtype=torch.bfloat16),
                               rtol=1e-2, atol=1e-2)  # bfloat16 products: 8 mantissa bits
