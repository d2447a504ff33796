"""The scalar checks lamina.seq uses live in lamina._validation (one integer rule), and seq's warnings in
lamina.errors."""

import numpy as np
import pytest

import lamina.errors
import lamina.seq
from lamina._validation import check_count, check_positive_int, check_real
from lamina.errors import InputError
from lamina.seq.construct import construct
from lamina.seq.targets import SmoothCumMax


def test_seq_warnings_are_the_ones_in_lamina_errors():
    assert lamina.seq.OutOfDomainWarning is lamina.errors.OutOfDomainWarning
    assert lamina.seq.LipschitzWarning is lamina.errors.LipschitzWarning


@pytest.mark.parametrize("check", [check_count, check_positive_int])
@pytest.mark.parametrize("value", [2.0, 5e7, True, np.float64(3.0), "3", None])
def test_counts_are_integers_only(check, value):
    with pytest.raises(InputError, match=r"^k: expected an integer >= 1"):
        check("k", value)


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_integer_counts_pass(value):
    out = check_count("k", value)
    assert out == 3 and type(out) is int


def test_a_float_count_is_refused_by_construct():
    with pytest.raises(InputError, match="max_params: expected an integer"):
        construct(SmoothCumMax(2, 1, tau=5.0), eps=0.05, max_params=5e6)


def test_an_integer_too_large_for_a_float_is_an_input_error():
    with pytest.raises(InputError, match=r"^tau: expected a finite number > 0, got an integer of 401 digits"):
        check_real("tau", 10**400, low=0.0, low_open=True)
    with pytest.raises(InputError, match="tau"):
        SmoothCumMax(2, 1, tau=-(10**400))
