"""Reading, routing and probing a batch of model files: the core of every prediction.

A batch of files is read (every tensor checked finite), grouped by signature and routed with one matrix product per
group (:meth:`~lamina.weights.trees.Router.route_bodies`: the projection, drawn once per signature and kept by
:data:`~lamina.weights.trees.projector`, is read once per batch instead of once per model); then grouped by tree,
each tree's expert reads its layer of all the batch's models at once. :meth:`ProbeXMixture.predict_file
<lamina.weights.experts.ProbeXMixture.predict_file>` is a batch of one; :mod:`lamina.weights.serve.predict` streams
many batches, here or on Dask.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lamina.errors import CheckpointError, InputError
from lamina.weights.layers import layer_from_state, read_state
from lamina.weights.trees import OUTSIDE, body_vector, signature, signature_seed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One model to predict for: its file and, for a catalogue's model, its id."""

    path: Path
    id: str | None = None


def _read(mix, src: Source) -> tuple[dict, str, np.ndarray]:
    """A model's tensors, signature key and flattened body (errors name the file)."""
    state = read_state(src.path)
    for name, tensor in state.items():  # before any arithmetic: no RuntimeWarning, the file named
        if not np.all(np.isfinite(tensor)):
            raise InputError(f"{src.path}: tensor {name!r} holds NaN or infinite values")
    sig = signature(state)
    key = mix.router_.check_signature(sig, source=str(src.path))
    with np.errstate(over="ignore", invalid="ignore"):
        body = body_vector(state, sig, signature_seed(mix.router_.seed, key))
    if not np.all(np.isfinite(body)):  # finite tensors whose LoRA update B @ A overflows float32
        raise _overflow(src, state)
    return state, key, body


def _overflow(src: Source, state: dict) -> InputError:
    top = max(float(np.abs(t).max()) for t in state.values() if np.size(t))
    return InputError(f"{src.path}: its weights overflow float32 once combined (a LoRA update B @ A or the "
                      f"fingerprint; the largest value is {top:.3g}): not a model any tree holds")


def _group(pairs: Iterable[tuple[int, str]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for j, k in pairs:
        out.setdefault(k, []).append(j)
    return out


def _distance(mix, tree: str, distance: float) -> dict:
    """``tree_distance`` (the model's fingerprint distance to its tree's centroid over the tree's radius) and
    ``outside_tree`` (beyond :data:`~lamina.weights.trees.OUTSIDE` radii); nothing for an older router."""
    rel = mix.router_.relative_distance(tree, distance)
    if rel is None:
        return {}
    rel = float(rel)
    return {"tree_distance": rel, "outside_tree": bool(rel > OUTSIDE)}


def predict_batch(mix, batch: list[Source], errors: str) -> list[dict]:
    """Rows for a batch of models, in batch order: ``{"model", "id", "tree", "layer", "probabilities": (C,),
    "features": (k,), "tree_distance", "outside_tree"}``, or ``{"model", "id", "error"}`` with
    ``errors="report"`` (``"raise"``: the first failing model of the batch raises). ``outside_tree`` flags a model
    far from every model its tree's expert was trained on (random, zeroed or rescaled weights): read its
    probabilities as unsupported."""
    failed: dict[int, Exception] = {}
    read: dict[int, tuple[dict, str, np.ndarray]] = {}
    for j, src in enumerate(batch):
        try:
            read[j] = _read(mix, src)
        except (CheckpointError, InputError) as exc:
            failed[j] = exc
    tree_of: dict[int, str] = {}
    dist_of: dict[int, float] = {}
    for key, js in _group((j, r[1]) for j, r in read.items()).items():
        trees, dist = mix.router_.route_bodies(key, np.stack([read[j][2] for j in js]))  # (B, D) -> B trees
        for j, t, d in zip(js, trees, dist.tolist(), strict=True):
            if np.isfinite(d):
                tree_of[j], dist_of[j] = t, d
            else:  # the fingerprint overflowed float32
                failed[j] = _overflow(batch[j], read[j][0])
    out: dict[int, dict] = {}
    for tree, js in _group(tree_of.items()).items():
        if tree not in mix.experts_:
            for j in js:
                failed[j] = InputError(f"{batch[j].path}: belongs to tree {tree!r}, which has no expert (too few "
                                       "models)")
            continue
        info = mix.experts_[tree]
        mats, ok = [], []
        for j in js:
            try:
                mats.append(layer_from_state(read[j][0], info["layer"], source=str(batch[j].path)))
                ok.append(j)
            except InputError as exc:
                failed[j] = exc
        if not ok:
            continue
        X = np.stack(mats)  # (n, d_H, d_W)
        R, seen = info["expert"].responses_and_proba(X)  # (n, d_H, r_U), (n, C_seen): X preprocessed once
        F = info["aligner"].features(R)  # (n, k) the text readout's features
        P = mix._probs(tree, X, F, seen)  # (n, C)
        for r, j in enumerate(ok):
            out[j] = {"model": str(batch[j].path), "id": batch[j].id, "tree": tree, "layer": info["layer"],
                      "probabilities": P[r], "features": F[r], **_distance(mix, tree, dist_of[j])}
    if failed and errors == "raise":
        raise failed[min(failed)]
    for j, exc in failed.items():
        logger.warning("skipped %s", exc)
        out[j] = {"model": str(batch[j].path), "id": batch[j].id, "error": str(exc)}
    return [out[j] for j in range(len(batch))]


def top_row(mix, result: dict, top: int) -> dict:
    """A prediction as the ``top`` most likely categories: ``{"model", ["id",] "tree", "layer", "categories":
    [{"name", "probability", "source"}]}`` (an error row is returned as it is, without ``id`` when it has none)."""
    head = {"model": result["model"]} | ({"id": result["id"]} if result.get("id") is not None else {})
    if "error" in result:
        return head | {"error": result["error"]}
    p = result["probabilities"]
    seen = set(mix.seen_)
    order = np.argsort(-p, kind="stable")[:top]
    far = {k: (round(result[k], 3) if k == "tree_distance" else result[k]) for k in ("tree_distance", "outside_tree")
           if k in result}
    return head | {"tree": result["tree"], "layer": result["layer"], **far,
                   "categories": [{"name": mix.categories_[c], "probability": round(float(p[c]), 4),
                                   "source": "expert" if c in seen else "text (zero-shot)"} for c in order]}
