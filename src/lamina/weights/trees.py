"""Model trees from weights alone: discovery by clustering, agreement with the true trees, routing to an expert.

Models can only be compared when their weights have the same layout, so the collection is first split by
*signature* (the names and shapes of every tensor outside the classification head, which differs per model).
Within a signature group each model becomes a fingerprint: all its body weights, flattened and mapped by a fixed
Gaussian random projection to ``dim`` numbers (distances are kept up to a small factor,
Johnson-Lindenstrauss). Ward clustering bisects the group recursively; a split is kept only while its two halves
are clearly apart (:func:`separation`), so one tree whose fine-tunes moved more or less far stays whole while a
nested tree (a root fine-tuned from another root) still splits off.

A :class:`Router` keeps each discovered tree's signature and fingerprint centroid and sends a new model to the
nearest tree of its signature.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lamina.errors import CheckpointError, InputError
from lamina.weights.layers import read_state

HEAD_PREFIX = "head."


def signature(state: dict) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Names and shapes of the body tensors (everything but ``head.*``), sorted."""
    return tuple(sorted((k, tuple(np.shape(v))) for k, v in state.items() if not k.startswith(HEAD_PREFIX)))


def signature_key(sig) -> str:
    return ";".join(f"{k}:{'x'.join(map(str, s))}" for k, s in sig)


def body_vector(state: dict, sig) -> np.ndarray:
    """All body weights of a model, flattened in signature order: (D,) float32."""
    return np.concatenate([np.asarray(state[k], dtype=np.float32).ravel() for k, _ in sig])


def projection(d: int, dim: int, seed: int) -> np.ndarray:
    """Fixed Gaussian random projection (D, dim) float32 with variance 1/dim per entry."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d, dim), dtype=np.float32) / np.sqrt(dim)).astype(np.float32)


def _sig_seed(seed: int, key: str) -> int:
    import zlib

    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2**32)


@dataclass
class Fingerprints:
    """Fingerprints of a collection, grouped by signature."""

    keys: list[str] = field(default_factory=list)  # signature key per model
    vectors: list[np.ndarray] = field(default_factory=list)  # (dim,) per model
    kept: list[int] = field(default_factory=list)  # index into the input paths
    skipped: list[str] = field(default_factory=list)


def fingerprint_files(paths: list[Path], *, dim: int = 128, seed: int = 0, progress=None) -> Fingerprints:
    """Fingerprint model files (broken files are skipped and reported on stderr)."""
    out = Fingerprints()
    proj: dict[str, np.ndarray] = {}
    for i, p in enumerate(paths):
        try:
            state = read_state(p)
        except CheckpointError as exc:
            out.skipped.append(str(exc))
            print(f"warning: skipped {exc}", file=sys.stderr)
            continue
        sig = signature(state)
        key = signature_key(sig)
        vec = body_vector(state, sig)
        if not np.all(np.isfinite(vec)):
            out.skipped.append(f"{p}: holds NaN or infinite weights")
            print(f"warning: skipped {p}: holds NaN or infinite weights", file=sys.stderr)
            continue
        if key not in proj:
            proj[key] = projection(vec.size, dim, _sig_seed(seed, key))
        out.keys.append(key)
        out.vectors.append(vec @ proj[key])
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


class Router:
    """Send a model to the nearest tree (fingerprint centroid) among the trees of its signature.

    Args:
        dim, seed: fingerprint settings (must match the ones used for the centroids).
    """

    def __init__(self, dim: int = 128, seed: int = 0):
        self.dim = dim
        self.seed = seed

    def fit(self, fp: Fingerprints, trees: list[str]) -> Router:
        """Learn centroids from fingerprints and a tree name per fingerprint."""
        if len(trees) != len(fp.keys):
            raise InputError(f"trees: expected {len(fp.keys)} names (one per fingerprint), got {len(trees)}")
        self.trees_: list[str] = sorted(set(trees))
        self.keys_: dict[str, str] = {}
        cents = []
        arr = np.array(trees)
        vecs = np.stack(fp.vectors)
        for t in self.trees_:
            idx = np.flatnonzero(arr == t)
            self.keys_[t] = fp.keys[idx[0]]
            cents.append(vecs[idx].mean(0))
        self.centroids_ = np.stack(cents).astype(np.float32)
        return self

    def route_state(self, state: dict, *, source: str = "model") -> tuple[str, float]:
        """Tree of a loaded model and its distance to that tree's centroid."""
        if not hasattr(self, "centroids_"):
            raise InputError("router: not fitted; train a probe first (lamina weights train)")
        sig = signature(state)
        key = signature_key(sig)
        cand = [i for i, t in enumerate(self.trees_) if self.keys_[t] == key]
        if not cand:
            shapes = ", ".join(f"{k} {tuple(s)}" for k, s in sig[:4])
            raise InputError(f"{source}: its layers ({shapes}, ...) match no tree this probe knows")
        v = body_vector(state, sig) @ projection(body_vector(state, sig).size, self.dim, _sig_seed(self.seed, key))
        d = np.linalg.norm(self.centroids_[cand] - v[None], axis=1)
        j = int(np.argmin(d))
        return self.trees_[cand[j]], float(d[j])

    def route_vectors(self, fp: Fingerprints) -> list[str]:
        """Tree per fingerprint (nearest centroid of the same signature)."""
        out = []
        for key, v in zip(fp.keys, fp.vectors, strict=True):
            cand = [i for i, t in enumerate(self.trees_) if self.keys_[t] == key]
            if not cand:
                raise InputError("router: a model's layers match no tree this probe knows")
            d = np.linalg.norm(self.centroids_[cand] - v[None], axis=1)
            out.append(self.trees_[cand[int(np.argmin(d))]])
        return out

    def to_state(self) -> tuple[dict, dict]:
        return ({"router.centroids": self.centroids_},
                {"dim": self.dim, "seed": self.seed, "trees": self.trees_, "keys": self.keys_})

    @classmethod
    def from_state(cls, tensors: dict, doc: dict) -> Router:
        r = cls(doc["dim"], doc["seed"])
        r.trees_ = list(doc["trees"])
        r.keys_ = dict(doc["keys"])
        r.centroids_ = np.asarray(tensors["router.centroids"], dtype=np.float32)
        return r
