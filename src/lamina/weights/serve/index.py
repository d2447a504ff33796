"""A compact search index on disk, to which new models are appended without re-reading the others.

A text query scores a model by its tree's readout, a linear map of the model's text features F (``k x r_U`` = 2048
numbers for the default aligner, 4 KB in float16): logits = F . W(t) + b. The readouts W(t) of texts near the
categories lie, to within 0.1 % of their energy, in a subspace of a few hundred dimensions, so each tree gets a basis
Q (n_features, m) of that subspace (the top singular vectors of the readouts of the category prompts, of prompt
mixtures and of perturbed prompts: :func:`text_basis`) and the index keeps only q = F Q per model; a query is then
scored as q . (Q^T W(t)) + b. With m = 256 the probabilities stay within about 0.003 of the full features' on
average (see ``benchmarks/weights_scale.py``).

One file (safetensors) holds, row by row for N models:

- ``probs`` (N, C) float16: predicted probability of every category (what ``search --like`` compares);
- ``q`` (N, m) float16: the text features in the tree's basis;
- ``tree`` (N,) uint16: the model's tree, an index into the tree names;
- ``ids`` (bytes) uint8: the model ids, UTF-8, one per line, in row order;

and once per tree its basis ``basis/TREE`` (n_features, m) float16 (the fixed part, ~1 MB per tree). Ids and rows
live in the same file, so they cannot disagree; the header records the format, the probe (its path and the sha256
of its weights: an index is only read with the probe that built it) and the category names. Every write (build or
append) goes to a temporary file renamed over the old one: a crash leaves the previous index whole. Appending reads
the old rows as they are (no model file is read again) and predicts only the new models. A row takes 2 (C + m) + 2
bytes plus its id: about 750 bytes for the benchmark zoo's 120 categories.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from lamina._io import write_bytes_atomic
from lamina._process import single_threaded
from lamina._validation import check_positive_int
from lamina.errors import CheckpointError, InputError
from lamina.weights.io.readers import model_name
from lamina.weights.serve.predict import Source, iter_predictions

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
        probs: (N, C) float16; q: (N, m) float16; bases: tree -> (n_features, m) float16; categories: C names;
        probe: ``{"path", "sha256"}``.
    """

    def __init__(self, ids, tree_names, tree_codes, probs, q, *, bases: dict, categories, probe: dict):
        self.ids = list(ids)
        self.tree_names = list(tree_names)
        self.tree_codes = np.asarray(tree_codes, np.uint16)
        self.probs = np.asarray(probs, np.float16)
        self.q = np.asarray(q, np.float16)
        self.bases = {t: np.asarray(b, np.float16) for t, b in bases.items()}
        self.categories = list(categories)
        self.probe = dict(probe)
        self._q32 = None  # float32 copy of q, made by the first text query
        problem = self._problem()
        if problem:
            raise CheckpointError(f"index: {problem}; rebuild it with `lamina weights index build`")

    def _problem(self) -> str | None:
        """What is wrong with the rows (the first thing found), or None."""
        n, c = len(self.ids), len(self.categories)
        m = self.q.shape[1] if self.q.ndim == 2 else -1
        if self.tree_codes.shape != (n,):
            return f"{n} ids but {self.tree_codes.shape} tree codes"
        if self.probs.shape != (n, c):
            return f"probabilities of shape {self.probs.shape}, expected ({n} rows, {c} categories)"
        if self.q.shape != (n, m):
            return f"text features of shape {self.q.shape}, expected ({n} rows, features)"
        if n and int(self.tree_codes.max()) >= len(self.tree_names):
            return f"a row names tree {int(self.tree_codes.max())} of only {len(self.tree_names)} trees"
        for name, arr in (("probabilities", self.probs), ("text features", self.q)):
            bad = ~np.isfinite(arr).all(axis=1) if arr.size else np.zeros(0, bool)
            if bad.any():
                return f"{int(bad.sum())} row(s) hold NaN or infinite {name} (first: {self.ids[int(np.argmax(bad))]!r})"
        if self.probs.size and (float(self.probs.min()) < 0 or float(self.probs.max()) > 1):
            return "probabilities outside [0, 1]"
        for t, b in self.bases.items():
            if b.ndim != 2 or b.shape[1] != m:
                return f"the basis of tree {t!r} has shape {b.shape}, the rows {m} features"
            if not np.isfinite(b).all():
                return f"the basis of tree {t!r} holds NaN or infinite values"
        used = {self.tree_names[k] for k in np.unique(self.tree_codes)} if n else set()
        missing = sorted(used - set(self.bases))
        if missing:
            return f"no text basis for tree(s) {', '.join(missing)}, which rows belong to"
        return None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def trees(self) -> list[str]:
        """Tree name per row."""
        return [self.tree_names[c] for c in self.tree_codes]

    # ------------------------------------------------------------------------------------------------ rows
    def append(self, other: ModelIndex) -> ModelIndex:
        """This index followed by ``other``'s rows (same probe and bases; no id may be in both)."""
        if (other.probe["sha256"] != self.probe["sha256"] or other.categories != self.categories
                or other.q.shape[1] != self.q.shape[1]):
            raise InputError("index: the new rows come from another probe or basis size; rebuild the index with "
                             "`lamina weights index build`")
        _check_ids(self.ids + other.ids)
        names = sorted(set(self.tree_names) | set(other.tree_names))
        recode = [np.array([names.index(t) for t in ix.tree_names] or [0], np.uint16) for ix in (self, other)]
        return ModelIndex(self.ids + other.ids, names,
                          np.concatenate([recode[0][self.tree_codes], recode[1][other.tree_codes]]),
                          np.concatenate([self.probs, other.probs]), np.concatenate([self.q, other.q]),
                          bases={**other.bases, **self.bases}, categories=self.categories, probe=self.probe)

    def check_probe(self, mix, source: str = "index") -> None:
        """InputError unless ``mix`` is the probe this index was built with."""
        sha = getattr(mix, "sha256_", None)
        if sha != self.probe["sha256"]:
            raise InputError(f"{source}: built with another probe ({self.probe['path']}); use that probe or rebuild "
                             "the index with `lamina weights index build`")

    def text_scores(self, mix, t: np.ndarray) -> np.ndarray:
        """Probability per row that the model learned what the text embedding ``t`` (1, 384) describes, (N,).

        Rows of a tree the probe has no expert for score 0.
        """
        from scipy.special import expit

        n_trees, m = len(self.tree_names), self.q.shape[1]
        proj = np.zeros((max(n_trees, 1), m), np.float32)  # (T, m): Q^T W(t) per tree
        bias = np.zeros(max(n_trees, 1), np.float32)
        known = np.zeros(max(n_trees, 1), bool)
        with single_threaded():  # a few small products: threads only spin on a shared machine
            for c, tree in enumerate(self.tree_names):
                if tree in mix.experts_ and tree in self.bases:
                    W, b = mix.experts_[tree]["aligner"].readout_weights(t)  # (1, n_features), (1,)
                    proj[c], bias[c], known[c] = W[0] @ self.bases[tree].astype(np.float32), b[0], True
            if self._q32 is None:
                self._q32 = self.q.astype(np.float32)
            codes = self.tree_codes.astype(np.intp)
            logits = np.take_along_axis(self._q32 @ proj.T, codes[:, None], axis=1)[:, 0] + bias[codes]  # (N,)
        return np.where(known[codes], expit(logits), 0.0).astype(np.float32)

    # ------------------------------------------------------------------------------------------------ storage
    def to_bytes(self) -> bytes:
        from safetensors.numpy import save

        tensors = {"probs": self.probs, "q": self.q, "tree": self.tree_codes,
                   "ids": np.frombuffer("\n".join(self.ids).encode("utf-8"), np.uint8),
                   **{f"basis/{t}": b for t, b in self.bases.items()}}
        meta = {"format": INDEX_FORMAT, "format_version": str(INDEX_VERSION), "count": str(len(self)),
                "probe": json.dumps(self.probe), "trees": json.dumps(self.tree_names),
                "categories": json.dumps(self.categories)}
        return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=meta)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index atomically (a temporary file renamed over ``path``)."""
        return write_bytes_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelIndex:
        """Read an index file (CheckpointError naming it if it is damaged or not an index)."""
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
                t = {k: fh.get_tensor(k) for k in fh.keys()}
            raw = t["ids"].tobytes().decode("utf-8")
            ids = raw.split("\n") if raw else []
            if len(ids) != int(meta["count"]):
                raise CheckpointError(f"{path}: {len(ids)} ids for {meta['count']} rows")
            bases = {k.removeprefix("basis/"): v for k, v in t.items() if k.startswith("basis/")}
            return cls(ids, json.loads(meta["trees"]), t["tree"], t["probs"], t["q"], bases=bases,
                       categories=json.loads(meta["categories"]), probe=json.loads(meta["probe"]))
        except CheckpointError as exc:
            raise CheckpointError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
        except (SafetensorError, OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path}: not a readable model index ({type(exc).__name__}: {exc})") from None


def text_basis(aligner, prompts: np.ndarray, dims: int, *, seed: int = 0, n_mixed: int = 400) -> np.ndarray:
    """An orthonormal basis (n_features, m) of the subspace where the aligner's readouts of texts lie.

    The readouts are taken of the category prompts, of ``n_mixed`` normalised sums of two prompts and of ``n_mixed``
    prompts with a little noise (seeded), and the basis is their top ``m = min(dims, n_features, texts)`` right
    singular vectors: a query near the categories has its readout in this span to within a small error.

    Args:
        aligner: a fitted :class:`~lamina.weights.text.aligner.TextAligner`.
        prompts: (C, 384) embeddings of the category prompts.
    """
    rng = np.random.default_rng(seed)
    P = np.asarray(prompts, np.float32)
    mixed = P[rng.integers(0, len(P), n_mixed)] + P[rng.integers(0, len(P), n_mixed)]
    noisy = P[rng.integers(0, len(P), n_mixed)] + 0.05 * rng.standard_normal((n_mixed, P.shape[1]), np.float32)
    T = np.concatenate([P, mixed, noisy])
    T /= np.maximum(np.linalg.norm(T, axis=1, keepdims=True), 1e-12)
    # small matrices: one thread (on a loaded machine OpenBLAS's threads spin: eigh took 50 s instead of 0.4 s)
    with single_threaded():
        W = aligner.readout_weights(T)[0].astype(np.float64)  # (n_texts, n_features)
        # right singular vectors from the eigenvectors of the small Gram matrix W W^T (n_texts^2, not n_features^2)
        vals, vecs = np.linalg.eigh(W @ W.T)
    m = min(dims, W.shape[1], int(np.sum(vals > vals.max() * 1e-10)))
    top = np.argsort(-vals, kind="stable")[:m]
    basis = (W.T @ vecs[:, top]) / np.sqrt(vals[top])  # (n_features, m), orthonormal columns
    return np.ascontiguousarray(basis, dtype=np.float32)


def _probe_of(mix) -> dict:
    return {"path": str(getattr(mix, "path_", "") or ""), "sha256": getattr(mix, "sha256_", None)}


def build_index(mix, sources: Iterable[Source], *, dims: int = 256, batch_size: int = 64,
                progress: Callable[[int], None] | None = None) -> tuple[ModelIndex, list[str]]:
    """Predict for every source (batched, each file read once) and keep its row.

    A source without an id is named after its file (the name without ``.safetensors``). Files that cannot be read
    or routed are skipped with a logged warning.

    Args:
        dims: size m of the text-feature basis per tree (2 m bytes per model; capped at the feature count).

    Returns:
        ``(index, skipped)``: the index and one message per skipped file.
    """
    dims = check_positive_int("dims", dims)
    bases = {t: text_basis(info["aligner"], mix.text_, dims) for t, info in sorted(mix.experts_.items())}
    m = max(b.shape[1] for b in bases.values())
    bases = {t: np.pad(b, ((0, 0), (0, m - b.shape[1]))) for t, b in bases.items()}  # one width for every tree
    return _rows(mix, sources, bases, batch_size, progress)


def _rows(mix, sources, bases: dict, batch_size: int, progress) -> tuple[ModelIndex, list[str]]:
    ids, codes, probs, qs, skipped = [], [], [], [], []
    names = sorted(mix.experts_)
    m = next(iter(bases.values())).shape[1]
    for r in iter_predictions(mix, sources, batch_size=batch_size, errors="report", progress=progress):
        if "error" in r:
            skipped.append(r["error"])
            continue
        ids.append(r["id"] if r["id"] is not None else model_name(r["model"]))
        codes.append(names.index(r["tree"]))
        probs.append(r["probabilities"].astype(np.float16))
        qs.append((r["features"] @ bases[r["tree"]].astype(np.float32)).astype(np.float16))  # (m,)
    _check_ids(ids)
    C = len(mix.categories_)
    return ModelIndex(ids, names, codes, np.stack(probs) if probs else np.zeros((0, C), np.float16),
                      np.stack(qs) if qs else np.zeros((0, m), np.float16), bases=bases,
                      categories=mix.categories_, probe=_probe_of(mix)), skipped


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
    named = [(s, s.id if s.id is not None else model_name(s.path)) for s in sources]
    if skip_present:
        named = [(s, i) for s, i in named if i not in have]
    clash = [i for _, i in named if i in have]
    if clash:
        raise InputError(f"id: {', '.join(clash[:3])} already in {path} (use another --id, or remove it first)")
    _check_ids([i for _, i in named])
    missing = sorted(set(mix.experts_) - set(old.bases))
    if missing:
        raise CheckpointError(f"{path}: no text basis for tree(s) {', '.join(missing)}; rebuild the index")
    new, skipped = _rows(mix, [Source(Path(s.path), i) for s, i in named], old.bases, batch_size, progress)
    merged = old.append(new)
    if len(new):
        merged.save(path)
    return {"index": str(path), "added": len(new), "skipped": skipped, "models": len(merged)}
