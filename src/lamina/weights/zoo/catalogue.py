"""The catalogue of a zoo: one SQLite file listing roots and models with their metadata.

Tables: ``meta(key, value)`` (JSON values: the zoo config, the vocabulary, the trained probe's folder),
``roots(name, ...)`` and ``models(id, tree, parent, arch, categories, hparams, accuracy, path, sha256, seconds)``.
Paths are stored relative to the zoo folder, so a zoo can be moved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from lamina.errors import CheckpointError, InputError
from lamina.weights.io.readers import model_digest, model_name, read_model

CATALOGUE = "catalogue.sqlite"
logger = logging.getLogger(__name__)
BUSY_TIMEOUT = 60.0  # seconds a write waits for another process's lock before "database is locked"

# SQLite result codes that are conditions of the machine, not of the file (Python >= 3.11: exc.sqlite_errorname).
_CONDITIONS = {
    "SQLITE_FULL": "the disk is full; free space and rerun: the build resumes",
    "SQLITE_BUSY": "in use by another process (another build or training on this zoo?); wait for it to finish or "
                   "use another folder",
    "SQLITE_LOCKED": "in use by another process (another build or training on this zoo?); wait for it to finish "
                     "or use another folder",
    "SQLITE_READONLY": "cannot be written (read-only file or folder); check its permissions",
    "SQLITE_CANTOPEN": "cannot be opened (missing folder or no permission); check the path and its permissions",
    "SQLITE_IOERR": "input/output error while reading or writing it; check the disk and rerun",
    "SQLITE_NOMEM": "out of memory; free memory and rerun",
}


def sqlite_error(path: Path, exc: sqlite3.Error) -> InputError | CheckpointError:
    """The one-line error for an SQLite failure on the catalogue ``path``.

    Corruption ("malformed", "not a database", a failed integrity check) is a :class:`CheckpointError` that asks for a
    rebuild; a full disk, a lock held by another process and other conditions of the machine are an
    :class:`InputError` that leaves the (healthy) zoo alone.
    """
    name = getattr(exc, "sqlite_errorname", None) or ""  # e.g. SQLITE_IOERR_WRITE: its primary code is SQLITE_IOERR
    condition = _CONDITIONS.get("_".join(name.split("_")[:2]))
    if condition is not None:
        return InputError(f"{path}: {condition} ({exc})")
    return CheckpointError(f"{path}: not a readable zoo catalogue ({exc}); rebuild the zoo or restore the file")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots (
    name TEXT PRIMARY KEY, arch TEXT NOT NULL, parent TEXT, pretrain TEXT NOT NULL,
    accuracy REAL, path TEXT NOT NULL, sha256 TEXT NOT NULL, seconds REAL
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, tree TEXT NOT NULL, parent TEXT NOT NULL, arch TEXT NOT NULL,
    categories TEXT NOT NULL, hparams TEXT NOT NULL, accuracy REAL, path TEXT NOT NULL,
    sha256 TEXT NOT NULL, seconds REAL
);
CREATE INDEX IF NOT EXISTS models_tree ON models(tree);
"""
_TABLES = {"meta", "roots", "models"}


