"""Scale-out on Dask: fine-tuning a zoo's models and predicting over many model files on a cluster.

Both run on a ``dask.distributed`` cluster: a :class:`~distributed.LocalCluster` of one-thread worker processes by
default, or an existing one joined by its scheduler's address (see :mod:`lamina._dask`).

Zoo building (:func:`finetune_rows`, used by :func:`lamina.weights.zoo.build.build_zoo` with ``scheduler=``): the
category image pools are sent to every worker once (scattered); each worker process keeps them, with the roots it
has read, for all the fine-tunes of the build, exactly as a process of the local pool does. A worker writes each
model file itself (atomically), so on a real cluster the zoo folder must be a file system that every node mounts
at the same path (NFS, Lustre, ...). Only the rows come back; the client stays the single writer of the SQLite
catalogue and commits them in batches as they complete, so an interrupted Dask build resumes like a local one.
A bounded number of tasks is in flight at a time, whatever the number of models.

Prediction (:func:`dask_predictions`, used by :func:`lamina.weights.serve.predict.iter_predictions` with
``scheduler=``): each worker process loads the saved probe once (from its folder, the same path on every node;
its sha256 is checked against the client's) and predicts batches of files; the client yields the rows in input
order.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from itertools import islice
from pathlib import Path

from lamina._dask import total_threads
from lamina.errors import InputError

logger = logging.getLogger(__name__)
_JOB: dict = {}  # the fine-tune job whose state this worker process holds: {"token": ...}


# ------------------------------------------------------------------------------------------------------ zoo building
def _finetune_task(specs: list[dict], token: str, pools, tests, zoo: str, roots: dict) -> list[dict]:
    """One task: fine-tune ``specs`` in this worker process (one thread) and return their rows; stops at the first
    ``{"error": ...}`` row (a file that could not be written)."""
    from lamina.weights.zoo import build as z

    if _JOB.get("token") != token:  # first task of this build on this worker: the state of a pool process
        z._worker_init(pools, tests, zoo, roots)
        _JOB["token"] = token
    rows = []
    for spec in specs:
        rows.append(z._finetune_one(spec))
        if "error" in rows[-1]:
            break
    return rows


def finetune_rows(client, todo: list[dict], pools, tests, zoo: str, roots: dict) -> Iterator[dict]:
    """Fine-tune the models ``todo`` (specs of :func:`~lamina.weights.zoo.build.model_spec`) on ``client``'s cluster.

    Args:
        client: a :class:`distributed.Client`.
        todo: model specs.
        pools: ``(categories, per_category, 28, 28)`` float32 fine-tune images; tests: the held-out ones.
        zoo: the zoo folder, the same path on every worker (a shared file system on a real cluster).
        roots: the catalogue's roots (``Catalogue.roots()``), their files under ``zoo``.

    Yields:
        One catalogue row per model (or an ``{"error", "id"}`` row for a file that could not be written), in the
        order they complete. Closing the generator cancels the tasks not yet done.
    """
    from distributed import as_completed

    threads = total_threads(client)
    busy = [w for w, n in client.nthreads().items() if n > 1]
    if busy:
        logger.warning("zoo: worker %s runs %d threads; start workers with `--nthreads 1` (one fine-tune per "
                       "process, as in a local build)", busy[0], client.nthreads()[busy[0]])
    chunk = max(1, min(8, len(todo) // (8 * threads)))  # few tasks per worker for big zoos, balance for small ones
    in_flight = 2 * threads + 1
    token = uuid.uuid4().hex
    pools_f, tests_f = client.scatter([pools, tests], broadcast=True, hash=False)
    specs = iter(todo)
    done = as_completed()
    futures: set = set()

    def submit() -> None:
        part = list(islice(specs, chunk))
        if part:
            fut = client.submit(_finetune_task, part, token, pools_f, tests_f, zoo, roots, pure=False,
                                key=f"lamina-finetune-{part[0]['id']}-{token[:8]}")
            futures.add(fut)
            done.add(fut)

    try:
        for _ in range(in_flight):
            submit()
        for fut in done:
            rows = fut.result()  # a task's exception (not a write error) is raised here, as in the local pool
            futures.discard(fut)
            submit()
            yield from rows
    finally:
        if futures:
            client.cancel(list(futures))
        client.cancel([pools_f, tests_f])


# -------------------------------------------------------------------------------------------------------- prediction
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


def _predict_task(path: str, sha256: str | None, batch: list, errors: str) -> list[dict]:
    """One task: the rows of one batch of files, with this worker's probe and its share of the cores."""
    from threadpoolctl import threadpool_limits

    from lamina._dask import threads_per_task
    from lamina._process import torch_threads
    from lamina.weights.serve.predict import _predict_batch

    mix = _worker_probe(path, sha256)
    n = threads_per_task()
    with torch_threads(n), threadpool_limits(limits=n):
        return _predict_batch(mix, batch, errors)


def dask_predictions(mix, sources: Iterable, *, client, batch_size: int, errors: str,
                     progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """:func:`~lamina.weights.serve.predict.iter_predictions` on ``client``'s cluster: batches of files are predicted on
    the workers, a bounded number at a time, and their rows yielded in input order (each row's ``model`` as given).

    ``mix`` must have been loaded from its folder (:meth:`ProbeXMixture.load`): the workers load it from the same
    path. Model paths are sent to the workers made absolute.
    """
    from lamina.weights.serve.predict import Source

    path, sha = probe_location(mix)
    it = iter(s if isinstance(s, Source) else Source(Path(s)) for s in sources)
    pending: deque = deque()

    def submit() -> None:
        batch = list(islice(it, batch_size))
        if batch:
            remote = [Source(Path(s.path).absolute(), s.id) for s in batch]
            pending.append((batch, client.submit(_predict_task, path, sha, remote, errors, pure=False)))

    try:
        for _ in range(2 * total_threads(client) + 1):
            submit()
        while pending:
            batch, fut = pending.popleft()
            rows = fut.result()  # in input order: with errors="raise" the first failing batch raises
            submit()
            for src, row in zip(batch, rows, strict=True):
                row["model"] = str(src.path)
            yield from rows
            if progress is not None:
                progress(len(batch))
    finally:
        if pending:
            client.cancel([f for _, f in pending])
