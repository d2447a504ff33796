"""Atomic file writing and self-describing checkpoints (shared by all parts).

A lamina checkpoint is a directory holding two files:

- ``model.safetensors``: the tensors;
- ``config.json``: ``{"format", "format_version", "kind", "lamina_version", "sha256", "config", "metadata"}``,
  where ``config`` rebuilds the model, ``metadata`` states provenance and the input contract, and ``sha256`` is the
  digest of ``model.safetensors`` (checked on load, so a corrupt or swapped file is refused). ``content_sha256``
  is the digest of ``kind``, ``config`` and ``metadata`` (canonical JSON), checked on load too: an edited
  architecture field, normalisation or variable list is refused, not loaded silently. Checkpoints written before
  that field existed (without it) still load.

Writers never leave a half-written file or directory behind: they write to a temporary sibling and rename.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lamina.errors import CheckpointError, InputError

FORMAT = "lamina-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


TMP_MARK = "~lamina-"  # temporaries are named .{target}.~lamina-{pid}-{token}{suffix}


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot be checked): leave its files alone
    return True


def clean_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of earlier, interrupted atomic writes of ``path`` (files or folders).

    A temporary is stale when the process that created it is gone (``kill -9``, power loss); temporaries of
    live processes (another writer of the same target) are kept. Names written by lamina before 0.2
    (``.{name}.XXXXXXXX{suffix}``, ``.{name}.old-{pid}``) are recognised too. Returns what was removed.
    """
    path = Path(path)
    parent, name = path.parent, path.name
    if not parent.is_dir():
        return []
    ours = re.compile(re.escape(f".{name}.{TMP_MARK}") + r"(\d+)-")
    legacy = re.compile(re.escape(f".{name}.") + r"(?:[a-z0-9_]{8}" + re.escape(path.suffix) + r"|old-(\d+))$")
    removed = []
    for entry in parent.iterdir():
        if not entry.name.startswith(f".{name}."):
            continue
        m = ours.match(entry.name)
        if m is None:
            m = legacy.match(entry.name)
            if m is None:
                continue
        pid = m.group(1)
        if pid is not None and _pid_alive(int(pid)):
            continue
        if pid is None and time.time() - entry.stat().st_mtime < 3600:
            continue  # legacy random name without a pid: only remove once clearly abandoned
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


def _fsync(path: Path) -> None:
    """Flush a file or folder (its entries) to disk; a no-op where the OS cannot open folders (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_name(path: Path, suffix: str = "") -> Path:
    return path.with_name(f".{path.name}.{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps the suffix of ``path`` (writers such as pyarrow or matplotlib infer the format
    from it) and gets the permissions of a new file under the process umask. Temporaries that interrupted
    earlier runs left behind for the same target are removed first. On error the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    tmp_path = _temporary_name(path, suffix if suffix is not None else path.suffix)
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode filtered by the umask
    os.close(fd)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if exc.errno is not None and exc.filename is not None and Path(exc.filename) == tmp_path:
            # name the user's file, not the hidden temporary (".x.parquet.~lamina-...: No space left on device")
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


LOW_SPACE = 64 << 20
"""Bytes: a library's failed write (GDAL, OGR) with less than this much free space beside the file is taken for a
full disk (they report "Write error" or a failed ROLLBACK, not ENOSPC)."""


def write_failure(path: str | os.PathLike, exc: BaseException) -> Exception:
    """The error to raise for a library's failed write of ``path``: ``OSError(ENOSPC)`` naming it when the disk
    is (nearly) full, else a one-line :class:`~lamina.errors.InputError` with the library's first line."""
    path = Path(path)
    where = path.parent if path.parent.exists() else Path.cwd()
    if shutil.disk_usage(where).free < LOW_SPACE:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return InputError(f"output: writing {path} failed ({first})")


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


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats replaced by None (JSON has no NaN; ``null`` is what readers accept)."""
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps_json(obj: Any) -> str:
    """Strict JSON text (NaN and infinities written as ``null``), indented, ending in a newline."""
    return json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n"


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


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL, errno.EPERM):  # kernel or file system without the flag
            return False
        raise OSError(err, os.strerror(err), str(b))
    return True


@contextlib.contextmanager
def atomic_dir(directory: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a new temporary folder next to ``directory``; publish it as ``directory`` if the block succeeds.

    Everything written into the folder is fsynced, then the folder replaces ``directory`` as a whole: swapped
    in one atomic step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, the old folder put back
    if the second fails). A reader sees the old folder or the new one, never a mix. On error the temporary
    folder is removed and ``directory`` is left as it was.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(directory)
    tmp = _temporary_name(directory, suffix)
    os.mkdir(tmp, 0o777)  # permissions from the umask
    try:
        yield tmp
        for root, _dirs, files in os.walk(tmp, topdown=False):  # on disk before the folder is published
            for name in files:
                _fsync(Path(root) / name)
            _fsync(Path(root))
        if directory.is_dir() and not directory.is_symlink() and _exchange(tmp, directory):
            _fsync(directory.parent)
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
        elif directory.exists():
            old = _temporary_name(directory, ".old")
            os.replace(directory, old)
            try:
                os.replace(tmp, directory)
            except BaseException:
                os.replace(old, directory)  # put the old folder back rather than leave it under a temp name
                raise
            _fsync(directory.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
            _fsync(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_checkpoint(
    directory: str | os.PathLike,
    tensors: Mapping[str, Any],
    *,
    kind: str,
    config: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically, replacing an existing one as a whole.

    The new checkpoint is written complete into a temporary sibling folder, then swapped with the old one in one
    atomic step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, which readers bridge by
    retrying). A reader therefore sees either the old or the new checkpoint, never a mix of their files. The file
    bytes depend only on the tensors, config and metadata (tensors are written in name order).

    Args:
        directory: target directory.
        tensors: name -> torch tensor or NumPy array.
        kind: what the checkpoint holds, e.g. ``"geo.ClimateEncoder"``; checked on load.
        config: JSON-serialisable dict that rebuilds the model.
        metadata: JSON-serialisable provenance and input contract.
    """
    with atomic_dir(directory) as tmp:
        write_checkpoint_files(tmp, tensors, kind=kind, config=config, metadata=metadata)
    return directory