class Catalogue:
    """Thin wrapper over the SQLite catalogue of a zoo folder."""

    def __init__(self, zoo: str | Path, *, create: bool = False):
        self.zoo = Path(zoo)
        path = self.zoo / CATALOGUE
        exists = path.is_file()
        if not create and not exists:
            raise InputError(f"zoo: {self.zoo} has no {CATALOGUE}; build one with `lamina weights zoo build`")
        if exists and path.stat().st_size == 0:
            raise CheckpointError(f"{path}: empty file, not a zoo catalogue (remove it and rebuild the zoo)")
        self.zoo.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._guard():
            self.con = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT)
        try:
            with self._guard():
                if exists:  # an existing file must be an intact catalogue: never add tables to a stranger
                    check = self.con.execute("PRAGMA quick_check").fetchone()
                    if check is None or check[0] != "ok":
                        raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
                    tables = {r[0] for r in self.con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                    if not _TABLES <= tables:
                        raise CheckpointError(f"{path}: not a zoo catalogue (tables {sorted(tables)}, expected "
                                              f"{sorted(_TABLES)})")
                else:
                    self.con.executescript(_SCHEMA)
        except BaseException:
            self.con.close()
            raise

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's errors into one line naming the file: a damaged file is a CheckpointError; a full disk, a
        catalogue in use by another process or an unwritable folder is an InputError that says what to do."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise sqlite_error(self.path, exc) from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{self.path}: a catalogue entry is not valid JSON ({exc})") from None

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # meta
    def set_meta(self, key: str, value) -> None:
        with self._guard(), self.con:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default=None):
        with self._guard():
            row = self.con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return default if row is None else json.loads(row[0])

    # roots
    def add_root(self, row: dict) -> None:
        with self._guard(), self.con:
            self.con.execute(
                "INSERT OR REPLACE INTO roots VALUES (:name, :arch, :parent, :pretrain, :accuracy, :path, :sha256,"
                " :seconds)",
                {**row, "arch": json.dumps(row["arch"])},
            )

    def roots(self) -> dict[str, dict]:
        out = {}
        with self._guard():
            cur = self.con.execute("SELECT name, arch, parent, pretrain, accuracy, path, sha256, seconds FROM roots")
            for name, arch, parent, pretrain, acc, path, sha, sec in cur:
                out[name] = dict(name=name, arch=json.loads(arch), parent=parent, pretrain=pretrain, accuracy=acc,
                                 path=path, sha256=sha, seconds=sec)
        return out

    # models
    def add_models(self, rows: Iterable[dict]) -> None:
        with self._guard(), self.con:
            self.con.executemany(
                "INSERT OR REPLACE INTO models VALUES (:id, :tree, :parent, :arch, :categories, :hparams, :accuracy,"
                " :path, :sha256, :seconds)",
                [
                    {**r, "arch": json.dumps(r["arch"]), "categories": json.dumps(r["categories"]),
                     "hparams": json.dumps(r["hparams"])}
                    for r in rows
                ],
            )

    def model_ids(self) -> set[str]:
        with self._guard():
            return {r[0] for r in self.con.execute("SELECT id FROM models")}

    def models(self, tree: str | None = None) -> list[dict]:
        """All models (optionally of one tree), sorted by id, with parsed JSON fields."""
        q = "SELECT id, tree, parent, arch, categories, hparams, accuracy, path, sha256, seconds FROM models"
        args: tuple = ()
        if tree is not None:
            q += " WHERE tree = ?"
            args = (tree,)
        rows = []
        with self._guard():
            for mid, tr, parent, arch, cats, hp, acc, path, sha, sec in self.con.execute(q + " ORDER BY id", args):
                rows.append(dict(id=mid, tree=tr, parent=parent, arch=json.loads(arch), categories=json.loads(cats),
                                 hparams=json.loads(hp), accuracy=acc, path=path, sha256=sha, seconds=sec))
        return rows

    def remove_models(self, ids: Iterable[str]) -> None:
        """Drop models from the catalogue (their files are left to the caller)."""
        with self._guard(), self.con:
            self.con.executemany("DELETE FROM models WHERE id = ?", [(i,) for i in ids])

    def remove_root(self, name: str) -> None:
        with self._guard(), self.con:
            self.con.execute("DELETE FROM roots WHERE name = ?", (name,))

    def count(self) -> int:
        with self._guard():
            return int(self.con.execute("SELECT COUNT(*) FROM models").fetchone()[0])


def file_problem(zoo: str | Path, row: dict) -> str | None:
    """Why the file of a catalogue row (model or root) cannot be trusted, or None if its bytes match its sha256."""
    path = Path(zoo) / row["path"]
    if not path.exists():
        return f"{path}: missing"
    try:
        digest = model_digest(path)
    except OSError as exc:
        return f"{path}: unreadable ({exc.strerror})"
    if digest != row["sha256"]:
        return f"{path}: sha256 {digest[:12]}... does not match the catalogue's {str(row['sha256'])[:12]}..."
    return None


def verify_files(zoo: str | Path, rows: list[dict]) -> tuple[list[dict], list[tuple[dict, str]]]:
    """Split catalogue rows into those whose file matches its sha256 and the others (with the reason).

    Returns:
        ``(good, bad)``: good rows in their order; ``bad`` as ``(row, message)`` pairs.
    """
    good, bad = [], []
    for row in rows:
        problem = file_problem(zoo, row)
        if problem is None:
            good.append(row)
        else:
            bad.append((row, problem))
    return good, bad


def verify_catalogue(cat: Catalogue, zoo: Path) -> list[str]:
    """On resume, re-check every catalogued file against its sha256; drop the rows that fail (they are rebuilt).

    Returns:
        One message per dropped file (also logged as one warning).
    """
    _, bad_roots = verify_files(zoo, list(cat.roots().values()))
    _, bad_models = verify_files(zoo, cat.models())
    for row, _ in bad_roots:
        cat.remove_root(row["name"])
    cat.remove_models([row["id"] for row, _ in bad_models])
    messages = [m for _, m in bad_roots + bad_models]
    if messages:
        logger.warning("zoo: %d catalogued file(s) failed their sha256 check and are rebuilt: %s", len(messages),
                       "; ".join(messages))
    return messages


