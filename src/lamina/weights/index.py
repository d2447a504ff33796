"""A compact search index on disk, to which new models are appended without re-reading the others.

One file (safetensors) holds, row by row for N models:

- ``probs`` (N, C) float16: predicted probability of every category (what ``search --like`` compares);
- ``z`` (N, W) float16: the tree's text readout features (what a text query is scored against), zero-padded to
  the widest tree;
- ``tree`` (N,) uint16: the model's tree, an index into the tree names;
- ``ids`` (bytes) uint8: the model ids, UTF-8, one per line, in row order.

Ids and rows live in the same file, so they cannot disagree; the header records the format, the probe (its path
and the sha256 of its weights: an index is only read with the probe that built it) and the category names. Every
write (build or append) goes to a temporary file renamed over the old one: a crash leaves the previous index
whole. Appending reads the old rows as they are (no model file is read again) and predicts only the new models.
About 2 (C + W) + 3 bytes per model plus its id: 330 bytes for the benchmark zoo's 120 categories.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from lamina._io import write_bytes_atomic
from lamina.errors import CheckpointError, InputError
from lamina.weights.predict import Source, iter_predictions

INDEX_FORMAT = "lamina-model-index"
INDEX_VERSION = 1


def _check_ids(ids: list[str]) -> None:
    for i in ids:
        if not isinstance(i, str) or not i or "\n" in i:
            raise InputError(f"id: expected a non-empty single-line text, got {i!r}")
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise InputError(f"id: {', '.join(dup)} given more than once")


class ModelIndex:
    """The rows of a search index (see the module docstring); build with :func:`build_index`.

    Attributes:
        ids: N model ids; tree_names: sorted tree names; tree_codes: (N,) uint16 index into tree_names;
        probs: (N, C) float16; z: (N, W) float16; categories: C names; probe: ``{"path", "sha256"}``.
    """

    def __init__(self, ids, tree_names, tree_codes, probs, z, *, categories, probe: dict):
        self.ids = list(ids)
        self.tree_names = list(tree_names)
        self.tree_codes = np.asarray(tree_codes, np.uint16)
        self.probs = np.asarray(probs, np.float16)
        self.z = np.asarray(z, np.float16)
        self.categories = list(categories)
        self.probe = dict(probe)
        n = len(self.ids)
        if (self.tree_codes.shape != (n,) or self.probs.shape != (n, len(self.categories)) or self.z.ndim != 2
                or len(self.z) != n or (n and int(self.tree_codes.max()) >= len(self.tree_names))):
            raise CheckpointError(f"index: {n} ids but rows of shapes {self.tree_codes.shape}, {self.probs.shape}, "
                                  f"{self.z.shape} and {len(self.tree_names)} tree names")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def trees(self) -> list[str]:
        """Tree name per row."""
        return [self.tree_names[c] for c in self.tree_codes]

    # ------------------------------------------------------------------------------------------------ rows
    @classmethod
    def from_mixture(cls, mix) -> ModelIndex:
        """The index a probe carries in its checkpoint (the zoo it was trained on), as a :class:`ModelIndex`."""
        names = sorted(set(mix.index_trees_))
        z = np.pad(mix.index_z_, ((0, 0), (0, _width(mix) - mix.index_z_.shape[1])))
        return cls(mix.index_ids_, names, [names.index(t) for t in mix.index_trees_], mix.index_probs_, z,
                   categories=mix.categories_, probe=_probe_of(mix))

    def append(self, other: ModelIndex) -> ModelIndex:
        """This index followed by ``other``'s rows (same probe; no id may be in both)."""
        if other.probe["sha256"] != self.probe["sha256"] or other.categories != self.categories:
            raise InputError("index: the new rows come from another probe; rebuild the index with "
                             "`lamina weights index build`")
        _check_ids(self.ids + other.ids)
        names = sorted(set(self.tree_names) | set(other.tree_names))
        recode = [np.array([names.index(t) for t in ix.tree_names] or [0], np.uint16) for ix in (self, other)]
        width = max(self.z.shape[1], other.z.shape[1])
        z = [np.pad(ix.z, ((0, 0), (0, width - ix.z.shape[1]))) for ix in (self, other)]
        return ModelIndex(self.ids + other.ids, names,
                          np.concatenate([recode[0][self.tree_codes], recode[1][other.tree_codes]]),
                          np.concatenate([self.probs, other.probs]), np.concatenate(z),
                          categories=self.categories, probe=self.probe)

    def check_probe(self, mix, source: str = "index") -> None:
        """InputError unless ``mix`` is the probe this index was built with."""
        sha = getattr(mix, "sha256_", None)
        if sha != self.probe["sha256"]:
            raise InputError(f"{source}: built with another probe ({self.probe['path']}); use that probe or rebuild "
                             "the index with `lamina weights index build`")

    # ------------------------------------------------------------------------------------------------ storage
    def to_bytes(self) -> bytes:
        from safetensors.numpy import save

        tensors = {"probs": self.probs, "z": self.z, "tree": self.tree_codes,
                   "ids": np.frombuffer("\n".join(self.ids).encode("utf-8"), np.uint8)}
        meta = {"format": INDEX_FORMAT, "format_version": str(INDEX_VERSION), "count": str(len(self)),
                "probe": json.dumps(self.probe), "trees": json.dumps(self.tree_names),
                "categories": json.dumps(self.categories)}
        return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=meta)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index atomically (a temporary file renamed over ``path``)."""
        return write_bytes_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelIndex:
        """Read an index file (CheckpointError naming it if it is missing, damaged or not an index)."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise InputError(f"index: {path} does not exist; build one with `lamina weights index build`")
        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                if meta.get("format") != INDEX_FORMAT:
                    raise CheckpointError(f"{path}: not a lamina model index")
                if meta.get("format_version") != str(INDEX_VERSION):
                    raise CheckpointError(f"{path}: index format version {meta.get('format_version')}, this lamina "
                                          f"reads {INDEX_VERSION}; rebuild it with `lamina weights index build`")
                t = {k: fh.get_tensor(k) for k in ("probs", "z", "tree", "ids")}
            raw = t["ids"].tobytes().decode("utf-8")
            ids = raw.split("\n") if raw else []
            if len(ids) != int(meta["count"]):
                raise CheckpointError(f"{path}: {len(ids)} ids for {meta['count']} rows")
            return cls(ids, json.loads(meta["trees"]), t["tree"], t["probs"], t["z"],
                       categories=json.loads(meta["categories"]), probe=json.loads(meta["probe"]))
        except CheckpointError as exc:
            raise CheckpointError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
        except (SafetensorError, OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path}: not a readable model index ({type(exc).__name__}: {exc})") from None

    def nbytes(self) -> int:
        """Size of the index file in bytes."""
        return len(self.to_bytes())


