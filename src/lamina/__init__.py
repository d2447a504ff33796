"""lamina: learned representations read out by a single layer.

Three parts share one idea:

- :mod:`lamina.geo` -- climate implicit embeddings: ``(lon, lat, month) -> embedding`` anywhere on Earth.
- :mod:`lamina.weights` -- learning on model weights (ProbeX): what a model was trained on, from one layer.
- :mod:`lamina.seq` -- single-layer transformers as universal approximators, constructed and trained.

The parts are imported lazily so that ``import lamina`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lamina.errors import CheckpointError, InputError, LaminaError

__version__ = "0.1.0"

__all__ = ["CheckpointError", "InputError", "LaminaError", "__version__", "geo", "nn", "probe", "seq", "weights"]

_SUBMODULES = {"geo", "nn", "probe", "seq", "weights"}

if TYPE_CHECKING:  # pragma: no cover
    from lamina import geo, nn, probe, seq, weights


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"lamina.{name}")
    raise AttributeError(f"module 'lamina' has no attribute {name!r}")
