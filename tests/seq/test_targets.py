import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.errors import InputError
from lamina.seq.targets import (
    FunctionTarget,
    MovingAverage,
    RandomMLP,
    SineProduct,
    SmoothCumMax,
    SoftmaxMixing,
    Sort,
    as_target,
    make_target,
)


def _ridge_eval(target, x):
    flat = x.reshape(len(x), -1)
    out = np.zeros((len(x), target.n, target.d_out))
    for i, row in enumerate(target.ridge()):
        for c, spec in enumerate(row):
            out[:, i, c] = spec.const + sum(term.fn(flat @ term.theta) for term in spec.terms)
    return out


@st.composite
def targets(draw):
    a = draw(st.floats(-2, 1))
    domain = (a, a + draw(st.floats(0.2, 3)))
    kind = draw(st.sampled_from(["ma", "mix", "cummax", "sort", "sine", "mlp"]))
    n = draw(st.integers(1, 4))
    d = draw(st.integers(1, 3))
    if kind == "ma":
        return MovingAverage(n, d, window=draw(st.integers(1, 4)), domain=domain)
    if kind == "mix":
        return SoftmaxMixing(n, d, scale=draw(st.floats(0, 4)), domain=domain)
    if kind == "cummax":
        return SmoothCumMax(n, d, tau=draw(st.floats(0.5, 30)), domain=domain)
    if kind == "sort":
        return Sort(n, 1, domain=domain)
    if kind == "sine":
        return SineProduct(n, 1, omega=draw(st.floats(0.5, 6)), domain=domain)
    return RandomMLP(n, d, hidden=draw(st.integers(1, 6)), d_out=draw(st.integers(1, 2)),
                     seed=draw(st.integers(0, 100)), domain=domain)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(targets(), st.integers(0, 2**16))
def test_lipschitz_constants_hold_on_random_and_nearby_pairs(target, seed):
    """|f(x) - f(x')| <= L max|x - x'| for random pairs and for pairs a small step apart."""
    rng = np.random.default_rng(seed)
    a, b = target.domain
    x = rng.uniform(a, b, size=(400, target.n, target.d))
    for scale in (b - a, 1e-3 * (b - a)):
        xp = np.clip(x + rng.uniform(-scale, scale, size=x.shape), a, b)
        dist = np.abs(x - xp).reshape(len(x), -1).max(axis=1)
        change = np.abs(target(x) - target(xp)).reshape(len(x), -1).max(axis=1)
        assert np.all(change <= target.lipschitz * dist * (1 + 1e-9) + 1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(targets(), st.integers(0, 2**16))
def test_ridge_decompositions_reproduce_the_target(target, seed):
    spec = target.ridge()
    if spec is None:
        assert target.name in ("softmax-mixing", "smooth-cummax", "sort", "sine-product")
        return
    x = np.random.default_rng(seed).uniform(*target.domain, size=(300, target.n, target.d))
    np.testing.assert_allclose(_ridge_eval(target, x), target(x), rtol=1e-9, atol=1e-9)


def test_library_values():
    x = np.array([[[0.2], [0.9], [0.4]]])
    np.testing.assert_allclose(Sort(3)(x)[0, :, 0], [0.2, 0.4, 0.9])
    np.testing.assert_allclose(MovingAverage(3, 1, window=2)(x)[0, :, 0], [0.2, 0.55, 0.65])
    cm = SmoothCumMax(3, 1, tau=200.0)(x)[0, :, 0]
    np.testing.assert_allclose(cm, [0.2, 0.9, 0.9], atol=0.01)
    mix = SoftmaxMixing(3, 1, scale=0.0)(x)
    np.testing.assert_allclose(mix[0, :, 0], np.full(3, x.mean()))
    mlp = RandomMLP(seed=3)
    y = mlp.sample(20000, np.random.default_rng(0))[1]
    assert abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05  # standardised outputs


def test_function_targets_are_checked():
    good = FunctionTarget(lambda x: x.sum(axis=2), n=3, d=2, lipschitz=2.0)
    assert good.d_out == 1 and good(np.zeros((4, 3, 2))).shape == (4, 3, 1)
    with pytest.raises(InputError, match="returned shape"):
        FunctionTarget(lambda x: x.sum(axis=(1, 2)), n=3, d=2)
    nan = FunctionTarget(lambda x: np.where(x[..., :1] > 0.5, np.nan, 0.0), n=2, d=1)
    with pytest.raises(InputError, match="NaN"):
        nan(np.full((2, 2, 1), 0.9))
    with pytest.raises(InputError, match="callable"):
        FunctionTarget(3, n=2, d=1)
    with pytest.raises(InputError, match="lipschitz"):
        FunctionTarget(lambda x: x, n=2, d=1, lipschitz=-1)
    with pytest.raises(InputError, match="n, d"):
        as_target(lambda x: x)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_target("sort", n=2, d=1, domain=(1, 0)), "domain"),
        (lambda: make_target("sort", n=2, d=1, domain=(0, np.inf)), "domain"),
        (lambda: make_target("sort", n=0, d=1), "n"),
        (lambda: make_target("sort", n=2, d=2), "d"),
        (lambda: make_target("random-mlp", n=2, d=0), "d"),
        (lambda: make_target("nope", n=2, d=1), "target"),
        (lambda: make_target("sort", n=2, d=1, colour=3), "bad parameters"),
        (lambda: SmoothCumMax(2, 1, tau=0), "tau"),
        (lambda: Sort(2)(np.zeros((3, 3, 1))), "x: expected shape"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(InputError, match=match):
        call()
