"""Scoped process settings: library calls leave the process as they found it.

torch's thread count and global random state, BLAS/OpenMP thread pools and the matplotlib backend are
process-wide. A library function that needs one of them changed uses these context managers, which restore the
previous value on exit (also on error). Only the CLI sets process settings for good.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous count afterwards.

    ``n=None`` leaves the count as it is.
    """
    import torch

    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with torch, BLAS and OpenMP limited to one thread (for parallelism across tasks)."""
    from threadpoolctl import threadpool_limits

    with torch_threads(1), threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def torch_seed(seed: int | None) -> Iterator[None]:
    """Seed torch's global CPU generator for the block, restoring its previous state afterwards.

    Code that draws from the global generator (``nn.Linear`` initialisation, ``torch.randn`` without a
    generator) is then reproducible without leaving the caller's random stream changed. ``seed=None`` only
    forks and restores the state.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.default_generator.manual_seed(int(seed))  # the CPU generator only (the one fork_rng restores)
        yield


def new_figure(**kwargs):
    """A matplotlib :class:`~matplotlib.figure.Figure` not registered with pyplot (no backend is selected)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)
