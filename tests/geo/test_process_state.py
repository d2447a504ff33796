"""Library calls leave the process as they found it: matplotlib backend, torch threads and random state, BLAS pools.

Inputs are SYNTHETIC (a tiny untrained encoder, made-up targets). Each test first sets values the library would
not choose itself (the svg backend, 3 torch threads), so a call that sets its own would show.
"""

import sys

import matplotlib
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from lamina.geo.eval.baselines import CoordinateMLP
from lamina.geo.plots import map_figure

from .test_encoder import tiny_encoder


@pytest.fixture
def unusual_process_state():
    backend, threads = matplotlib.get_backend(), torch.get_num_threads()
    matplotlib.use("svg", force=True)
    torch.set_num_threads(3)
    torch.manual_seed(12345)
    yield
    matplotlib.use(backend, force=True)
    torch.set_num_threads(threads)


def _state():
    pyplot = sys.modules.get("matplotlib.pyplot")
    return {
        "backend": matplotlib.get_backend(),
        "torch_threads": torch.get_num_threads(),
        "torch_rng": torch.get_rng_state().clone(),
        "blas": [(p["internal_api"], p["num_threads"]) for p in threadpool_info()],
        "pyplot_figures": pyplot.get_fignums() if pyplot is not None else None,
    }


def _assert_same(before, after):
    assert after["backend"] == before["backend"] == "svg"
    assert after["torch_threads"] == before["torch_threads"] == 3
    assert torch.equal(after["torch_rng"], before["torch_rng"]), "the global torch random state changed"
    assert after["blas"] == before["blas"] and after["pyplot_figures"] == before["pyplot_figures"]


def test_map_figure_leaves_the_process_as_it_was(unusual_process_state, tmp_path):
    enc = tiny_encoder()  # (seeds torch itself: built before the state is taken)
    before = _state()
    out = map_figure(enc, tmp_path / "map.png", month=3, variable="t", resolution_deg=30)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _assert_same(before, _state())


def test_baseline_fit_leaves_the_process_as_it_was_and_is_seeded(unusual_process_state):
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 200), rng.uniform(-60, 60, 200)
    y = (lat > 0).astype(int)
    before = _state()
    a = CoordinateMLP("classification", epochs=3, random_state=5).fit(lon=lon, lat=lat, y=y)
    pa = a.predict_proba(lon=lon[:5], lat=lat[:5])
    _assert_same(before, _state())
    torch.manual_seed(999)  # another caller stream: the fit does not depend on it
    b = CoordinateMLP("classification", epochs=3, random_state=5).fit(lon=lon, lat=lat, y=y)
    np.testing.assert_array_equal(pa, b.predict_proba(lon=lon[:5], lat=lat[:5]))


def test_evaluation_report_and_single_threaded_fits_leave_the_process_as_it_was(unusual_process_state, tmp_path):
    from lamina.geo.eval.evaluate import EvalSettings, Method, evaluate
    from lamina.geo.eval.features import EncoderFeatures

    settings = EvalSettings(seeds=(0,), splits=("random",), n_points={"city-temperature": 60}, n_jobs=1,
                            mlp_epochs=2)  # fmt: skip
    methods = [Method("tiny", EncoderFeatures(tiny_encoder(), "tiny")), Method("mlp", None)]
    before = _state()
    evaluate(["city-temperature"], settings=settings, methods=methods, out_dir=tmp_path, progress=False)
    assert (tmp_path / "city-temperature.png").read_bytes()[:4] == b"\x89PNG"
    _assert_same(before, _state())
