"""Predicting for many model files: each file read once, in batches (:func:`lamina.weights.routing.predict_batch`),
here or on a Dask cluster.

Only one batch of model states is held at a time (per worker on Dask), so memory stays bounded whatever the number
of files; :func:`write_predictions` streams the rows to a JSON Lines file written atomically. On Dask
(:func:`dask_predictions`) each worker process loads the saved probe once (from its folder, the same path on every
node; its sha256 is checked against the client's) and predicts batches of files; the client yields the rows in
input order.

The results equal those of :meth:`~lamina.weights.experts.ProbeXMixture.predict_file` file by file (which is this
path with a batch of one) up to float32 rounding in the batched products.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from itertools import islice
from pathlib import Path

from lamina._io import atomic_path
from lamina._validation import check_choice, check_positive_int
from lamina.errors import InputError
from lamina.weights.io.readers import FILE_SUFFIXES, find_models
from lamina.weights.routing import Source, predict_batch, top_row
from lamina.weights.zoo.catalogue import Catalogue

logger = logging.getLogger(__name__)


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
        scheduler: ``None`` predicts here; otherwise the batches run on Dask (:func:`dask_predictions`, same
            rows, same order): ``"local"`` for a LocalCluster of ``workers`` processes, a scheduler's address
            (``tcp://host:8786``) or a :class:`distributed.Client`. The workers load ``mix`` from its folder (it
            must come from :meth:`ProbeXMixture.load`) and read the model files at the same paths.
        workers: processes of the local Dask cluster.

    Yields:
        ``{"model", "id", "tree", "layer", "probabilities": (C,) float32, "features": (k,) float32}`` per file
        (``features``: the tree's text readout features, what the search index keeps).
    """
    batch_size = check_positive_int("batch_size", batch_size)
    check_choice("errors", errors, ("raise", "report"))
    if scheduler is not None:
        from lamina._dask import dask_client

        probe_location(mix)  # before a cluster is started
        with dask_client(scheduler, check_positive_int("workers", workers), extra="weights") as client:
            yield from dask_predictions(mix, sources, client=client, batch_size=batch_size, errors=errors,
                                        progress=progress)
        return
    it = iter(Source(Path(s)) if not isinstance(s, Source) else s for s in sources)
    while batch := list(islice(it, batch_size)):
        yield from predict_batch(mix, batch, errors)
        if progress is not None:
            progress(len(batch))


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


# -------------------------------------------------------------------------------------------------------------- Dask
@lru_cache(maxsize=2)
def _worker_probe(path: str, sha256: str | None):
    """The probe of this worker process, loaded once per (folder, sha256) and checked against ``sha256``."""
    from lamina.weights.experts import ProbeXMixture

    mix = ProbeXMixture.load(path)
    if mix.sha256_ != sha256:
        raise InputError(f"probe: {path} on this worker is another probe (sha256 {str(mix.sha256_)[:12]}.., the "
                         f"client's is {str(sha256)[:12]}..); give every node the same probe folder")
    return mix


def probe_location(mix) -> tuple[str, str | None]:
    """``(folder, sha256)`` of a probe loaded from its folder, which the workers load it from; InputError if it
    was not loaded from one (a probe fitted in this process)."""
    path = getattr(mix, "path_", None)
    if path is None:
        raise InputError("scheduler: predicting on Dask loads the probe on every worker from its folder; save it "
                         "(ProbeXMixture.save) and use the loaded probe (ProbeXMixture.load)")
    return path, getattr(mix, "sha256_", None)


def _predict_task(batch: list[Source], path: str, sha256: str | None, errors: str) -> list[dict]:
    """One Dask task: the rows of one batch of files, with this worker's probe and its share of the cores."""
    from threadpoolctl import threadpool_limits

    from lamina._dask import threads_per_task
    from lamina._process import torch_threads

    mix = _worker_probe(path, sha256)
    n = threads_per_task()
    with torch_threads(n), threadpool_limits(limits=n):
        return predict_batch(mix, [Source(Path(s.path).absolute(), s.id) for s in batch], errors)


def dask_predictions(mix, sources: Iterable, *, client, batch_size: int, errors: str,
                     progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """:func:`iter_predictions` on ``client``'s cluster: batches of files predicted on the workers, a bounded number
    at a time (:func:`lamina._dask.bounded_map`), rows yielded in input order (each row's ``model`` as given).

    ``mix`` must have been loaded from its folder (:meth:`ProbeXMixture.load`): the workers load it from the same
    path. Model paths are sent to the workers made absolute.
    """
    from lamina._dask import bounded_map

    path, sha = probe_location(mix)
    it = iter(s if isinstance(s, Source) else Source(Path(s)) for s in sources)
    batches = iter(lambda: list(islice(it, batch_size)), [])
    for batch, rows in bounded_map(client, _predict_task, batches, path, sha, errors, ordered=True):
        for src, row in zip(batch, rows, strict=True):
            row["model"] = str(src.path)
        yield from rows
        if progress is not None:
            progress(len(batch))
