"""lamina.geo.LocationEncoder: the bundled encoder as a differentiable torch module."""

import numpy as np
import pytest
import torch

import lamina.geo
from lamina.errors import InputError
from lamina.geo.location_encoder import LocationEncoder


@pytest.fixture(scope="module")
def enc():
    return lamina.geo.load()


def test_forward_equals_embed(enc):
    loc = LocationEncoder(enc)
    lon, lat = np.array([8.55, -70.0, 179.9]), np.array([47.37, -15.0, -60.0])
    x = torch.tensor(np.stack([lon, lat], 1), dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_allclose(loc(x, torch.tensor([6, 6, 6])).numpy(), enc.embed(lon=lon, lat=lat, month=6),
                                   rtol=1e-4, atol=1e-4)
        four = loc(x)
    assert four.shape == (3, 4 * enc.embedding_dim) == (3, loc.dim_out)
    np.testing.assert_allclose(four.numpy(), enc.embed(lon=lon, lat=lat), rtol=1e-4, atol=1e-4)
    assert "lamina.geo.LocationEncoder" not in dir(lamina.geo) and "LocationEncoder" in dir(lamina.geo)
    assert "load" in dir(lamina.geo)


def test_dtype_gradients_and_shared_weights(enc):
    loc = LocationEncoder.from_pretrained(month=3)
    x = torch.tensor([[8.55, 47.37], [100.0, 30.0]], dtype=torch.float64, requires_grad=True)
    out = loc(x)
    assert out.dtype == torch.float64 and out.shape == (2, loc.embedding_dim)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in loc.net.siren.parameters())
    # the module holds the encoder's own weights: a step on the module changes the NumPy-facing encoder too
    shared = LocationEncoder(enc)
    before = enc.embed(lon=[8.55], lat=[47.37], month=6)
    with torch.no_grad():
        next(shared.parameters()).add_(0.01)
    try:
        assert not np.allclose(enc.embed(lon=[8.55], lat=[47.37], month=6), before)
    finally:
        with torch.no_grad():
            next(shared.parameters()).sub_(0.01)


def test_a_head_trains_end_to_end(enc):
    torch.manual_seed(0)
    loc = LocationEncoder(lamina.geo.load(), month=6)  # its own copy of the weights
    model = torch.nn.Sequential(loc, torch.nn.Linear(loc.dim_out, 1))
    g = torch.Generator().manual_seed(0)
    x = torch.stack([torch.rand(256, generator=g) * 360 - 180, torch.rand(256, generator=g) * 120 - 60], 1)
    y = (x[:, 1:2].abs() < 23.5).float()  # tropics, from coordinates only (synthetic labels for a unit test)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


@pytest.mark.parametrize("lonlat, month, words", [
    (torch.zeros(3), None, "(B, 2)"),
    (torch.zeros(3, 2, dtype=torch.int64), None, "floating-point"),
    (torch.tensor([[0.0, float("nan")]]), None, "NaN"),
    (torch.tensor([[0.0, 91.0]]), None, "latitude"),
    (torch.tensor([[200.0, 0.0]]), None, "longitude"),
    (torch.zeros(2, 2), torch.tensor([0, 1]), "1..12"),
    (torch.zeros(2, 2), torch.tensor([1.0, 2.0]), "integers"),
    (torch.zeros(2, 2), torch.tensor([1, 2, 3]), "shape (2,)"),
])
def test_bad_input(enc, lonlat, month, words):
    with pytest.raises(InputError, match=f".*{words.replace('(', '.').replace(')', '.')}"):
        LocationEncoder(enc)(lonlat, month)


def test_bad_construction():
    with pytest.raises(InputError, match="ClimateEncoder"):
        LocationEncoder("bundled:default")
    with pytest.raises(InputError, match="month"):
        LocationEncoder.from_pretrained(month=13)
