"""Checks of scalar arguments at lamina.seq's public boundary: real numbers and counts.

``float(True)`` is ``1.0`` and ``float(np.complex128(2))`` drops the imaginary part with a warning, so a plain
``float(value)`` lets booleans and complex numbers through; these checks refuse them, and NaN and infinities, with
an :class:`~lamina.errors.InputError` naming the argument and the accepted range.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from lamina.errors import InputError


def _describe(low: float | None, low_open: bool, high: float | None) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return "a finite number" + (" " + " and ".join(parts) if parts else "")


def check_real(name: str, value, *, low: float | None = None, low_open: bool = False, high: float | None = None,
               allow_none: bool = False) -> float | None:
    """Return ``value`` as a finite float within the bounds; ``None`` passes only with ``allow_none``.

    Args:
        name: the argument's name, for the message.
        value: a real number (int, float, NumPy real scalar or 0-d array); bool and complex are refused.
        low: lower bound (inclusive, or exclusive with ``low_open``).
        high: upper bound (inclusive).
        allow_none: accept ``None`` (returned as is).
    """
    want = _describe(low, low_open, high)
    if value is None:
        if allow_none:
            return None
        raise InputError(f"{name}: expected {want}, got None")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InputError(f"{name}: expected {want}, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name}: expected {want}, got {out!r}")
    if low is not None and (out <= low if low_open else out < low):
        raise InputError(f"{name}: expected {want}, got {out:g}")
    if high is not None and out > high:
        raise InputError(f"{name}: expected {want}, got {out:g}")
    return out


def check_count(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as an int ``>= minimum``; floats with an integral value (``5e7``) are accepted, bool not."""
    if isinstance(value, bool | np.bool_):
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        out = int(float(value))
    else:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if out < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {out}")
    return out
