"""Per-variable normalising transforms: applied before z-scoring in pretraining, inverted in reconstruction.

A checkpoint stores each variable's transform name with its :class:`~lamina.geo.data.grid.Variable` (absent in
checkpoints written before transforms existed: ``"identity"``), and its normalisation mean / std are those of the
*transformed* values. :meth:`ClimateEncoder.reconstruct <lamina.geo.encoder.ClimateEncoder.reconstruct>` undoes
both, so it returns physical units.

=============  ===================================  ==========================================================
name           forward (physical -> model space)    inverse (model space -> physical)
=============  ===================================  ==========================================================
``identity``   ``x``                                ``y``
``log1p``      ``log(1 + max(x, 0))``               ``exp(max(y, 0)) - 1`` (non-negative: precipitation)
``sqrt``       ``sqrt(max(x, 0))``                  ``max(y, 0) ** 2``
=============  ===================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lamina._validation import check_choice

TRANSFORMS = {
    "identity": (lambda x: x, lambda y: y),
    "log1p": (lambda x: np.log1p(np.maximum(x, 0.0)), lambda y: np.expm1(np.maximum(y, 0.0))),
    "sqrt": (lambda x: np.sqrt(np.maximum(x, 0.0)), lambda y: np.square(np.maximum(y, 0.0))),
}


def check_transform(name: str, *, what: str = "transform") -> str:
    return check_choice(what, name, sorted(TRANSFORMS))


def forward(name: str, values: np.ndarray) -> np.ndarray:
    """Physical values -> model space (NaN stays NaN)."""
    return TRANSFORMS[check_transform(name)][0](values)


def inverse(name: str, values: np.ndarray) -> np.ndarray:
    """Model space -> physical values."""
    return TRANSFORMS[check_transform(name)][1](values)


def _columns(names: Sequence[str], values: np.ndarray, which: int) -> np.ndarray:
    """Apply each column's transform (``which``: 0 forward, 1 inverse); a copy only when needed."""
    if all(n == "identity" for n in names):
        return values
    out = np.array(values, copy=True)
    for j, n in enumerate(names):
        if n != "identity":
            out[:, j] = TRANSFORMS[check_transform(n)][which](out[:, j])
    return out


def forward_columns(names: Sequence[str], values: np.ndarray) -> np.ndarray:
    """(N, V) physical -> (N, V) model space, column ``j`` by ``names[j]`` (a copy only when needed)."""
    return _columns(names, values, 0)


def inverse_columns(names: Sequence[str], values: np.ndarray) -> np.ndarray:
    """(N, V) model space -> (N, V) physical, column ``j`` by ``names[j]``."""
    return _columns(names, values, 1)
