"""Checks of scalar settings shared by lamina.weights' configs and estimators (the array checks and
:func:`~lamina._validation.check_seed` / :func:`~lamina._validation.check_positive_int` live in lamina._validation)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from sklearn.exceptions import NotFittedError as _SklearnNotFitted

from lamina.errors import CheckpointError, InputError


class NotFittedError(InputError, _SklearnNotFitted):
    """An estimator used before ``fit``: scikit-learn's NotFittedError (so ``check_is_fitted``-style code and
    scikit-learn's estimator checks recognise it) and a lamina InputError (one line at the command line)."""


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


def check_ranks(name: str, value) -> list[int]:
    """``value`` as a list of integer ranks >= 1 (a list or tuple; an empty one is allowed)."""
    from lamina._validation import check_positive_int

    if not isinstance(value, list | tuple):
        raise InputError(f"{name}: expected a list of integer ranks, got {value!r}")
    return [check_positive_int(f"{name}[{i}]", r) for i, r in enumerate(value)]


@contextlib.contextmanager
def checkpoint_content(directory) -> Iterator[None]:
    """Turn a saved checkpoint whose ``config.json`` is valid JSON with the wrong content (a missing key, a value of
    the wrong type or range, tensors that do not fit the stated shapes) into one CheckpointError naming the file."""
    from lamina._io import CONFIG_FILE

    try:
        yield
    except CheckpointError:
        raise
    except InputError as exc:  # a saved setting the configs refuse, or a probe saved by an older lamina
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        what = f"missing entry {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE}: not the config of this checkpoint ({what}); "
                              "retrain it or restore the folder") from None
