"""Atomic file writing and self-describing checkpoints (shared by all parts).

A lamina checkpoint is a directory holding two files:

- ``model.safetensors``: the tensors;
- ``config.json``: ``{"format", "format_version", "kind", "lamina_version", "sha256", "config", "metadata"}``,
  where ``config`` rebuilds the model, ``metadata`` states provenance and the input contract, and ``sha256`` is the
  digest of ``model.safetensors`` (checked on load, so a corrupt or swapped file is refused).

Writers never leave a half-written file or directory behind: they write to a temporary sibling and rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lamina.errors import CheckpointError

FORMAT = "lamina-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps the suffix of ``path`` (writers such as pyarrow or matplotlib infer the format
    from it). On error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (fsync before rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, dumps_json(obj))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(t)


def save_checkpoint(
    directory: str | os.PathLike,
    tensors: Mapping[str, Any],
    *,
    kind: str,
    config: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (replacing an existing one only once the new one is complete).

    Args:
        directory: target directory.
        tensors: name -> torch tensor or NumPy array.
        kind: what the checkpoint holds, e.g. ``"geo.ClimateEncoder"``; checked on load.
        config: JSON-serialisable dict that rebuilds the model.
        metadata: JSON-serialisable provenance and input contract.
    """
    from safetensors.numpy import save_file

    from lamina import __version__

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        arrays = {k: _to_numpy(v) for k, v in tensors.items()}
        save_file(arrays, str(tmp / WEIGHTS_FILE))
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "lamina_version": __version__,
            "sha256": sha256_file(tmp / WEIGHTS_FILE),
            "config": dict(config),
            "metadata": dict(metadata or {}),
        }
        (tmp / CONFIG_FILE).write_text(dumps_json(doc))
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_checkpoint_config(directory: str | os.PathLike, *, kind: str | None = None) -> dict:
    """Read and check ``config.json`` of a checkpoint directory (no tensors are loaded)."""
    directory = Path(directory)
    if directory.is_file() and directory.name in (WEIGHTS_FILE, CONFIG_FILE):
        directory = directory.parent
    cfg_path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint: {directory} is not a directory (expected {CONFIG_FILE} + {WEIGHTS_FILE})")
    if not cfg_path.is_file():
        raise CheckpointError(f"checkpoint: {cfg_path} is missing; is {directory} a lamina checkpoint?")
    try:
        doc = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint: {cfg_path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {cfg_path} is not a lamina checkpoint (no format={FORMAT!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint: {cfg_path} has format_version {doc.get('format_version')!r}; "
            f"this lamina reads version {FORMAT_VERSION}"
        )
    if kind is not None and doc.get("kind") != kind:
        raise CheckpointError(f"checkpoint: {directory} holds a {doc.get('kind')!r}, expected a {kind!r}")
    return doc


def load_checkpoint(directory: str | os.PathLike, *, kind: str | None = None, verify: bool = True):
    """Load a checkpoint directory written by :func:`save_checkpoint`.

    Returns:
        ``(tensors, doc)``: name -> torch tensor, and the parsed ``config.json``.

    Raises:
        CheckpointError: missing files, another kind or format version, a sha256 mismatch, unreadable tensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    if directory.is_file() and directory.name in (WEIGHTS_FILE, CONFIG_FILE):
        directory = directory.parent
    doc = read_checkpoint_config(directory, kind=kind)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint: {weights} is missing")
    if verify and sha256_file(weights) != doc.get("sha256"):
        raise CheckpointError(f"checkpoint: {weights} does not match the sha256 in {CONFIG_FILE} (corrupt or replaced)")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint: cannot read {weights} ({exc})") from None
    return tensors, doc
