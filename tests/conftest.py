"""Suite-wide fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_dir(tmp_path_factory):
    """Derived caches (land masks, ...) go to a folder of this test session, never into the user's home cache."""
    previous = os.environ.get("LAMINA_CACHE_DIR")
    os.environ["LAMINA_CACHE_DIR"] = str(tmp_path_factory.mktemp("lamina-cache"))
    yield
    if previous is None:
        os.environ.pop("LAMINA_CACHE_DIR", None)
    else:
        os.environ["LAMINA_CACHE_DIR"] = previous


@pytest.fixture(scope="module")
def cluster():
    """A Dask LocalCluster of 2 single-threaded worker processes on loopback, one per test module."""
    import logging

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture
def quick_connect_timeout(monkeypatch):
    """Tests that dial a closed port (tcp://127.0.0.1:9) check the refusal, not the wait: 1 s instead of the 10 s
    lamina gives a real scheduler to answer."""
    import lamina._dask

    monkeypatch.setattr(lamina._dask, "CONNECT_TIMEOUT", "1s")
