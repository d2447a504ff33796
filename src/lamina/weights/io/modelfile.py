"""Zoo model files: safetensors with a canonical header, so that a rebuilt zoo is byte for byte the same."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from lamina._io import write_bytes_atomic


def model_file_bytes(state: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A model's tensors as safetensors bytes with a canonical header.

    safetensors orders the tensors' data by name but writes its JSON header (and the metadata) in hash-map order,
    which varies from process to process. The header is rewritten with sorted keys and no spaces (padded to 8
    bytes), so the same tensors and metadata always give the same bytes, and the same sha256.
    """
    from safetensors.numpy import save

    tensors = {k: np.ascontiguousarray(state[k], dtype=np.float32) for k in sorted(state)}
    raw = save(tensors, metadata={str(k): str(metadata[k]) for k in sorted(metadata)})
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + raw[8 + n :]


def save_model_file(path: Path, state: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """Write a model's tensors as safetensors atomically (byte-reproducible, see :func:`model_file_bytes`); return
    the file's sha256. On error (e.g. a full disk) nothing is left at ``path``'s temporary name."""
    data = model_file_bytes(state, metadata)
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:  # name the file being written (a failed write() names none, or a temporary one)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    return hashlib.sha256(data).hexdigest()


def load_model_state(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a zoo model file (no checks: see :func:`lamina.weights.layers.read_state` for user files)."""
    from safetensors.numpy import load_file

    return load_file(str(path))
