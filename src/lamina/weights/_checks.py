"""Checks of scalar settings shared by lamina.weights' configs and estimators (the array checks and
:func:`~lamina._validation.check_seed` / :func:`~lamina._validation.check_positive_int` live in lamina._validation)."""

from __future__ import annotations

import math

import numpy as np

from lamina.errors import InputError


def check_number(name: str, value, *, low: float = 0.0, low_open: bool = True, high: float = math.inf,
                 high_open: bool = True) -> float:
    """Return ``value`` as a float, raising unless it is a finite real number (not a bool) in the given interval.

    The default interval is ``(0, inf)``: a learning rate. ``low_open=False`` admits ``low`` itself (a weight
    decay: ``[0, inf)``); a finite ``high`` closes the interval above (dropout: ``[0, 1)``).
    """
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    accepted = f"a finite number in {left}{low:g}, {high:g}{right}" if math.isfinite(high) else (
        f"a finite number {'>' if low_open else '>='} {low:g}")
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(f"{name}: expected {accepted}, got {value!r}")
    v = float(value)
    if (not math.isfinite(v) or v < low or (low_open and v == low) or v > high or (high_open and v == high)):
        raise InputError(f"{name}: expected {accepted}, got {v!r}")
    return v
