"""Reading one layer's weights out of model files, as the 2-D matrix a probe reads.

Reshape rules (ProbeX reads a matrix X of shape (d_H, d_W) and probes its d_W side):

- linear weight, torch layout (out, in): kept, ``(out, in)``;
- convolution kernel (C_out, C_in, k...): ``(C_in * prod(k), C_out)`` (each output channel is a column);
- attention ``in_proj_weight`` (3E, E): the query, key and value blocks side by side, ``(E, 3E)``;
- LoRA pair ``NAME.lora_A`` (r, in) and ``NAME.lora_B`` (out, r): the full update ``B @ A``, ``(out, in)``;
- a 1-D tensor (bias, norm scale): ``(1, n)``.

A layer is named by its tensor key without the ``.weight`` suffix or with it (``fc1`` or ``fc1.weight``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from lamina.errors import CheckpointError, InputError
from lamina.weights.io.readers import read_model

logger = logging.getLogger(__name__)

HEAD_PREFIXES = ("head.", "classifier.", "score.")
"""Key prefixes of a classification head (lamina's zoos: ``head``; Hugging Face sequence classifiers:
``classifier`` or ``score``). A head differs in shape from model to model (one row per class) and is no part of
the body that trees and probes read."""


def is_head(key: str) -> bool:
    """Whether a tensor name belongs to a classification head (see :data:`HEAD_PREFIXES`)."""
    return key.startswith(HEAD_PREFIXES)


def reshape_weight(w: np.ndarray, kind: str | None = None) -> np.ndarray:
    """Apply the reshape rule for a weight tensor.

    Args:
        w: the tensor as stored (torch layout).
        kind: ``"linear"``, ``"conv"``, ``"attention"``, ``"vector"``; ``None`` infers it from ``w.ndim``
            (2-D: linear, 3-D to 5-D: conv, 1-D: vector).

    Returns:
        (d_H, d_W) float32 matrix.
    """
    w = np.asarray(w, dtype=np.float32)
    if kind is None:
        kind = {1: "vector", 2: "linear"}.get(w.ndim, "conv" if 3 <= w.ndim <= 5 else "?")
    if kind == "vector" and w.ndim == 1:
        return w[None, :]
    if kind == "linear" and w.ndim == 2:
        return w
    if kind == "conv" and 3 <= w.ndim <= 5:
        return np.ascontiguousarray(w.reshape(w.shape[0], -1).T)  # (C_in * k, C_out)
    if kind == "attention" and w.ndim == 2 and w.shape[0] == 3 * w.shape[1]:
        e = w.shape[1]
        return np.ascontiguousarray(np.concatenate([w[:e].T, w[e : 2 * e].T, w[2 * e :].T], axis=1))  # (E, 3E)
    raise InputError(f"weight: cannot reshape a tensor of shape {w.shape} as a {kind!r} layer")


def lora_delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The full weight update ``B @ A`` of a LoRA pair: A (r, in), B (out, r) -> (out, in)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.ndim != 2 or b.ndim != 2 or b.shape[1] != a.shape[0]:
        raise InputError(f"lora: A {a.shape} and B {b.shape} do not chain (B @ A needs B's columns = A's rows)")
    return b @ a


def _key(layer: str) -> str:
    return layer[: -len(".weight")] if layer.endswith(".weight") else layer


def layer_from_state(state, layer: str, *, source: str = "model") -> np.ndarray:
    """Extract and reshape a layer from a mapping name -> tensor (a loaded safetensors file).

    Raises:
        InputError: the layer is missing (the message names ``source`` and lists the layers there).
    """
    base = _key(layer)
    keys = list(state.keys())
    if f"{base}.lora_A" in keys and f"{base}.lora_B" in keys:
        return lora_delta(state[f"{base}.lora_A"], state[f"{base}.lora_B"])
    for k in (f"{base}.weight", base, f"{base}.in_proj_weight"):
        if k in keys:
            kind = "attention" if k.endswith("in_proj_weight") else None
            return reshape_weight(np.asarray(state[k]), kind)
    have = sorted({_key(k) for k in keys if k.endswith("weight") or "lora_" in k})
    raise InputError(f"{source}: has no layer {layer!r} (layers: {', '.join(have)})")


def read_layer(path: str | os.PathLike, layer: str) -> np.ndarray:
    """Read one layer of a model (file or folder, any format of :mod:`lamina.weights.io.readers`) as its
    (d_H, d_W) matrix; only that layer's tensors are read.

    Raises:
        CheckpointError: the path is missing, unreadable or of no known model format.
        InputError: the model has no such layer (the message lists the layers it has).
    """
    base = _key(layer)
    wanted = {f"{base}.weight", base, f"{base}.in_proj_weight", f"{base}.lora_A", f"{base}.lora_B"}
    state = read_model(path, wanted.__contains__)
    if not state:  # name what the model does have
        state = {k: np.zeros(0) for k in read_model(path)}
    return layer_from_state(state, layer, source=str(path))


def read_state(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a model (file or folder, any format of :mod:`lamina.weights.io.readers`), by normalised name.

    Raises:
        CheckpointError: the path is missing, unreadable or of no known model format.
    """
    return read_model(path)


def load_layers(paths: list[Path], layer: str, *, warn: bool = True) -> tuple[np.ndarray, list[int], list[str]]:
    """Read one layer from many model files, skipping (and reporting) broken ones.

    Args:
        paths: model files.
        layer: layer name.
        warn: log one warning per skipped file.

    Returns:
        ``(X, kept, skipped)``: X (N_kept, d_H, d_W) float32; indices into ``paths`` that were read; one message
        per skipped file. A file whose layer has another shape than the first readable one is skipped too.
    """
    mats, kept, skipped = [], [], []
    shape = None
    for i, p in enumerate(paths):
        try:
            m = read_layer(p, layer)
            if shape is None:
                shape = m.shape
            elif m.shape != shape:
                raise InputError(f"{p}: layer {layer!r} has shape {m.shape}, the others {shape}")
            if not np.all(np.isfinite(m)):
                raise InputError(f"{p}: layer {layer!r} holds NaN or infinite values")
        except (CheckpointError, InputError) as exc:
            skipped.append(str(exc))
            if warn:
                logger.warning("skipped %s", exc)
            continue
        mats.append(m)
        kept.append(i)
    if not mats:
        return np.zeros((0, 0, 0), np.float32), kept, skipped
    return np.stack(mats), kept, skipped