def write_checkpoint_files(
    folder: str | os.PathLike,
    tensors: Mapping[str, Any],
    *,
    kind: str,
    config: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> dict:
    """Write a checkpoint's two files into an existing ``folder`` that is not yet visible to readers.

    The building block of :func:`save_checkpoint`, for writers that publish a larger folder atomically
    themselves (:func:`atomic_dir`), with the checkpoint's files at its top level. Returns the ``config.json``
    document as written (with its ``sha256`` and ``content_sha256``).
    """
    from safetensors.numpy import save_file

    from lamina import __version__

    folder = Path(folder)
    arrays = {k: _to_numpy(tensors[k]) for k in sorted(tensors)}
    save_file(arrays, str(folder / WEIGHTS_FILE))
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "lamina_version": __version__,
        "sha256": sha256_file(folder / WEIGHTS_FILE),
        "config": dict(config),
        "metadata": dict(metadata or {}),
    }
    doc["content_sha256"] = content_sha256(json.loads(dumps_json(doc)))  # as it will read back
    (folder / CONFIG_FILE).write_text(dumps_json(doc))
    return json.loads(dumps_json(doc))


def content_sha256(doc: dict) -> str:
    """Digest of a checkpoint document's ``kind``, ``config`` and ``metadata`` (canonical JSON: sorted keys)."""
    part = {k: doc.get(k) for k in ("kind", "config", "metadata")}
    return hashlib.sha256(json.dumps(part, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _parse_config(text: bytes, where: Path, kind: str | None) -> dict:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint: {where} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {where} is not a lamina checkpoint (no format={FORMAT!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint: {where} has format_version {doc.get('format_version')!r}; "
            f"this lamina reads version {FORMAT_VERSION}"
        )
    if kind is not None and doc.get("kind") != kind:
        raise CheckpointError(f"checkpoint: {where.parent} holds a {doc.get('kind')!r}, expected a {kind!r}")
    if "content_sha256" in doc and doc["content_sha256"] != content_sha256(doc):
        raise CheckpointError(f"checkpoint: {where} was changed after it was written (its content_sha256 does not "
                              "match its config and metadata); restore the file or save the checkpoint again")
    return doc


def _checkpoint_dir(directory: str | os.PathLike) -> Path:
    if not isinstance(directory, str | os.PathLike):
        raise CheckpointError(f"checkpoint: expected a path to a checkpoint folder, got {type(directory).__name__} "
                              f"{directory!r}")
    directory = Path(directory)
    if directory.is_file() and directory.name in (WEIGHTS_FILE, CONFIG_FILE):
        directory = directory.parent
    return directory


def _read_consistent(directory: Path, names: tuple[str, ...], patience_s: float = 5.0) -> list[bytes | None]:
    """Read files of one checkpoint folder as one consistent snapshot (None for a file that is missing).

    The folder is opened once and its files are read relative to that handle, so a concurrent
    :func:`save_checkpoint` (which swaps whole folders) cannot mix an old config with new weights; if the folder
    was replaced and removed mid-read, the read starts again.
    """
    deadline = time.monotonic() + patience_s
    attempt = 0
    while True:
        attempt += 1
        more = time.monotonic() < deadline  # retries are bounded by time: a loaded machine may need several
        try:
            dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            if more and _being_replaced(directory):
                time.sleep(min(0.2, 0.005 * attempt))
                continue
            raise CheckpointError(f"checkpoint: {directory} is not a directory (expected {CONFIG_FILE} + "
                                  f"{WEIGHTS_FILE})") from None
        except NotADirectoryError:
            raise CheckpointError(f"checkpoint: {directory} is not a directory (expected {CONFIG_FILE} + "
                                  f"{WEIGHTS_FILE})") from None
        try:
            out: list[bytes | None] = []
            for name in names:
                try:
                    with open(name, "rb", opener=lambda p, flags, d=dfd: os.open(p, flags, dir_fd=d)) as fh:
                        out.append(fh.read())
                except FileNotFoundError:
                    out.append(None)
                except IsADirectoryError:
                    raise CheckpointError(f"checkpoint: {directory / name} is a folder, not a file") from None
            swapped = not os.path.samestat(os.fstat(dfd), _stat_or_none(directory))
            if None in out and swapped:
                if more:
                    continue  # the folder was swapped (and the old one removed) while we read: read the new one
                raise CheckpointError(f"checkpoint: {directory} kept changing while it was read; try again")
            return out
        finally:
            os.close(dfd)


def _required(data: bytes | None, directory: Path, name: str) -> bytes:
    if data is None:
        hint = f"; is {directory} a lamina checkpoint?" if name == CONFIG_FILE else ""
        raise CheckpointError(f"checkpoint: {directory / name} is missing{hint}")
    return data


def _stat_or_none(path: Path):
    try:
        return os.stat(path)
    except OSError:
        return os.stat_result((0,) * 10)


def _being_replaced(directory: Path) -> bool:
    parent = directory.parent
    return parent.is_dir() and any(p.name.startswith(f".{directory.name}.{TMP_MARK}") for p in parent.iterdir())


def read_checkpoint_config(directory: str | os.PathLike, *, kind: str | None = None) -> dict:
    """Read and check ``config.json`` of a checkpoint directory (no tensors are loaded)."""
    directory = _checkpoint_dir(directory)
    (text,) = _read_consistent(directory, (CONFIG_FILE,))
    return _parse_config(_required(text, directory, CONFIG_FILE), directory / CONFIG_FILE, kind)


def load_checkpoint(directory: str | os.PathLike, *, kind: str | None = None, verify: bool = True):
    """Load a checkpoint directory written by :func:`save_checkpoint`.

    Returns:
        ``(tensors, doc)``: name -> torch tensor, and the parsed ``config.json``.

    Raises:
        CheckpointError: missing files, another kind or format version, a sha256 mismatch, unreadable tensors,
            tensors holding NaN or infinite values.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    directory = _checkpoint_dir(directory)
    text, data = _read_consistent(directory, (CONFIG_FILE, WEIGHTS_FILE))
    doc = _parse_config(_required(text, directory, CONFIG_FILE), directory / CONFIG_FILE, kind)
    weights = directory / WEIGHTS_FILE
    data = _required(data, directory, WEIGHTS_FILE)
    if verify and hashlib.sha256(data).hexdigest() != doc.get("sha256"):
        raise CheckpointError(f"checkpoint: {weights} does not match the sha256 in {CONFIG_FILE} (corrupt or replaced)")
    try:
        tensors = load_bytes(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint: cannot read {weights} ({exc})") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(t.isfinite().all()):
            raise CheckpointError(f"checkpoint: {weights} holds NaN or infinite values in tensor {name!r}; "
                                  "refusing to use it")
    return tensors, doc
