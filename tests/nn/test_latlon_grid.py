"""LatLonGrid: learned multi-resolution latitude-longitude features (interpolation, wrap, gradients)."""

import numpy as np
import pytest
import torch

from lamina.nn import LatLonGrid


def _grid(resolutions=(10.0,), features=2, seed=0):
    g = LatLonGrid(resolutions, features)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in g.tables:
            t.copy_(torch.randn(t.shape, generator=gen))
    return g


def test_starts_at_zero_with_the_documented_shapes():
    g = LatLonGrid((2.0, 0.5), features=3)
    assert [tuple(t.shape) for t in g.tables] == [(91 * 180, 3), (361 * 720, 3)]
    out = g(torch.tensor([12.3, -170.0]), torch.tensor([45.6, -89.9]))
    assert out.shape == (2, 6) and g.dim_out == 6 and torch.count_nonzero(out) == 0


def test_nodes_are_reproduced_and_cells_are_bilinear():
    g = _grid((10.0,), features=2)
    rows, cols = g.shapes[0]
    table = g.tables[0].detach().reshape(rows, cols, 2)
    # at a node: that node's values (lon -180 + 10 j, lat -90 + 10 i)
    got = g(torch.tensor([-180.0 + 10 * 7]), torch.tensor([-90.0 + 10 * 4])).detach()
    torch.testing.assert_close(got[0], table[4, 7])
    # inside a cell: the bilinear mix of its four nodes
    fu, fv = 0.3, 0.8
    got = g(torch.tensor([-180.0 + 10 * (7 + fu)]), torch.tensor([-90.0 + 10 * (4 + fv)])).detach()[0]
    want = ((1 - fu) * (1 - fv) * table[4, 7] + fu * (1 - fv) * table[4, 8] + (1 - fu) * fv * table[5, 7]
            + fu * fv * table[5, 8])
    torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-5)


def test_continuous_across_the_antimeridian_and_defined_at_the_poles():
    g = _grid((2.0, 0.25))
    lat = torch.tensor([-33.3, 0.0, 71.1])
    east = g(torch.full((3,), 180.0 - 1e-7), lat)
    west = g(torch.full((3,), -180.0), lat)
    torch.testing.assert_close(east, west, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g(torch.full((3,), 180.0), lat), west)  # 180 is -180
    poles = g(torch.tensor([0.0, 0.0]), torch.tensor([90.0, -90.0]))
    assert torch.isfinite(poles).all()


def test_a_gradient_reaches_only_the_nodes_of_the_samples_cells():
    g = _grid((1.0,))
    g(torch.tensor([10.25]), torch.tensor([20.5])).sum().backward()
    grad = g.tables[0].grad.reshape(*g.shapes[0], 2)
    touched = torch.nonzero(grad.abs().sum(-1)).tolist()
    assert sorted(touched) == [[110, 190], [110, 191], [111, 190], [111, 191]]


def test_levels_concatenate_in_order():
    g = _grid((5.0, 1.0), features=1)
    lon, lat = torch.tensor([33.3]), torch.tensor([-12.1])
    both = g(lon, lat)
    one = LatLonGrid((1.0,), 1)
    with torch.no_grad():
        one.tables[0].copy_(g.tables[1])
    torch.testing.assert_close(both[:, 1:], one(lon, lat))
    assert np.isfinite(both.detach().numpy()).all()


@pytest.mark.parametrize("lon", [-180.0, -179.999, 0.0, 179.999, 180.0])
def test_every_longitude_indexes_inside_the_table(lon):
    g = _grid((0.25,))
    assert torch.isfinite(g(torch.tensor([lon]), torch.tensor([89.99]))).all()


@pytest.mark.parametrize(("args", "match"), [
    (([0.7],), "does not divide 180"),
    (([],), "at least one"),
    (([-1.0],), "resolutions"),
    (([1.0], 0), "features"),
    (("1,2",), "list of node spacings"),
])
def test_bad_arguments_are_refused(args, match):
    from lamina.errors import InputError

    with pytest.raises(InputError, match=match):
        LatLonGrid(*args)


# ---------------------------------------------------------------- FixedLatLonGrid: fixed input data on one grid


def test_a_fixed_grid_holds_data_not_parameters_and_interpolates_like_the_learned_one():
    from lamina.nn import FixedLatLonGrid

    fixed = FixedLatLonGrid(10.0, features=2)
    assert list(fixed.parameters()) == [] and fixed.table.dtype == torch.float16
    assert torch.count_nonzero(fixed(torch.tensor([5.0]), torch.tensor([5.0]))) == 0  # zeros before fill
    learned = _grid((10.0,), features=2)
    values = learned.tables[0].detach().half().float()  # values float16 holds exactly
    fixed.fill(values.numpy())
    lon, lat = torch.tensor([-179.9, 12.3, 179.99, 0.0]), torch.tensor([-89.5, 45.6, 10.0, 90.0])
    with torch.no_grad():
        learned.tables[0].copy_(values)
        want = learned(lon, lat)
    got = fixed(lon, lat)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    again = FixedLatLonGrid(10.0, features=2)
    again.load_state_dict(fixed.state_dict())  # saved with the module, restored exactly
    torch.testing.assert_close(again(lon, lat), got, rtol=0, atol=0)


@pytest.mark.parametrize(("values", "match"), [
    (np.zeros((5, 2)), r"expected shape \(684, 2\)"),
    (np.full((684, 2), np.nan), "finite"),
    (np.full((684, 2), 1e6), "float16"),
])
def test_a_fixed_grid_refuses_bad_values_and_keeps_its_own(values, match):
    from lamina.errors import InputError
    from lamina.nn import FixedLatLonGrid

    fixed = FixedLatLonGrid(10.0, features=2)  # 19 x 36 nodes
    fixed.fill(np.ones((684, 2)))
    with pytest.raises(InputError, match=match):
        fixed.fill(values)
    assert bool((fixed.table == 1).all())