def _width(mix) -> int:
    return max(info["aligner"].n_features for info in mix.experts_.values())


def _probe_of(mix) -> dict:
    return {"path": str(getattr(mix, "path_", "") or ""), "sha256": getattr(mix, "sha256_", None)}


def build_index(mix, sources: Iterable[Source], *, batch_size: int = 64,
                progress: Callable[[int], None] | None = None) -> tuple[ModelIndex, list[str]]:
    """Predict for every source (batched, each file read once) and keep its row.

    A source without an id is named after its file (the name without ``.safetensors``). Files that cannot be read
    or routed are skipped with a logged warning.

    Returns:
        ``(index, skipped)``: the index and one message per skipped file.
    """
    width = _width(mix)
    ids, codes, probs, zs, skipped = [], [], [], [], []
    names = sorted(mix.experts_)
    for r in iter_predictions(mix, sources, batch_size=batch_size, errors="report", progress=progress):
        if "error" in r:
            skipped.append(r["error"])
            continue
        ids.append(r["id"] if r["id"] is not None else Path(r["model"]).name.removesuffix(".safetensors"))
        codes.append(names.index(r["tree"]))
        probs.append(r["probabilities"].astype(np.float16))
        zs.append(np.pad(r["features"], (0, width - r["features"].size)).astype(np.float16))
    _check_ids(ids)
    C = len(mix.categories_)
    return ModelIndex(ids, names, codes, np.stack(probs) if probs else np.zeros((0, C), np.float16),
                      np.stack(zs) if zs else np.zeros((0, width), np.float16), categories=mix.categories_,
                      probe=_probe_of(mix)), skipped


def add_to_index(path: str | os.PathLike, mix, sources: list[Source], *, skip_present: bool = False,
                 batch_size: int = 64, progress: Callable[[int], None] | None = None) -> dict:
    """Append models to an index file; the file is rewritten atomically, the old rows are copied, not recomputed.

    Args:
        path: an index file built with ``mix``.
        sources: the models to add (ids: the source's, else the file name).
        skip_present: leave out sources whose id is already indexed (else such an id is an InputError and nothing
            is written).

    Returns:
        ``{"index", "added", "skipped": [messages], "models": rows now}``.
    """
    old = ModelIndex.load(path)
    old.check_probe(mix, str(path))
    have = set(old.ids)
    named = [(s, s.id if s.id is not None else Path(s.path).name.removesuffix(".safetensors")) for s in sources]
    if skip_present:
        named = [(s, i) for s, i in named if i not in have]
    clash = [i for _, i in named if i in have]
    if clash:
        raise InputError(f"id: {', '.join(clash[:3])} already in {path} (use another --id, or remove it first)")
    _check_ids([i for _, i in named])
    new, skipped = build_index(mix, [Source(Path(s.path), i) for s, i in named], batch_size=batch_size,
                               progress=progress)
    merged = old.append(new)
    if len(new):
        merged.save(path)
    return {"index": str(path), "added": len(new), "skipped": skipped, "models": len(merged)}
