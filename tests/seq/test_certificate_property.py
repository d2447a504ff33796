"""Certificates never lie: whatever the target, size, method or Lipschitz constant passed, ``construct`` either
refuses with a clear InputError or returns a certificate above every error measured (random, corners, adversarial
search)."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamina.errors import InputError
from lamina.seq.construct import construct
from lamina.seq.targets import FunctionTarget, MovingAverage, SineProduct, SmoothCumMax, SoftmaxMixing, Sort
from lamina.seq.verify import LipschitzWarning, sup_error

TOL = 1e-9  # float64 rounding of the constructed network (the certificate is for exact arithmetic)


@st.composite
def cases(draw):
    a = draw(st.floats(-1.5, 1.0))
    domain = (a, a + draw(st.floats(0.3, 2.0)))
    kind = draw(st.sampled_from(["ma", "cummax", "sort", "sine1", "sine2", "mix", "user"]))
    if kind == "ma":
        target = MovingAverage(draw(st.integers(1, 3)), 1, window=draw(st.integers(1, 2)), domain=domain)
    elif kind == "cummax":
        target = SmoothCumMax(draw(st.integers(1, 2)), 1, tau=draw(st.floats(0.5, 20)), domain=domain)
    elif kind == "sort":
        target = Sort(2, domain=domain)
    elif kind in ("sine1", "sine2"):
        target = SineProduct(1 if kind == "sine1" else 2, omega=draw(st.floats(0.5, 3)), domain=domain)
    elif kind == "mix":
        target = SoftmaxMixing(2, 1, scale=draw(st.floats(0, 2)), domain=domain)
    else:
        k = draw(st.floats(0.5, 2))
        # max-norm Lipschitz of cos(k x_i + x_j^2 / 2): k + max|x| for each output
        target = FunctionTarget(lambda x: np.cos(k * x[..., 0] + 0.5 * x[..., ::-1, 0] ** 2), n=2, d=1,
                                domain=domain, lipschitz=k + max(abs(domain[0]), abs(domain[1])))
    method = draw(st.sampled_from(["auto", "ridge", "grid"]))
    if draw(st.booleans()):
        route = {"eps": draw(st.floats(0.08, 0.4))}
    else:
        route = {"eps": None, "size": (draw(st.integers(1, 4)), draw(st.integers(2, 8)))}
    # a Lipschitz constant of the caller's: none, or the target's own scaled down (wrong) or up (loose)
    scale = draw(st.one_of(st.none(), st.floats(0.05, 3.0)))
    lipschitz = None if scale is None else scale * target.lipschitz
    return target, method, route, lipschitz


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 2**16))
def test_construct_refuses_or_its_certificate_bounds_the_measured_error(case, seed):
    target, method, route, lipschitz = case
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            c = construct(target, method=method, lipschitz=lipschitz, max_evaluations=2e5, seed=seed % 50, **route)
        except InputError as exc:
            assert str(exc).split(":")[0] in ("eps", "size", "method", "lipschitz"), exc
            return
    undercut = lipschitz is not None and lipschitz < target.lipschitz
    assert any(issubclass(w.category, LipschitzWarning) for w in caught) == undercut
    measured = sup_error(c, target, num_random=1000, num_corners=200, starts=3, steps=15, seed=seed)
    assert measured["max"] <= c.certificate.total + TOL, (measured, c.certificate.to_dict())
    if route["eps"] is not None:
        assert c.certificate.total <= route["eps"] * (1 + 1e-9)



def test_every_property_test_of_seq_is_derandomized():
    # a rare counterexample found by a random draw would be an unreproducible CI failure
    import importlib
    import inspect
    import pkgutil

    import tests.seq

    found = []
    for info in pkgutil.iter_modules(tests.seq.__path__):
        try:
            module = importlib.import_module(f"tests.seq.{info.name}")
        except pytest.skip.Exception:  # a module for an optional dependency that is not installed
            continue
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and hasattr(fn, "hypothesis"):
                found.append(name)
                assert fn._hypothesis_internal_use_settings.derandomize, f"{info.name}.{name}"
    assert "test_construct_refuses_or_its_certificate_bounds_the_measured_error" in found
