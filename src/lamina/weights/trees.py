"""Model trees from weights alone: discovery by clustering, agreement with the true trees, routing to an expert.

Models can only be compared when their weights have the same layout, so the collection is first split by *signature*
(the names and shapes of every tensor outside the classification head, which differs per model). Within a signature
group each model becomes a fingerprint: all its body weights, flattened and mapped by a fixed Gaussian random
projection to ``dim`` numbers (scikit-learn's ``GaussianRandomProjection``; distances are kept up to a small factor,
Johnson-Lindenstrauss), drawn once per process and signature. Ward clustering bisects the group recursively; a split
is kept only while its two halves are clearly apart (:func:`separation`), so one tree whose fine-tunes moved more or
less far stays whole while a nested tree (a root fine-tuned from another root) still splits off.

A :class:`Router` keeps each discovered tree's signature and fingerprint centroid and sends a new model to the
nearest centroid among the trees of its signature (scikit-learn's ``pairwise_distances_argmin``).
"""

from __future__ import annotations

import functools
import logging
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from lamina.errors import CheckpointError, InputError
from lamina.weights.layers import is_head, lora_delta, read_state

PROJECTION = "sklearn.GaussianRandomProjection"  # recorded in saved routers: fingerprints of another kind differ
logger = logging.getLogger(__name__)


OUTSIDE = 1.5
"""A model whose distance to its tree's centroid exceeds this many times the tree's radius (the farthest of its own
training models) is flagged ``outside_tree``: its probabilities come from an expert that never saw such weights."""

LORA_DELTA = ".lora_delta"  # the key suffix a LoRA pair takes in a signature


