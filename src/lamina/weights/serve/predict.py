"""Predicting for many model files: each file read once, routed in batches, one projection per signature.

A batch of files is read (every tensor checked finite), grouped by signature and routed with one matrix product per
group (:meth:`~lamina.weights.trees.Router.route_bodies`: the projection, drawn once per signature and kept by
:data:`~lamina.weights.trees.projector`, is read once per batch instead of once per model); then grouped by tree,
each tree's expert reads its layer of all the batch's models at once. Only one batch of model states is held at a
time, so memory stays bounded whatever the number of files; :func:`write_predictions` streams the rows to a JSON
Lines file written atomically.

The results equal those of :meth:`~lamina.weights.experts.ProbeXMixture.predict_file` file by file (which is this
path with a batch of one) up to float32 rounding in the batched products.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from lamina._io import atomic_path
from lamina._validation import check_positive_int
from lamina.errors import CheckpointError, InputError
from lamina.weights.io.readers import FILE_SUFFIXES, find_models
from lamina.weights.layers import layer_from_state, read_state
from lamina.weights.trees import body_vector, signature
from lamina.weights.zoo.catalogue import Catalogue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One model to predict for: its file and, for a catalogue's model, its id."""

    path: Path
    id: str | None = None


def folder_sources(folder: str | os.PathLike) -> list[Source]:
    """Every model under ``folder`` (recursively, sorted by path): model files (``.safetensors``, ``.pt``, ``.pth``,
    ``.bin``) and model folders (Hugging Face, PEFT adapters; each one model, see
    :func:`lamina.weights.io.readers.find_models`). InputError if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--dir: {folder} is not a folder")
    found = find_models(folder)
    if not found:
        raise InputError(f"--dir: {folder} holds no model files ({', '.join(FILE_SUFFIXES)}) or model folders")
    return [Source(p) for p in found]


def catalogue_sources(zoo: str | os.PathLike) -> list[Source]:
    """Every model of a zoo's catalogue (with its id), sorted by id; InputError if it holds none."""
    with Catalogue(zoo) as cat:
        rows = cat.models()
    if not rows:
        raise InputError(f"--zoo: {zoo} holds no models; build it with `lamina weights zoo build`")
    return [Source(Path(zoo) / m["path"], m["id"]) for m in rows]


def _read(mix, src: Source) -> tuple[dict, str, np.ndarray]:
    """A model's tensors, signature key and flattened body (errors name the file)."""
    state = read_state(src.path)
    for name, tensor in state.items():  # before any arithmetic: no RuntimeWarning, the file named
        if not np.all(np.isfinite(tensor)):
            raise InputError(f"{src.path}: tensor {name!r} holds NaN or infinite values")
    sig = signature(state)
    key = mix.router_.check_signature(sig, source=str(src.path))
    return state, key, body_vector(state, sig)


