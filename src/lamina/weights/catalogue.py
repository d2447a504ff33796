"""The catalogue of a zoo: one SQLite file listing roots and models with their metadata.

Tables: ``meta(key, value)`` (JSON values: the zoo config, the vocabulary, the trained probe's folder),
``roots(name, ...)`` and ``models(id, tree, parent, arch, categories, hparams, accuracy, path, sha256, seconds)``.
Paths are stored relative to the zoo folder, so a zoo can be moved.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from lamina.errors import InputError

CATALOGUE = "catalogue.sqlite"

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


class Catalogue:
    """Thin wrapper over the SQLite catalogue of a zoo folder."""

    def __init__(self, zoo: str | Path, *, create: bool = False):
        self.zoo = Path(zoo)
        path = self.zoo / CATALOGUE
        if not create and not path.is_file():
            raise InputError(f"zoo: {self.zoo} has no {CATALOGUE}; build one with `lamina weights zoo build`")
        self.zoo.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.con = sqlite3.connect(str(path), timeout=60)
        self.con.executescript(_SCHEMA)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # meta
    def set_meta(self, key: str, value) -> None:
        with self.con:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default=None):
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # roots
    def add_root(self, row: dict) -> None:
        with self.con:
            self.con.execute(
                "INSERT OR REPLACE INTO roots VALUES (:name, :arch, :parent, :pretrain, :accuracy, :path, :sha256,"
                " :seconds)",
                {**row, "arch": json.dumps(row["arch"])},
            )

    def roots(self) -> dict[str, dict]:
        cur = self.con.execute("SELECT name, arch, parent, pretrain, accuracy, path, sha256, seconds FROM roots")
        out = {}
        for name, arch, parent, pretrain, acc, path, sha, sec in cur:
            out[name] = dict(name=name, arch=json.loads(arch), parent=parent, pretrain=pretrain, accuracy=acc,
                             path=path, sha256=sha, seconds=sec)
        return out

    # models
    def add_models(self, rows: Iterable[dict]) -> None:
        with self.con:
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
        return {r[0] for r in self.con.execute("SELECT id FROM models")}

    def models(self, tree: str | None = None) -> list[dict]:
        """All models (optionally of one tree), sorted by id, with parsed JSON fields."""
        q = "SELECT id, tree, parent, arch, categories, hparams, accuracy, path, sha256, seconds FROM models"
        args: tuple = ()
        if tree is not None:
            q += " WHERE tree = ?"
            args = (tree,)
        rows = []
        for mid, tr, parent, arch, cats, hp, acc, path, sha, sec in self.con.execute(q + " ORDER BY id", args):
            rows.append(dict(id=mid, tree=tr, parent=parent, arch=json.loads(arch), categories=json.loads(cats),
                             hparams=json.loads(hp), accuracy=acc, path=path, sha256=sha, seconds=sec))
        return rows

    def count(self) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM models").fetchone()[0])
