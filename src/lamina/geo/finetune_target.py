"""The target of a fine-tuning: which kind of task a column is, its classes or standardisation, checked.

``kind="auto"`` decides from the column's type: text, categories and true / false are classes; integers are
classes when there are at most :data:`AUTO_MAX_INT_CLASSES` distinct values, else a regression target; real
numbers are a regression target; several columns are always a (multi-output) regression. Missing values (NaN,
None, empty text) are refused with their row rather than dropped silently.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from lamina._validation import check_choice
from lamina.errors import InputError

KINDS = ("auto", "classification", "regression")
AUTO_MAX_INT_CLASSES = 50
MAX_CLASSES = 1000


@dataclass
class Target:
    """A checked target.

    Attributes:
        kind: ``"classification"`` or ``"regression"``; reason: why (for ``kind="auto"``).
        names: the target column names.
        values: (N,) int64 class indices into ``labels``, or (N, T) float64 values in the targets' units.
        labels: class labels (str, int or bool, sorted) or, for regression, the target names.
        counts: (K,) points per class (classification).
        mean, std: (T,) standardisation of regression targets.
    """

    kind: str
    reason: str
    names: list
    values: np.ndarray
    labels: list
    counts: list | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @property
    def n_outputs(self) -> int:
        return len(self.labels)

    def describe(self) -> dict:
        """JSON-friendly summary: classes and their counts, or the targets' statistics."""
        if self.kind == "classification":
            return {"kind": self.kind, "kind_reason": self.reason, "classes": self.labels,
                    "class_counts": self.counts}
        return {"kind": self.kind, "kind_reason": self.reason, "targets": self.names, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "min": self.values.min(axis=0).tolist(),
                "max": self.values.max(axis=0).tolist()}


def prepare_target(columns: dict, kind: str = "auto", *, n: int) -> Target:
    """Check target columns and turn them into a :class:`Target`.

    Args:
        columns: name -> (N,) values (pandas Series or array-like), in order.
        kind: ``"auto"``, ``"classification"`` or ``"regression"``.
        n: the number of points (each column must have as many values).

    Raises:
        InputError: a missing value, mixed text and numbers, one class only or more than :data:`MAX_CLASSES`,
            non-integer numbers as classes, text as a regression target, a constant or non-finite target.
    """
    check_choice("kind", kind, KINDS)
    if not columns:
        raise InputError("target: no target column given")
    typed = {name: _column(name, values, n) for name, values in columns.items()}
    names = list(typed)
    if len(names) > 1:
        if kind == "classification":
            raise InputError(f"target: classification takes one target column, got {len(names)} ({names})")
        return _regression(typed, "several target columns: a multi-output regression" if kind == "auto"
                           else "requested")
    name = names[0]
    dtype, arr = typed[name]
    if kind == "auto":
        if dtype in ("text", "bool"):
            kind, reason = "classification", f"the column holds {'text' if dtype == 'text' else 'true / false'}"
        elif dtype == "int" and len(np.unique(arr)) <= AUTO_MAX_INT_CLASSES:
            kind, reason = "classification", (f"integers with at most {AUTO_MAX_INT_CLASSES} distinct values "
                                               "(pass kind='regression' to treat them as numbers)")
        else:
            kind, reason = "regression", ("integers with more than " f"{AUTO_MAX_INT_CLASSES} distinct values"
                                          if dtype == "int" else "real numbers (pass kind='classification' for "
                                                                 "integer class codes)")
    else:
        reason = "requested"
    if kind == "regression":
        return _regression(typed, reason)
    return _classification(name, dtype, arr, reason)


def _column(name: str, values, n: int) -> tuple[str, np.ndarray]:
    """(type, values) of one column: ``"text"`` (str array), ``"bool"``, ``"int"`` (int64) or ``"float"``."""
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object)
                                                              if np.asarray(values).dtype.kind in "OUS"
                                                              else np.asarray(values))
    if len(s) != n:
        raise InputError(f"target: column {name!r} has {len(s)} values for {n} points")
    missing = np.array(s.isna(), dtype=bool)  # a writable copy
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        missing |= np.array([isinstance(v, str) and not v.strip() for v in s], dtype=bool)
    if missing.any():
        raise InputError(f"target: column {name!r} has a missing value (NaN, None or empty) at row "
                         f"{int(np.argmax(missing))}; drop or fill those rows first")
    if pd.api.types.is_bool_dtype(s.dtype):
        return "bool", s.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(s.dtype):
        return "int", s.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(s.dtype):
        return "float", s.to_numpy(dtype=np.float64)
    items = s.tolist()
    if all(isinstance(v, str) for v in items):
        return "text", np.array(items, dtype=str)
    if all(isinstance(v, bool | np.bool_) for v in items):
        return "bool", np.array(items, dtype=bool)
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in items):
        arr = np.array(items, dtype=np.float64)
        integral = all(isinstance(v, numbers.Integral) for v in items)
        return ("int", arr.astype(np.int64)) if integral else ("float", arr)
    kinds = sorted({type(v).__name__ for v in items})
    raise InputError(f"target: column {name!r} mixes value types ({', '.join(kinds)}); expected one type")


def _classification(name: str, dtype: str, arr: np.ndarray, reason: str) -> Target:
    if dtype == "float":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"target: column {name!r} holds {arr[i]!r} at row {i}, not a class code; classes are "
                             "text, true / false or integers (use kind='regression' for measured values)")
        arr = arr.astype(np.int64)
    uniq, inv, counts = np.unique(arr, return_inverse=True, return_counts=True)
    if len(uniq) < 2:
        raise InputError(f"target: column {name!r} holds one class only ({uniq[0].item()!r}); classification needs "
                         "at least 2 classes")
    if len(uniq) > MAX_CLASSES:
        raise InputError(f"target: column {name!r} holds {len(uniq)} classes, more than {MAX_CLASSES}; use "
                         "kind='regression' for measured values")
    labels = [u.item() for u in uniq]
    return Target("classification", reason, [name], inv.reshape(-1).astype(np.int64), labels,
                  counts=[int(c) for c in counts])


def _regression(typed: dict, reason: str) -> Target:
    cols = []
    for name, (dtype, arr) in typed.items():
        if dtype in ("text", "bool"):
            raise InputError(f"target: column {name!r} holds {'text' if dtype == 'text' else 'true / false'}; a "
                             "regression needs numbers (use kind='classification' for classes)")
        arr = arr.astype(np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(f"target: column {name!r} holds {arr[int(np.argmax(bad))]!r} at row "
                             f"{int(np.argmax(bad))}; expected finite numbers")
        cols.append(arr)
    values = np.column_stack(cols)  # (N, T)
    mean, std = values.mean(axis=0), values.std(axis=0)
    flat = np.flatnonzero(~(std > 1e-12 * np.maximum(1.0, np.abs(mean))))
    if flat.size:
        name = list(typed)[int(flat[0])]
        raise InputError(f"target: column {name!r} is constant ({mean[flat[0]]:g}); there is nothing to learn")
    names = list(typed)
    return Target("regression", reason, names, values, names, mean=mean, std=std)