def _group(pairs: Iterable[tuple[int, str]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for j, k in pairs:
        out.setdefault(k, []).append(j)
    return out


def _predict_batch(mix, batch: list[Source], errors: str) -> list[dict]:
    failed: dict[int, Exception] = {}
    read: dict[int, tuple[dict, str, np.ndarray]] = {}
    for j, src in enumerate(batch):
        try:
            read[j] = _read(mix, src)
        except (CheckpointError, InputError) as exc:
            failed[j] = exc
    tree_of: dict[int, str] = {}
    for key, js in _group((j, r[1]) for j, r in read.items()).items():
        trees, _ = mix.router_.route_bodies(key, np.stack([read[j][2] for j in js]))  # (B, D) -> B trees
        tree_of.update(zip(js, trees, strict=True))
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
                      "probabilities": P[r], "features": F[r]}
    if failed and errors == "raise":
        raise failed[min(failed)]
    for j, exc in failed.items():
        logger.warning("skipped %s", exc)
        out[j] = {"model": str(batch[j].path), "id": batch[j].id, "error": str(exc)}
    return [out[j] for j in range(len(batch))]


def iter_predictions(mix, sources: Iterable[Source | str | os.PathLike], *, batch_size: int = 64,
                     errors: str = "raise", progress: Callable[[int], None] | None = None, scheduler=None,
                     workers: int = 2) -> Iterator[dict]:
    """Predict for many model files, in input order, reading each once and holding one batch at a time.

    Args:
        mix: a trained :class:`~lamina.weights.experts.ProbeXMixture`.
        sources: model files (paths or :class:`Source`).
        batch_size: files read, routed and probed together (memory: about this many model files).
        errors: ``"raise"``: the first unreadable or unroutable file of a batch raises (InputError or
            CheckpointError naming it); ``"report"``: it gets a row ``{"model", "id", "error"}`` and a logged
            warning, and the others go on.
        progress: called with the number of files done after each batch.
        scheduler: ``None`` predicts here; otherwise the batches run on Dask (:mod:`lamina.weights.serve.scale`, same
            rows, same order): ``"local"`` for a LocalCluster of ``workers`` processes, a scheduler's address
            (``tcp://host:8786``) or a :class:`distributed.Client`. The workers load ``mix`` from its folder (it
            must come from :meth:`ProbeXMixture.load`) and read the model files at the same paths.
        workers: processes of the local Dask cluster.

    Yields:
        ``{"model", "id", "tree", "layer", "probabilities": (C,) float32, "features": (k,) float32}`` per file
        (``features``: the tree's text readout features, what the search index keeps).
    """
    batch_size = check_positive_int("batch_size", batch_size)
    if errors not in ("raise", "report"):
        raise InputError(f"errors: expected 'raise' or 'report', got {errors!r}")
    if scheduler is not None:
        from lamina._dask import dask_client
        from lamina.weights.serve.scale import dask_predictions, probe_location

        probe_location(mix)  # before a cluster is started
        with dask_client(scheduler, check_positive_int("workers", workers), extra="weights") as client:
            yield from dask_predictions(mix, sources, client=client, batch_size=batch_size, errors=errors,
                                        progress=progress)
        return
    it = iter(Source(Path(s)) if not isinstance(s, Source) else s for s in sources)
    while batch := list(islice(it, batch_size)):
        yield from _predict_batch(mix, batch, errors)
        if progress is not None:
            progress(len(batch))


def top_row(mix, result: dict, top: int) -> dict:
    """A prediction as the ``top`` most likely categories: ``{"model", ["id",] "tree", "layer", "categories":
    [{"name", "probability", "source"}]}`` (an error row is returned as it is, without ``id`` when it has none)."""
    head = {"model": result["model"]} | ({"id": result["id"]} if result.get("id") is not None else {})
    if "error" in result:
        return head | {"error": result["error"]}
    p = result["probabilities"]
    seen = set(mix.seen_)
    order = np.argsort(-p, kind="stable")[:top]
    return head | {"tree": result["tree"], "layer": result["layer"],
                   "categories": [{"name": mix.categories_[c], "probability": round(float(p[c]), 4),
                                   "source": "expert" if c in seen else "text (zero-shot)"} for c in order]}


def write_predictions(mix, sources: Iterable[Source], out: str | os.PathLike, *, top: int = 10,
                      batch_size: int = 64, progress: Callable[[int], None] | None = None, scheduler=None,
                      workers: int = 2) -> dict:
    """Stream predictions to a JSON Lines file (one :func:`top_row` per model, input order), written atomically.

    Files that cannot be read or routed get an error row (and a logged warning); nothing is left at ``out`` if the
    run is interrupted. ``scheduler`` and ``workers``: as in :func:`iter_predictions` (on Dask, this process alone
    writes the file; a scheduler is reached before it is opened).

    Returns:
        ``{"predictions": out, "models": rows with a prediction, "errors": error rows}``.
    """
    top = check_positive_int("top", top)
    from lamina._dask import dask_client, is_client

    if scheduler is not None and not is_client(scheduler):  # a bad address fails before the file is opened
        from lamina.weights.serve.scale import probe_location

        probe_location(mix)
        with dask_client(scheduler, check_positive_int("workers", workers), extra="weights") as client:
            return write_predictions(mix, sources, out, top=top, batch_size=batch_size, progress=progress,
                                     scheduler=client)
    n_ok = n_err = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for res in iter_predictions(mix, sources, batch_size=batch_size, errors="report", progress=progress,
                                    scheduler=scheduler):
            row = top_row(mix, res, top)
            fh.write(json.dumps(row) + "\n")
            n_err += "error" in row
            n_ok += "error" not in row
        fh.flush()
        os.fsync(fh.fileno())
    return {"predictions": str(out), "models": n_ok, "errors": n_err}
