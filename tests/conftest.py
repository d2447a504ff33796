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
