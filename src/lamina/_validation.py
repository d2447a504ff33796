"""Validation of arguments at the public boundary (shared by all parts): arrays, real numbers, counts, seeds.

One integer rule for every count, size and seed: a Python or NumPy integer, never a bool and never a float, even
one with an integral value (``2.0``, ``5e7``): a float count is almost always a unit slip, and refusing it beats
rounding it silently. ``float(True)`` is ``1.0`` and ``float(np.complex128(2))`` drops the imaginary part, so
:func:`check_real` refuses booleans and complex numbers, NaN, infinities and integers too large for a float.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Sequence

import numpy as np

from lamina.errors import InputError


def as_float_array(name: str, x, *, ndim: int | None = 1, allow_nan: bool = False) -> np.ndarray:
    """Return ``x`` as a float64 array, checking dimensionality and finiteness.

    Scalars are promoted to shape ``(1,)`` when ``ndim == 1``.
    """
    if x is None:
        raise InputError(f"{name}: expected numbers, got None")
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected numbers, got {type(x).__name__} ({exc})") from None
    _check_number_kind(name, raw)
    try:
        arr = np.array(raw, dtype=np.float64)  # a writable copy (inputs may be read-only Arrow buffers)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{name}: expected numbers, got {type(x).__name__} ({exc})") from None
    if ndim == 1 and arr.ndim == 0:
        arr = arr.reshape(1)
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if not allow_nan and arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise InputError(f"{name}: contains NaN or infinite values (first at index {bad})")
    return arr


_KIND_NAMES = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes", "M": "dates",
               "m": "time spans", "V": "raw records"}


def _check_number_kind(name: str, raw: np.ndarray) -> None:
    """Refuse values that NumPy would silently turn into floats: booleans, complex numbers, strings, None."""
    kind = raw.dtype.kind
    if kind in _KIND_NAMES:
        raise InputError(f"{name}: expected real numbers, got {_KIND_NAMES[kind]} (dtype {raw.dtype})")
    if kind == "O":
        for i, v in enumerate(raw.ravel()):
            if v is None:
                raise InputError(f"{name}: missing value (None) at index {i}; expected real numbers")
            if isinstance(v, bool | np.bool_ | complex | np.complexfloating | str | bytes):
                raise InputError(f"{name}: expected real numbers, got {type(v).__name__} {v!r} at index {i}")


def _show(v) -> str:
    """A number with all the digits needed to tell it from a bound (180.0000001 is not 180)."""
    v = float(v)
    return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def check_range(name: str, arr: np.ndarray, low: float, high: float, *, hint: str = "") -> np.ndarray:
    """Raise unless every value of ``arr`` lies in ``[low, high]``."""
    if arr.size:
        bad = (arr < low) | (arr > high)
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            extra = f"; {hint}" if hint else ""
            got = _show(arr.ravel()[i])
            raise InputError(f"{name}: must lie in [{low:g}, {high:g}], got {got} at index {i}{extra}")
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
        raise InputError(f"month: must be an integer in 1..12, got {_show(arr[i])} at index {i}")
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


def _is_integer(value) -> bool:
    return not isinstance(value, bool | np.bool_) and isinstance(value, int | np.integer)


def check_positive_int(name: str, value, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= ``minimum`` (and <= ``maximum`` when given;
    bool and floats refused)."""
    want = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
    if not _is_integer(value):
        raise InputError(f"{name}: expected {want}, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        raise InputError(f"{name}: expected {want}, got {value}")
    return int(value)


check_count = check_positive_int  # the name lamina.seq uses; one rule for every count


def check_bool(name: str, value) -> bool:
    """Return ``value`` as a bool, raising unless it is True or False (1, 0, "yes" and None refused)."""
    if not isinstance(value, bool | np.bool_):
        raise InputError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value, choices: Sequence):
    """Return ``value``, raising unless it is one of ``choices`` (listed in the message, in their order)."""
    choices = tuple(choices)
    try:  # an array is never a choice (a one-element one would compare equal to its element)
        known = not isinstance(value, np.ndarray) and value in choices
    except (TypeError, ValueError):  # e.g. an unhashable or incomparable value
        known = False
    if not known:
        raise InputError(f"{name}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_workers(name: str, value, *, tasks: int | None = None) -> int:
    """A count of worker processes: an integer >= 1, capped at the CPUs available and at ``tasks`` when given.

    A larger request is not an error (a script written for a bigger machine still runs) but is never trusted as
    it is: it is lowered, with a warning naming the cap, so that no call forks more processes than the machine has
    cores (or than there is work for).
    """
    n = check_positive_int(name, value)
    cpus = available_cpus()
    cap = cpus if tasks is None else max(1, min(cpus, int(tasks)))
    if n > cap:
        why = f"the {cpus} CPUs available" if cap == cpus else f"the {cap} tasks to run"
        logging.getLogger("lamina").warning("%s: %d worker processes lowered to %d (%s)", name, n, cap, why)
        return cap
    return n


def _describe(low: float | None, low_open: bool, high: float | None, high_open: bool = False) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return "a finite number" + (" " + " and ".join(parts) if parts else "")


def check_real(name: str, value, *, low: float | None = None, low_open: bool = False, high: float | None = None,
               high_open: bool = False, allow_none: bool = False) -> float | None:
    """Return ``value`` as a finite float within the bounds; ``None`` passes only with ``allow_none``.

    Args:
        name: the argument's name, for the message.
        value: a real number (int, float, NumPy real scalar or 0-d array); bool and complex are refused, and so
            is an integer too large for a float (an ``InputError``, not an ``OverflowError``).
        low: lower bound (inclusive, or exclusive with ``low_open``).
        high: upper bound (inclusive, or exclusive with ``high_open``).
        allow_none: accept ``None`` (returned as is).
    """
    want = _describe(low, low_open, high, high_open)
    if value is None:
        if allow_none:
            return None
        raise InputError(f"{name}: expected {want}, got None")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InputError(f"{name}: expected {want}, got {value!r} ({type(value).__name__})")
    try:
        out = float(value)
    except OverflowError:
        raise InputError(f"{name}: expected {want}, got an integer of {len(str(abs(int(value))))} digits, "
                         "too large for a float") from None
    if not math.isfinite(out):
        raise InputError(f"{name}: expected {want}, got {out!r}")
    if low is not None and (out <= low if low_open else out < low):
        raise InputError(f"{name}: expected {want}, got {out:g}")
    if high is not None and (out >= high if high_open else out > high):
        raise InputError(f"{name}: expected {want}, got {out:g}")
    return out


SEED_MAX = 2**32 - 1


def check_seed(name: str, value) -> int:
    """Return ``value`` as an int, raising unless it is an integer seed in [0, 2**32 - 1] (NumPy's and torch's
    common range)."""
    if not _is_integer(value):
        raise InputError(f"{name}: expected an integer in [0, {SEED_MAX}], got {value!r}")
    if not 0 <= value <= SEED_MAX:
        raise InputError(f"{name}: expected an integer in [0, {SEED_MAX}], got {value}")
    return int(value)


def available_memory() -> int | None:
    """Bytes of memory this process may still take without swapping, or None where the OS does not say.

    The kernel's estimate (``MemAvailable``: free memory plus the page cache it can drop), lowered to what a
    cgroup memory limit (containers) and an address-space limit (``ulimit -v``) leave.
    """
    candidates = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not candidates:
        try:  # psutil comes with distributed; elsewhere the free pages (an underestimate: no page cache)
            import psutil

            candidates.append(int(psutil.virtual_memory().available))
        except Exception:  # any failure means "unknown"
            try:
                candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
            except (ValueError, OSError, AttributeError):
                pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as fh:
                limit = fh.read().strip()
            with open(usage_file) as fh:
                usage = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:  # "max" or a huge number: no limit
            candidates.append(max(0, int(limit) - usage))
        break
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as fh:
                used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            candidates.append(max(0, soft - used))
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return min(candidates) if candidates else None


def _bytes(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000:
            return f"{n:.3g} {unit}"
    return f"{n / 1000:.3g} PB"


def check_memory(name: str, nbytes: int | float, what: str, *, hint: str = "") -> None:
    """Raise unless ``nbytes`` (an estimate of what ``what`` allocates) fits in the memory available now.

    Called before an allocation that a size argument sets, so that an absurd size is one clear line instead of
    a ``MemoryError``, a torch ``RuntimeError`` or a machine driven into swap. Where the OS does not say how much
    is available, nothing is checked.

    Args:
        name: the argument that sets the size (``--d-model``, ``resolution``), named in the message.
        nbytes: bytes the allocation needs (a Python int or float: sizes beyond int64 are fine).
        what: what is allocated, for the message (``"a model of 1e+22 parameters"``).
        hint: how to make it smaller.
    """
    avail = available_memory()
    if avail is None or nbytes <= avail:
        return
    extra = f"; {hint}" if hint else ""
    raise InputError(f"{name}: {what} needs about {_bytes(float(nbytes))} of memory, more than the "
                     f"{_bytes(float(avail))} available{extra}")