def signature(state: dict) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Names and shapes of the body tensors (everything but a head, :func:`~lamina.weights.layers.is_head`), sorted.

    A LoRA pair (``NAME.lora_A`` (r, in), ``NAME.lora_B`` (out, r)) counts as one tensor ``NAME.lora_delta`` of
    shape (out, in), its update ``B @ A``: adapters of one base model share a signature whatever their rank.
    """
    items = []
    for k, v in state.items():
        if is_head(k) or (k.endswith(".lora_B") and k[: -len(".lora_B")] + ".lora_A" in state):
            continue
        base = k[: -len(".lora_A")]
        if k.endswith(".lora_A") and f"{base}.lora_B" in state:
            items.append((base + LORA_DELTA, (int(np.shape(state[f"{base}.lora_B"])[0]), int(np.shape(v)[1]))))
        else:
            items.append((k, tuple(np.shape(v))))
    return tuple(sorted(items))


def signature_key(sig) -> str:
    return ";".join(f"{k}:{'x'.join(map(str, s))}" for k, s in sig)


def body_vector(state: dict, sig, seed: int | None = None) -> np.ndarray:
    """All body weights of a model, flattened in signature order: (D,) float32 (a LoRA pair as ``B @ A``).

    With ``seed`` (the signature's projection seed) and D > :data:`MAX_PROJECTED`, the sampled and scaled vector
    that the fingerprint projects, (MAX_PROJECTED,), computed without the whole body: only the sampled entries of
    each tensor are kept (no (D,) vector is built).
    """
    sizes = [int(np.prod(shape)) for _, shape in sig]
    d = sum(sizes)
    if seed is not None and d > MAX_PROJECTED:
        return _sampled_body(state, sig, sizes, _sampled(d, seed))
    parts = []
    for k, _ in sig:
        if k.endswith(LORA_DELTA):
            base = k[: -len(LORA_DELTA)]
            parts.append(lora_delta(state[f"{base}.lora_A"], state[f"{base}.lora_B"]).ravel())
        else:
            parts.append(np.asarray(state[k], dtype=np.float32).ravel())
    return np.concatenate(parts)


def _draw_projection(d: int, dim: int, seed: int) -> np.ndarray:
    """The fixed Gaussian random projection of D numbers to ``dim``: a (dim, D) float32 matrix, entries N(0, 1/dim).

    It is the matrix of scikit-learn's ``GaussianRandomProjection(n_components=dim, random_state=seed)`` fitted on
    float32 data (the same draws from ``RandomState(seed)``, row by row, so saved routers keep their fingerprints),
    drawn a few rows at a time so that no (dim, D) float64 temporary is ever built.
    """
    rng = np.random.RandomState(seed)
    out = np.empty((dim, d), dtype=np.float32)
    step = max(1, (1 << 20) // max(d, 1))  # rows per draw: a float64 chunk of at most ~8 MB
    for i in range(0, dim, step):
        rows = min(step, dim - i)
        out[i : i + rows] = rng.normal(loc=0.0, scale=1.0 / np.sqrt(dim), size=(rows, d))
    out.setflags(write=False)
    return out


class ProjectorCache:
    """The projection matrices of the signatures met so far, least recently used dropped beyond ``max_bytes``.

    Drawing a matrix costs about a second for a benchmark MLP (234,000 x 128 float32, 120 MB), so each (D, dim,
    seed) is drawn once and kept while the total stays within ``max_bytes`` (default 512 MB: four such matrices, so
    a collection that mixes a few signatures never redraws). A matrix larger than the budget is drawn, used and
    not kept. Thread-safe.

    Call it as ``projector(d, dim, seed)`` -> (dim, D) float32, read-only.
    """

    def __init__(self, max_bytes: int = 512 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.draws = 0  # matrices drawn so far (a redraw means the budget was too small for the mix)

    def __call__(self, d: int, dim: int, seed: int) -> np.ndarray:
        key = (int(d), int(dim), int(seed))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        mat = _draw_projection(*key)
        with self._lock:
            self.draws += 1
            if mat.nbytes <= self.max_bytes:
                self._items[key] = mat
                while sum(m.nbytes for m in self._items.values()) > self.max_bytes:
                    self._items.popitem(last=False)
        return mat

    def nbytes(self) -> int:
        """Bytes held by the cached matrices."""
        with self._lock:
            return sum(m.nbytes for m in self._items.values())

    def cached(self) -> list[tuple[int, int, int]]:
        """The (D, dim, seed) of the cached matrices, least recently used first."""
        with self._lock:
            return list(self._items)

    def cache_clear(self) -> None:
        with self._lock:
            self._items.clear()


projector = ProjectorCache()


MAX_PROJECTED = 1 << 19
"""Most body numbers a fingerprint projects. A larger body (a transformer's: 12 attention matrices of MiniLM hold
1.8 M numbers, its whole body 22 M) is first sampled: a fixed random subset of ``MAX_PROJECTED`` coordinates per
signature, scaled by sqrt(D / MAX_PROJECTED) so that squared distances keep their expected size. The (dim, D)
projection matrix would otherwise outgrow memory (0.9 GB for the 1.8 M, 11 GB for 22 M at dim 128) and the
projector cache with it. Bodies up to this size (every image zoo lamina builds) are projected whole, as before."""


@functools.lru_cache(maxsize=8)
def _sampled(d: int, seed: int) -> np.ndarray:
    """The sorted coordinates a body of ``d`` numbers keeps (``d > MAX_PROJECTED``), drawn from ``seed``."""
    idx = np.sort(np.random.default_rng([seed, d]).choice(d, size=MAX_PROJECTED, replace=False))
    idx.setflags(write=False)
    return idx


def _reduce(v: np.ndarray, seed: int) -> np.ndarray:
    """A body vector (D,) or rows (B, D) as projected: whole, or sampled for D > :data:`MAX_PROJECTED`."""
    d = v.shape[-1]
    if d <= MAX_PROJECTED:
        return v
    return v[..., _sampled(d, seed)] * np.float32(np.sqrt(d / MAX_PROJECTED))


def _sampled_body(state: dict, sig, sizes: list[int], idx: np.ndarray) -> np.ndarray:
    out = np.empty(idx.size, np.float32)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    cut = np.searchsorted(idx, starts)  # idx[cut[i]:cut[i + 1]] fall in tensor i
    for i, (k, _) in enumerate(sig):
        local = idx[cut[i] : cut[i + 1]] - starts[i]
        if k.endswith(LORA_DELTA):
            base = k[: -len(LORA_DELTA)]
            # the whole update costs out * in * r, no more than gathering r numbers for each sampled entry
            out[cut[i] : cut[i + 1]] = lora_delta(state[f"{base}.lora_A"], state[f"{base}.lora_B"]).reshape(-1)[local]
        else:
            out[cut[i] : cut[i + 1]] = np.asarray(state[k], np.float32).reshape(-1)[local]
    return out * np.float32(np.sqrt(sum(sizes) / idx.size))


def project(vec: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Fingerprint of one flattened (D,) body vector: (dim,) float32 (see :data:`MAX_PROJECTED` for large D)."""
    v = _reduce(np.asarray(vec, dtype=np.float32), seed)
    return (projector(v.size, dim, seed) @ v).astype(np.float32, copy=False)


def project_rows(vectors: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Fingerprints of many flattened body vectors of one signature, (B, D) -> (B, dim) float32.

    One matrix product: the (dim, D) projection is read once for the whole batch (a per-model product reads all of
    its 120 MB for every model).
    """
    v = _reduce(np.asarray(vectors, dtype=np.float32), seed)
    # (dim, D) @ (D, B), not (B, D) @ (D, dim): the same product, but OpenBLAS runs this orientation ~50x faster
    # for D in the 10^5 (measured: 0.12 s against 5.8 s for B = 64, D = 234,000)
    return np.ascontiguousarray((projector(v.shape[1], dim, seed) @ v.T).T, dtype=np.float32)


def signature_seed(seed: int, key: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2**32)


@dataclass
class Fingerprints:
    """Fingerprints of a collection, grouped by signature."""

    keys: list[str] = field(default_factory=list)  # signature key per model
    vectors: list[np.ndarray] = field(default_factory=list)  # (dim,) per model
    kept: list[int] = field(default_factory=list)  # index into the input paths
    skipped: list[str] = field(default_factory=list)


def fingerprint_files(paths: list[Path], *, dim: int = 128, seed: int = 0, progress=None) -> Fingerprints:
    """Fingerprint model files (broken files and files with NaN or infinite weights are skipped, with a logged
    warning each)."""
    out = Fingerprints()
    for i, p in enumerate(paths):
        try:
            state = read_state(p)
        except CheckpointError as exc:
            out.skipped.append(str(exc))
            logger.warning("skipped %s", exc)
            continue
        sig = signature(state)
        key = signature_key(sig)
        vec = body_vector(state, sig, signature_seed(seed, key))
        if not np.all(np.isfinite(vec)):
            out.skipped.append(f"{p}: holds NaN or infinite weights")
            logger.warning("skipped %s: holds NaN or infinite weights", p)
            continue
        out.keys.append(key)
        out.vectors.append(project(vec, dim, signature_seed(seed, key)))
        out.kept.append(i)
        if progress is not None:
            progress(i)
    return out


def separation(vectors: np.ndarray, labels: np.ndarray) -> float:
    """How clearly a split into two groups is real: leave-one-out projections on the line between the centroids.

    Each point is projected on the line through the two group centroids computed *without* that point, and the
    gap between the groups' mean projections is divided by their pooled standard deviation. One cloud cut in two
    (fine-tunes of one root that differ in how far they moved) scores about 2-4; two trees whose roots differ
    score much higher, since every model of a tree shares its root's offset.

    Args:
        vectors: (N, dim) fingerprints.
        labels: (N,) 0/1 group of each point (both groups need >= 2 points).
    """
    v = np.asarray(vectors, dtype=np.float64)
    a, b = labels == 0, labels == 1
    na, nb = int(a.sum()), int(b.sum())
    if na < 2 or nb < 2:
        return 0.0
    sa, sb = v[a].sum(0), v[b].sum(0)
    ca = np.where(a[:, None], (sa[None] - v) / (na - 1), sa[None] / na)  # (N, dim) centroid of A without point i
    cb = np.where(b[:, None], (sb[None] - v) / (nb - 1), sb[None] / nb)
    u = ca - cb
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    p = np.sum((v - (ca + cb) / 2) * u, axis=1)
    pooled = np.sqrt((p[a].var() + p[b].var()) / 2)
    return float((p[a].mean() - p[b].mean()) / max(pooled, 1e-12))


def cluster(vectors: np.ndarray, *, min_sep: float = 6.0, min_size: int = 5) -> np.ndarray:
    """Recursive Ward bisection of (N, dim) fingerprints; a split is kept while its :func:`separation` >= min_sep.

    Returns:
        (N,) int64 labels 0..k-1.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    v = np.asarray(vectors, dtype=np.float64)
    labels = np.zeros(len(v), dtype=np.int64)
    if len(v) < 2 * min_size:
        return labels
    halves = fcluster(linkage(v, method="ward"), t=2, criterion="maxclust") - 1
    if min(np.bincount(halves, minlength=2)) < min_size or separation(v, halves) < min_sep:
        return labels
    nxt = 0
    for h in (0, 1):
        idx = np.flatnonzero(halves == h)
        sub = cluster(v[idx], min_sep=min_sep, min_size=min_size)
        labels[idx] = sub + nxt
        nxt += int(sub.max()) + 1
    return labels


def discover_trees(fp: Fingerprints, *, min_sep: float = 6.0) -> np.ndarray:
    """Tree label per fingerprinted model, (N_kept,) int64: clusters within each signature group, numbered apart."""
    labels = np.zeros(len(fp.keys), dtype=np.int64)
    nxt = 0
    keys = np.array(fp.keys)
    vecs = np.stack(fp.vectors) if fp.vectors else np.zeros((0, 1))
    for key in sorted(set(fp.keys)):
        idx = np.flatnonzero(keys == key)
        lab = cluster(vecs[idx], min_sep=min_sep)
        labels[idx] = lab + nxt
        nxt += int(lab.max()) + 1
    return labels


def adjusted_rand(true_labels, found_labels) -> float:
    """Adjusted Rand index between the true trees and the discovered ones (1 = identical partitions)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(list(true_labels), list(found_labels)))


class Router(BaseEstimator):
    """Send a model to the nearest tree (fingerprint centroid) among the trees of its signature.

    Args:
        dim, seed: fingerprint settings (must match the ones used for the centroids).

    Attributes (after ``fit``):
        trees_: tree names, sorted; keys_: tree -> signature key; centroids_: (T, dim) float32, one per tree;
        nearest_: signature key -> the names of its trees, whose centroids a model is compared with;
        radii_: (T,) float32, the largest distance of a tree's own models to its centroid (what
        :meth:`relative_distance` divides by; ``None`` in a router saved before lamina measured it).
    """

    def __init__(self, dim: int = 128, seed: int = 0):
        self.dim = dim
        self.seed = seed

    def fit(self, fp: Fingerprints, trees: list[str]) -> Router:
        """Learn centroids from fingerprints and a tree name per fingerprint."""
        if len(trees) != len(fp.keys):
            raise InputError(f"trees: expected {len(fp.keys)} names (one per fingerprint), got {len(trees)}")
        self.trees_: list[str] = sorted(set(trees))
        arr = np.array(trees)
        vecs = np.stack(fp.vectors).astype(np.float64)
        self.keys_ = {t: fp.keys[int(np.flatnonzero(arr == t)[0])] for t in self.trees_}
        self.centroids_ = np.stack([vecs[arr == t].mean(0) for t in self.trees_]).astype(np.float32)
        own = np.linalg.norm(vecs - self.centroids_[[self.trees_.index(t) for t in trees]], axis=1)
        # a tree of one model has radius 0: any other model is then "outside" (no spread to calibrate on)
        self.radii_ = np.array([own[arr == t].max() for t in self.trees_], dtype=np.float32)
        self._index_signatures()
        return self

    def relative_distance(self, tree: str, distance) -> np.ndarray | None:
        """``distance`` to ``tree``'s centroid over the tree's radius (1.0: as far as the farthest of its own
        models); ``None`` for a router without radii. Above :data:`OUTSIDE` a model is flagged as outside its
        tree (random, zeroed or rescaled weights of a known architecture; a model of an unknown tree)."""
        if getattr(self, "radii_", None) is None:
            return None
        r = float(self.radii_[self.trees_.index(tree)])
        d = np.asarray(distance, dtype=np.float64)
        return np.where(d == 0, 0.0, d / r) if r > 0 else np.where(d == 0, 0.0, np.inf)

    def _index_signatures(self) -> None:
        """nearest_: signature key -> the trees of that signature (their rows of centroids_), sorted by name."""
        self.nearest_: dict[str, list[str]] = {}
        for t in self.trees_:
            self.nearest_.setdefault(self.keys_[t], []).append(t)

    def _tree_of(self, key: str, v: np.ndarray, source: str) -> str:
        from sklearn.metrics import pairwise_distances_argmin

        names = self.nearest_.get(key)
        if not names:
            raise InputError(f"{source}: its layers match no tree this probe knows")
        if len(names) == 1:
            return names[0]
        rows = self.centroids_[[self.trees_.index(t) for t in names]].astype(np.float64)
        return names[int(pairwise_distances_argmin(np.asarray(v, np.float64)[None], rows)[0])]

    def check_signature(self, sig, *, source: str = "model") -> str:
        """The signature key of a model's body if this router knows trees of it; InputError naming ``source``."""
        if not hasattr(self, "centroids_"):
            raise InputError("router: not fitted; train a probe first (lamina weights train)")
        key = signature_key(sig)
        if key not in self.nearest_:
            raise InputError(f"{source}: its layers match no tree this probe knows; {self._nearest_hint(sig)}")
        return key

    def _nearest_hint(self, sig) -> str:
        """What the nearest known signature expects that the model lacks, and what the model has in excess."""
        have = {k: tuple(s) for k, s in sig}
        best = None
        for key, trees in self.nearest_.items():
            want = {name: tuple(int(x) for x in shape.split("x") if x) for name, _, shape in
                    (item.rpartition(":") for item in key.split(";") if item)}
            score = (sum(have.get(n) == s for n, s in want.items()), len(have.keys() & want.keys()))
            if best is None or score > best[0]:  # most tensors alike, then most names alike
                best = (score, trees, want)
        (shared, _), trees, want = best
        missing = [f"{n} {s}" for n, s in want.items() if have.get(n) != s]
        extra = [f"{n} {s}" for n, s in have.items() if want.get(n) != s]
        show = lambda xs: ", ".join(xs[:4]) + (f" (+{len(xs) - 4} more)" if len(xs) > 4 else "") or "none"  # noqa: E731
        return (f"nearest: the tree(s) {', '.join(trees)}, sharing {shared} of {len(want)} tensors (name and shape); "
                f"it expects {show(missing)}; the model has instead {show(extra)}")

    def route_state(self, state: dict, *, source: str = "model") -> tuple[str, float]:
        """Tree of a loaded model and its distance to that tree's centroid."""
        sig = signature(state)
        key = self.check_signature(sig, source=source)
        vec = body_vector(state, sig, signature_seed(self.seed, key))
        if not np.all(np.isfinite(vec)):  # before the projection: no RuntimeWarning, the file named
            raise InputError(f"{source}: holds NaN or infinite weights")
        v = project(vec, self.dim, signature_seed(self.seed, key))
        tree = self._tree_of(key, v, source)
        return tree, float(np.linalg.norm(self.centroids_[self.trees_.index(tree)] - v))

    def route_bodies(self, key: str, bodies: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Trees of many models of one (known) signature, from their flattened bodies in one projection.

        Args:
            key: the models' signature key (:meth:`check_signature`).
            bodies: (B, D) finite body vectors (:func:`body_vector`, with the signature's seed for a large body).

        Returns:
            ``(trees, distances)``: B tree names and (B,) float64 distances to their trees' centroids (``inf`` for a
            body whose fingerprint overflows).
        """
        from sklearn.metrics import pairwise_distances_argmin

        names = self.nearest_[key]
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing body gets distance inf, not a warning
            v = project_rows(bodies, self.dim, signature_seed(self.seed, key)).astype(np.float64)  # (B, dim)
            v[~np.isfinite(v).all(axis=1)] = np.inf
            rows = self.centroids_[[self.trees_.index(t) for t in names]].astype(np.float64)  # (T, dim)
            pick = (np.zeros(len(v), np.int64) if len(names) == 1
                    else pairwise_distances_argmin(np.nan_to_num(v, posinf=np.finfo(np.float64).max), rows))
            dist = np.linalg.norm(rows[pick] - v, axis=1)
        return [names[int(j)] for j in pick], dist

    def route_vectors(self, fp: Fingerprints) -> list[str]:
        """Tree per fingerprint (nearest centroid of the same signature)."""
        return [self._tree_of(key, v, "router: a model") for key, v in zip(fp.keys, fp.vectors, strict=True)]

    def to_state(self) -> tuple[dict, dict]:
        radii = {} if getattr(self, "radii_", None) is None else {"router.radii": self.radii_}
        return ({"router.centroids": self.centroids_, **radii},
                {"dim": self.dim, "seed": self.seed, "trees": self.trees_, "keys": self.keys_,
                 "projection": PROJECTION})

    @classmethod
    def from_state(cls, tensors: dict, doc: dict) -> Router:
        if doc.get("projection") != PROJECTION:
            raise InputError("probe: its router was saved by an older lamina (another fingerprint projection); "
                             "retrain it with `lamina weights train ZOO -o PROBE/`")
        r = cls(doc["dim"], doc["seed"])
        r.trees_ = list(doc["trees"])
        r.keys_ = dict(doc["keys"])
        r.centroids_ = np.asarray(tensors["router.centroids"], dtype=np.float32)
        if r.centroids_.shape != (len(r.trees_), r.dim) or set(r.keys_) != set(r.trees_):
            raise InputError(f"router: {len(r.trees_)} trees of dimension {r.dim}, but centroids of shape "
                             f"{r.centroids_.shape} and signatures for {sorted(r.keys_)}")
        radii = tensors.get("router.radii")
        r.radii_ = None if radii is None else np.asarray(radii, dtype=np.float32)
        if r.radii_ is not None and (r.radii_.shape != (len(r.trees_),) or not np.all(np.isfinite(r.radii_))
                                     or np.any(r.radii_ < 0)):
            raise InputError(f"router: radii of shape {r.radii_.shape} for {len(r.trees_)} trees, or not finite "
                             "and >= 0")
        r._index_signatures()
        return r
