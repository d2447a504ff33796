"""Dask clients shared by the parts that scale out (geo embedding, weights zoo building and prediction).

One rule for all of them: a scheduler address (``tcp://host:8786``) joins an existing cluster; otherwise the call
starts a :class:`~distributed.LocalCluster` of worker *processes* with one thread each, on loopback, for its own
use, and closes it again. A task that wants more threads than one asks :func:`threads_per_task` for its share of the
machine's cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator

from lamina._validation import check_workers
from lamina.errors import InputError

CONNECT_TIMEOUT = "10s"


def _distributed(extra: str):
    try:
        import distributed
    except ModuleNotFoundError:
        raise InputError(f"scheduler: Dask scale-out needs the 'distributed' package (pip install 'lamina[{extra}]')") \
            from None
    return distributed


def open_client(scheduler: str | None, workers: int, *, extra: str):
    """``(client, cluster)``: a client of ``scheduler``, or of a new loopback LocalCluster of ``workers`` processes
    with one thread each (``cluster`` is then that cluster, else None). The caller closes both.

    Raises:
        InputError: ``distributed`` is not installed (naming the extra ``lamina[extra]`` that brings it), or the
            scheduler cannot be reached.
    """
    distributed = _distributed(extra)
    if scheduler is not None:
        try:
            return distributed.Client(scheduler, timeout=CONNECT_TIMEOUT), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"scheduler: cannot reach {scheduler} ({type(exc).__name__}); start it with "
                             "`dask scheduler` and one `dask worker ADDRESS` per node") from None
        except Exception as exc:  # e.g. tls:// without certificates, ucx:// without ucx: TypeError
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise InputError(f"scheduler: cannot connect to {scheduler} ({type(exc).__name__}: {first}); give the "
                             "address of a running `dask scheduler` (tcp://host:8786)") from None
    workers = check_workers("workers", workers)  # never more local processes than CPUs
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    return distributed.Client(cluster), cluster


@contextlib.contextmanager
def dask_client(scheduler, workers: int, *, extra: str) -> Iterator:
    """A :class:`~distributed.Client` for the block: ``scheduler`` may be ``"local"`` (a LocalCluster of ``workers``
    processes, closed afterwards), an address (joined, and left afterwards) or a client the caller already holds
    (used as it is, left open)."""
    if not isinstance(scheduler, str):
        if not is_client(scheduler):
            raise InputError(f"scheduler: expected 'local', an address such as tcp://host:8786 or a "
                             f"distributed.Client, got {scheduler!r}")
        yield scheduler
        return
    if not scheduler.strip():
        raise InputError("scheduler: expected 'local' or an address such as tcp://host:8786, got ''")
    client, cluster = open_client(None if scheduler == "local" else scheduler, workers, extra=extra)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def is_client(obj) -> bool:
    """Whether ``obj`` is a :class:`distributed.Client` (without importing ``distributed`` when it is not loaded)."""
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(obj, distributed.Client)


def total_threads(client) -> int:
    """Threads of all the workers the scheduler knows now (at least 1): how many tasks can run at once."""
    return max(1, sum(int(n) for n in client.nthreads().values()))


def threads_per_task(threads: int | None = None) -> int:
    """``threads`` if given; on a Dask worker, this machine's cores shared among the tasks the worker runs at once;
    elsewhere 1."""
    if threads is not None:
        return threads
    try:
        from distributed import get_worker

        return max(1, (os.cpu_count() or 1) // max(1, get_worker().state.nthreads))
    except (ImportError, ValueError):
        return 1


def bounded_map(client, fn: Callable, items: Iterable, *args, ordered: bool = True, in_flight: int | None = None,
                key: Callable[[object], str] | None = None) -> Iterator[tuple[object, object]]:
    """``(item, fn(item, *args))`` for every item, computed on ``client``'s cluster with at most ``in_flight`` tasks
    submitted at a time (default: twice the cluster's threads, plus one), whatever the number of items.

    Args:
        client: a :class:`distributed.Client`.
        fn: the task, a module-level function (it is pickled by reference to its module).
        items: the work, consumed lazily (a generator of batches is fine).
        args: extra arguments of every task (futures of scattered data, paths, ...).
        ordered: yield in the order of ``items``; else as tasks complete.
        key: the task key of an item (default: Dask's own).

    Yields:
        ``(item, result)``. A task's exception is raised here (in input order when ``ordered``). Closing the
        generator, or an exception, cancels the tasks not yet done.
    """
    from distributed import as_completed

    limit = in_flight or 2 * total_threads(client) + 1
    it = iter(items)
    live: dict = {}  # future -> item, in submission order
    done = None if ordered else as_completed()

    def submit() -> None:
        for item in it:
            fut = client.submit(fn, item, *args, pure=False, **({} if key is None else {"key": key(item)}))
            live[fut] = item
            if done is not None:
                done.add(fut)
            return

    try:
        for _ in range(limit):
            submit()
        while live:
            fut = next(iter(live)) if ordered else next(done)
            result = fut.result()
            item = live.pop(fut)
            submit()
            yield item, result
    finally:
        if live:
            client.cancel(list(live))
