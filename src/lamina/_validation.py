"""Validation of array arguments at the public boundary (shared by all parts)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lamina.errors import InputError


def as_float_array(name: str, x, *, ndim: int | None = 1, allow_nan: bool = False) -> np.ndarray:
    """Return ``x`` as a float64 array, checking dimensionality and finiteness.

    Scalars are promoted to shape ``(1,)`` when ``ndim == 1``.
    """
    try:
        arr = np.array(x, dtype=np.float64)  # a writable copy (inputs may be read-only Arrow buffers)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected numbers, got {type(x).__name__} ({exc})") from None
    if ndim == 1 and arr.ndim == 0:
        arr = arr.reshape(1)
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if not allow_nan and arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise InputError(f"{name}: contains NaN or infinite values (first at index {bad})")
    return arr


def check_range(name: str, arr: np.ndarray, low: float, high: float, *, hint: str = "") -> np.ndarray:
    """Raise unless every value of ``arr`` lies in ``[low, high]``."""
    if arr.size:
        bad = (arr < low) | (arr > high)
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            extra = f"; {hint}" if hint else ""
            raise InputError(f"{name}: must lie in [{low:g}, {high:g}], got {arr.ravel()[i]:g} at index {i}{extra}")
    return arr


def wrap_lon(lon: np.ndarray) -> np.ndarray:
    """Wrap longitudes in degrees east to [-180, 180)."""
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


def check_lon_lat(lon, lat, *, wrap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate longitude and latitude arrays in degrees.

    Args:
        lon: (N,) degrees east in [-180, 180] (any finite value when ``wrap`` is true).
        lat: (N,) degrees north in [-90, 90].
        wrap: wrap longitudes into [-180, 180) instead of rejecting values outside it.

    Returns:
        ``(lon, lat)`` as float64 arrays of shape (N,).
    """
    lon = as_float_array("lon", lon)
    lat = as_float_array("lat", lat)
    check_same_length(lon=lon, lat=lat)
    check_range("lat", lat, -90.0, 90.0)
    if wrap:
        lon = wrap_lon(lon)
    else:
        check_range("lon", lon, -180.0, 180.0, hint="pass wrap_lon=True (CLI: --wrap-lon) to wrap it")
    return lon, lat


def check_month(month, n: int | None = None) -> np.ndarray:
    """Validate months 1..12 (a scalar or an (N,) array) and return an int64 array of shape (N,)."""
    arr = as_float_array("month", month)
    check_range("month", arr, 1, 12)
    if np.any(arr != np.round(arr)):
        i = int(np.flatnonzero(arr != np.round(arr))[0])
        raise InputError(f"month: must be an integer in 1..12, got {arr[i]:g} at index {i}")
    out = arr.astype(np.int64)
    if n is not None:
        if out.size == 1:
            out = np.full(n, out[0], dtype=np.int64)
        elif out.size != n:
            raise InputError(f"month: expected a scalar or {n} values (one per point), got {out.size}")
    return out


def check_same_length(**arrays: Sequence | np.ndarray) -> int:
    """Raise unless all arrays have the same length; return it."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise InputError(f"arguments must have the same length: {desc}")
    return next(iter(lengths.values()), 0)


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)
