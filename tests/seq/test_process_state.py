"""Library calls leave the process as they found it: torch threads and RNG, NumPy's global RNG, matplotlib's
backend (and pyplot unimported)."""

import contextlib
import os
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import torch

from lamina._process import torch_seed
from lamina.seq import figures
from lamina.seq.construct import construct
from lamina.seq.model import SeqConfig, SingleLayerTransformer, load_model, save_model
from lamina.seq.report import train_report
from lamina.seq.sweep import sweep
from lamina.seq.targets import MovingAverage, SmoothCumMax
from lamina.seq.train import TrainConfig, train


def _backend():
    """matplotlib's backend setting as it is (``get_backend()`` would resolve, and so change, an automatic one)."""
    return dict.__getitem__(matplotlib.rcParams, "backend")


def _snapshot():
    return {
        "threads": torch.get_num_threads(),
        "initial_seed": torch.initial_seed(),
        "rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "backend": _backend(),
        "pyplot": "matplotlib.pyplot" in sys.modules,
    }


@contextlib.contextmanager
def _process_state_checked():
    """Yield the torch thread count and assert on exit that the process is as it was on entry. Inside, torch's
    RNG starts from a known seed that no library call uses; the caller's RNG is forked and put back on exit."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(987)
        threads = torch.get_num_threads()
        before = _snapshot()
        yield threads
        after = _snapshot()
        assert after["threads"] == before["threads"]
        assert after["initial_seed"] == before["initial_seed"]
        assert torch.equal(after["rng"], before["rng"])
        assert np.array_equal(after["numpy_rng"], before["numpy_rng"])
        assert after["backend"] == before["backend"]
        assert after["pyplot"] == before["pyplot"]


@pytest.fixture
def unchanged():
    with _process_state_checked() as threads:
        yield threads


def test_the_check_itself_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    torch.rand(3)  # somewhere in the stream, not at a seed
    state, initial = torch.get_rng_state(), torch.initial_seed()
    with _process_state_checked():
        pass
    assert torch.initial_seed() == initial and torch.equal(torch.get_rng_state(), state)  # not seed 987


def _tiny(threads):
    # threads differ from the current count, so a library call that set it for good would be seen
    return TrainConfig(steps=3, batch_size=4, num_train=20, num_test=10, eval_every=3, threads=1 if threads > 1 else 2,
                       seed=5, warmup_steps=0)


def test_train_and_checkpoints_leave_threads_and_rng_alone(unchanged, tmp_path):
    task = MovingAverage(3, 1)
    with torch_seed(0):  # building a torch module draws from the global stream; that is the test's own doing
        model = SingleLayerTransformer(SeqConfig(n_ctx=3, d_in=1, d_model=8, n_heads=2, d_ff=8))
    result = train(model, task, _tiny(unchanged), progress=False, checkpoint_dir=tmp_path / "ckpt")
    train(model, task, _tiny(unchanged), progress=False, checkpoint_dir=tmp_path / "ckpt")  # resumes
    save_model(result.model, tmp_path / "m")
    load_model(tmp_path / "m")


def test_sweep_and_train_report_leave_the_process_alone(unchanged, tmp_path):
    task = MovingAverage(3, 1)
    base = SeqConfig(n_ctx=3, d_in=1, d_model=8, n_heads=2, d_ff=8)
    sweep(lambda n: MovingAverage(n, 1), base, _tiny(unchanged), vary="heads", values=[1, 2], n=3, progress=False)
    train_report(tmp_path, task, base, _tiny(unchanged), progress=False)
    assert (tmp_path / "figures" / "learning_curve.png").stat().st_size > 1000


def test_construct_and_figures_leave_the_process_alone(unchanged, tmp_path):
    c = construct(SmoothCumMax(2, 1), eps=0.05)
    path = figures.attention_maps(tmp_path / "a.png", c.attention(np.full((2, 2, 1), 0.5)).mean(axis=0))
    figures.error_vs(tmp_path / "e.png", [1, 2, 4], {"err": [1.0, 0.5, 0.25]}, xlabel="width")
    figures.heatmap(tmp_path / "h.png", np.eye(3))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


FRESH = """
import sys, matplotlib, numpy as np
from pathlib import Path
before = dict.__getitem__(matplotlib.rcParams, "backend")
from lamina.seq import figures
out = Path(sys.argv[1])
figures.error_vs(out / "e.png", [1, 2, 4], {"err": [1.0, 0.5, 0.25]}, xlabel="width")
figures.attention_maps(out / "a.png", np.random.default_rng(0).uniform(size=(2, 3, 3)))
figures.learning_curve(out / "l.png", [{"seconds": 1.0, "rel_mse": 0.5}, {"seconds": 2.0, "rel_mse": 0.1}])
print(repr(before) == repr(dict.__getitem__(matplotlib.rcParams, "backend")), "matplotlib.pyplot" in sys.modules)
"""


@pytest.mark.slow  # a fresh interpreter imports torch: 6 s alone, about 17 s on the loaded 2-core machine
def test_figures_select_no_backend_and_import_no_pyplot_in_a_fresh_process(tmp_path):
    """In a fresh interpreter (pyplot may already be imported by other tests in this one)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MPLBACKEND", None)
    done = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]  # backend unchanged, pyplot never imported
    assert all((tmp_path / f"{k}.png").stat().st_size > 1000 for k in "eal")
