"""lamina.weights' own checks: its NotFittedError, lists of ranks, and saved checkpoint content (every scalar
check lives in :mod:`lamina._validation`: ``check_real``, ``check_positive_int``, ``check_seed``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sklearn.exceptions import NotFittedError as _SklearnNotFitted

from lamina.errors import CheckpointError, InputError


class NotFittedError(InputError, _SklearnNotFitted):
    """An estimator used before ``fit``: scikit-learn's NotFittedError (so ``check_is_fitted``-style code and
    scikit-learn's estimator checks recognise it) and a lamina InputError (one line at the command line)."""


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