def os_message(exc: OSError) -> str:
    """``FILE: reason`` of a failed write (or the reason alone when the error names no file)."""
    return f"{exc.filename}: {exc.strerror}" if exc.filename else (exc.strerror or str(exc))


def write_failed(message: str, cat: Catalogue) -> InputError:
    """The error that stops a build whose file could not be written: what the catalogue holds and how to resume."""
    return InputError(f"out: cannot write {message}; the catalogue lists the {cat.count()} models whose files were "
                      "written completely; free space and run the same command to resume")


USER_TREE = "user"
"""Tree name of catalogued user models when none is given (trees are found from the weights anyway; the name only
labels the trees found)."""


def _check_categories(categories, where: str) -> list[str]:
    if isinstance(categories, str):
        categories = [c for c in categories.split(",")]
    names = [str(c).strip() for c in categories] if isinstance(categories, list | tuple) else []
    if not names or any(not n for n in names):
        raise InputError(f"{where}: categories: expected one or more non-empty names, got {categories!r}")
    if len(set(names)) != len(names):
        raise InputError(f"{where}: categories: {names} repeats a name")
    return names


def add_user_models(zoo: str | os.PathLike, entries: list[dict]) -> dict:
    """Catalogue models that lamina did not build, with the categories each was trained on, so that
    ``lamina weights train`` works on them.

    Args:
        zoo: the catalogue's folder (created when missing). Paths are stored relative to it; the models stay where
            they are.
        entries: ``{"path", "categories": [names] or "a,b", "id" (default: the file or folder name), "tree"
            (default :data:`USER_TREE`)}``. A category new to the catalogue joins its vocabulary, with its name as
            the text prompt that zero-shot search reads.

    Returns:
        ``{"zoo", "added", "unchanged": ids already catalogued with the same path and content, "models": total,
        "categories": vocabulary size}``.

    Raises:
        InputError: a bad entry (nothing is added then): unreadable model, empty or repeated categories, an id used
            by another model.
        CheckpointError: a model file or folder that cannot be read as a model.
    """
    zoo = Path(zoo)
    if not isinstance(entries, list | tuple) or not entries:
        raise InputError("models: expected one or more entries (path and categories)")
    rows, seen_ids = [], set()
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or "path" not in e:
            raise InputError(f"models[{k}]: expected a mapping with 'path' and 'categories', got {e!r}")
        path = Path(e["path"])
        names = _check_categories(e.get("categories"), str(path))
        state = read_model(path)  # a model lamina can read, or a one-line error naming it
        if not state:
            raise InputError(f"{path}: holds no tensors")
        mid = str(e.get("id") or model_name(path))
        if mid in seen_ids:
            raise InputError(f"{path}: id {mid!r} is given twice; pass distinct ids")
        seen_ids.add(mid)
        rows.append({"id": mid, "tree": str(e.get("tree") or USER_TREE), "parent": "", "arch": {"source": "user"},
                     "names": names, "hparams": {}, "accuracy": None,
                     "path": os.path.relpath(path.resolve(), zoo.resolve() if zoo.exists() else zoo.absolute()),
                     "sha256": model_digest(path), "seconds": None})
    with Catalogue(zoo, create=True) as cat:
        have = {m["id"]: m for m in cat.models()}
        unchanged = [r["id"] for r in rows if r["id"] in have and have[r["id"]]["sha256"] == r["sha256"]
                     and have[r["id"]]["path"] == r["path"]]
        clash = [r["id"] for r in rows if r["id"] in have and r["id"] not in unchanged]
        if clash:
            raise InputError(f"id: {clash[0]!r} is already catalogued for another model; pass --id")
        vocab = cat.get_meta("vocabulary", [])
        index = {v["name"]: v["index"] for v in vocab}
        for r in rows:
            for n in r["names"]:
                if n not in index:
                    index[n] = len(vocab)
                    vocab.append({"index": len(vocab), "name": n, "prompt": n})
        new = [r for r in rows if r["id"] not in unchanged]
        for r in new:
            r["categories"] = sorted(index[n] for n in r.pop("names"))
        cat.set_meta("vocabulary", vocab)
        cat.add_models(new)
        return {"zoo": str(zoo), "added": [r["id"] for r in new], "unchanged": unchanged, "models": cat.count(),
                "categories": len(vocab)}
