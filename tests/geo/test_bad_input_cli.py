"""Bad input and faults through the CLI: one line on stderr, exit code 2, nothing left behind.

Tables, checkpoints and state files here are made up in the test (synthetic) to be broken on purpose.
"""

from __future__ import annotations

import errno
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import lamina.geo
from lamina._io import sha256_file
from lamina.cli import app
from lamina.errors import CheckpointError

from ..cli_checks import fails_cleanly as _fails_cleanly
from ..cli_checks import only as _only

runner = CliRunner()


@pytest.mark.parametrize("command", ["embed", "reconstruct"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_non_numeric_coordinates_name_column_and_row(ckpt, tmp_path, command, fmt):
    df = pd.DataFrame({"lon": ["1.0", "2.5", "east"], "lat": [0.0, 1.0, 2.0]})
    src = tmp_path / f"pts.{fmt}"
    df.to_csv(src, index=False) if fmt == "csv" else df.to_parquet(src)
    out = tmp_path / "out.parquet"
    r = runner.invoke(app, ["geo", command, str(src), "-o", str(out), "--month", "3", "-c", str(ckpt),
                            "--no-progress"])
    _fails_cleanly(r, "'lon'", "'east'", "row 2")
    _only(tmp_path, src.name)


def test_boolean_month_column_is_refused(ckpt, tmp_path):
    src = tmp_path / "pts.parquet"
    pd.DataFrame({"lon": [1.0], "lat": [2.0], "m": [True]}).to_parquet(src)
    r = runner.invoke(app, ["geo", "embed", str(src), "-o", str(tmp_path / "o.csv"), "--month-col", "m", "-c",
                            str(ckpt), "--no-progress"])
    _fails_cleanly(r, "'m'", "expected numbers")
    _only(tmp_path, src.name)


@pytest.mark.parametrize("content", [b"", b"PAR1 garbage that is not parquet", "truncated", "csv"])
def test_broken_parquet_inputs(ckpt, tmp_path, content):
    good = tmp_path / "good.parquet"
    pd.DataFrame({"lon": np.linspace(-10, 10, 500), "lat": np.zeros(500)}).to_parquet(good)
    src = tmp_path / "in.parquet"
    if content == "truncated":
        src.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif content == "csv":
        src.write_text("lon,lat\n1,2\n")  # a CSV file named .parquet
    else:
        src.write_bytes(content)
    good.unlink()
    r = runner.invoke(app, ["geo", "embed", str(src), "-o", str(tmp_path / "o.parquet"), "--month", "1", "-c",
                            str(ckpt), "--no-progress"])
    _fails_cleanly(r, str(src))
    _only(tmp_path, "in.parquet")


def test_disk_full_while_writing_leaves_nothing(ckpt, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    src = tmp_path / "pts.csv"
    pd.DataFrame({"lon": [1.0, 2.0], "lat": [3.0, 4.0]}).to_csv(src, index=False)

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    r = runner.invoke(app, ["geo", "embed", str(src), "-o", str(tmp_path / "o.parquet"), "--month", "1", "-c",
                            str(ckpt), "--no-progress"])
    _fails_cleanly(r, "No space left on device", "nothing was written")
    _only(tmp_path, "pts.csv")


def _rewrite_weights(src, dst, change):
    shutil.copytree(src, dst)
    tensors = load_file(str(dst / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    doc = json.loads((dst / "config.json").read_text())
    doc["sha256"] = sha256_file(dst / "model.safetensors")  # a consistent digest: only the values are bad
    (dst / "config.json").write_text(json.dumps(doc))


def test_checkpoint_with_nan_weights_is_refused_everywhere(ckpt, tmp_path):
    bad = tmp_path / "nan"
    _rewrite_weights(ckpt, bad, lambda t: next(v for v in t.values() if v.is_floating_point()).view(-1).__setitem__(
        0, float("nan")))
    for args in (["embed", "--lon", "1", "--lat", "2", "--month", "3"], ["info"]):
        r = runner.invoke(app, ["geo", *args, "-c", str(bad)])
        _fails_cleanly(r, "NaN or infinite")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        lamina.geo.load(bad)


def test_info_refuses_random_weight_bytes(ckpt, tmp_path):
    bad = tmp_path / "random"
    shutil.copytree(ckpt, bad)
    (bad / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
    _fails_cleanly(runner.invoke(app, ["geo", "info", "-c", str(bad)]), "sha256")


@pytest.mark.parametrize("bad", [12345, 1.5, ["a", "b"]])
def test_load_refuses_a_non_path(bad):
    with pytest.raises(CheckpointError, match="expected a path"):
        lamina.geo.load(bad)


@pytest.mark.parametrize(("option", "value", "fragment"), [("--lr", "nan", "lr"), ("--lr", "-1", "lr"),
                                                           ("--minutes", "-1", "max_minutes"),
                                                           ("--minutes", "0", "max_minutes")])
def test_pretrain_bad_numbers_are_refused_before_anything_is_written(tmp_path, option, value, fragment):
    out = tmp_path / "run"
    r = runner.invoke(app, ["geo", "pretrain", "--out", str(out), "--stack", "offline:elevation", option, value,
                            "--steps", "2", "--no-progress"])
    _fails_cleanly(r, fragment)
    assert not out.exists()


@pytest.mark.parametrize("state", [b"", b"\x00" * 10, "random", "truncated"])
def test_resume_from_a_broken_state_file(tiny_chelsa, tmp_path, state):
    from .test_pretrain import _cli

    out = tmp_path / "run"
    args = _cli(tiny_chelsa, out, 4)[3:]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    good = (out / "state.pt").read_bytes()
    data = {"random": np.random.default_rng(1).bytes(len(good)), "truncated": good[: len(good) // 3]}.get(state, state)
    (out / "state.pt").write_bytes(data)
    _fails_cleanly(runner.invoke(app, args), "state.pt", "not a readable training state")
    assert (out / "state.pt").read_bytes() == data  # the user's file is left for them to inspect


def test_a_state_file_of_another_program_is_refused(tiny_chelsa, tmp_path):
    from .test_pretrain import _cli

    out = tmp_path / "run"
    out.mkdir()
    torch.save({"weights": torch.zeros(3)}, out / "state.pt")
    _fails_cleanly(runner.invoke(app, _cli(tiny_chelsa, out, 4)[3:]), "not a lamina pretraining state")


@pytest.mark.slow
def test_kill_9_during_embed_then_rerun_leaves_exactly_the_output(ckpt, tmp_path):
    import signal
    import subprocess
    import sys

    from tests.killpoint import killed_cli

    src = tmp_path / "pts.parquet"
    n = 200_000
    rng = np.random.default_rng(0)
    pd.DataFrame({"lon": rng.uniform(-180, 180, n), "lat": rng.uniform(-90, 90, n)}).to_parquet(src)
    out = tmp_path / "emb.parquet"
    cmd = [sys.executable, "-m", "lamina.cli", "geo", "embed", str(src), "-o", str(out), "--month", "6",
           "--chunk-rows", "1000", "-c", str(ckpt), "--no-progress"]
    # the run kills itself right after computing its 3rd chunk (2 chunks written): deterministic on any machine
    proc = subprocess.run(killed_cli("lamina.geo.embed:_compute", 3, cmd[3:]), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    assert proc.returncode == -signal.SIGKILL, "the run must be interrupted mid-write for this test to mean anything"
    assert not out.exists() and len(list(tmp_path.glob(".emb.parquet.*"))) == 1
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    _only(tmp_path, "pts.parquet", "emb.parquet")
    assert pd.read_parquet(out).shape == (n, 2 + 8)
