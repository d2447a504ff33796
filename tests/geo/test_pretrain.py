"""Pretraining mechanics on a SYNTHETIC CHELSA-named stack (see conftest.tiny_chelsa) with a tiny network."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import lamina.geo
from lamina.errors import CheckpointError, InputError
from lamina.geo.data.sources.chelsa import chelsa_stack
from lamina.geo.encoder import EncoderConfig
from lamina.geo.pretrain import PretrainConfig, masked_mse, pretrain
from tests.killpoint import killed_cli

TINY = EncoderConfig(n_variables=2, dim_hidden=32, num_layers=3, dim_embedding=8)


def _cfg(**kw):
    base = dict(max_steps=150, batch_size=256, lr=3e-3, eval_every=50, checkpoint_every=50, n_val=512, n_windows=8,
                val_block_deg=10, val_fraction=0.25, patience=100, months_per_window=3, seed=0)
    return PretrainConfig(**{**base, **kw})


def _weights(path):
    from lamina._io import load_checkpoint

    return load_checkpoint(path)[0]


def test_masked_mse_ignores_missing_entries():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    valid = torch.tensor([[True, False], [True, True]])
    assert masked_mse(pred, target, valid).item() == pytest.approx((1 + 0 + 16) / 3)


def test_pretrain_learns_writes_metrics_and_is_reproducible(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    enc = pretrain(stack, TINY, _cfg(), tmp_path / "a", progress=False)
    hist = json.loads((tmp_path / "a" / "history.json").read_text())
    assert [h["step"] for h in hist] == [50, 100, 150]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    doc = json.loads((tmp_path / "a" / "final" / "config.json").read_text())
    per_var = doc["metadata"]["heldout_metrics"]["per_variable"]
    assert set(per_var) == {"tas", "pr"} and per_var["tas"]["units"] == "degC"
    assert per_var["tas"]["r2"] > 0.6  # a smooth synthetic field is learnt quickly, also in held-out blocks
    assert doc["metadata"]["training"]["stack"] == "chelsa"
    assert lamina.geo.load(tmp_path / "a" / "final").embed(lon=[0.0], lat=[0.0], month=1).shape == (1, 8)
    assert enc.variable_names == ["tas", "pr"]
    # same seed, same result
    pretrain(stack, TINY, _cfg(), tmp_path / "b", progress=False)
    for k, v in _weights(tmp_path / "a" / "final").items():
        torch.testing.assert_close(v, _weights(tmp_path / "b" / "final")[k], rtol=0, atol=0)


def test_resume_refuses_another_configuration(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    pretrain(stack, TINY, _cfg(max_steps=10), tmp_path / "r", progress=False)
    other = EncoderConfig(n_variables=2, dim_hidden=16, num_layers=2, dim_embedding=8)
    with pytest.raises(InputError, match="another encoder"):
        pretrain(stack, other, _cfg(max_steps=20), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="n_variables"):
        pretrain(stack.select(["tas"]), TINY, _cfg(), tmp_path / "x", progress=False)


def _cli(folder, out, steps, extra=()):
    return [sys.executable, "-m", "lamina.cli", "geo", "pretrain", "--stack", f"chelsa:{folder}", "--out", str(out),
            "--layers", "2", "--hidden", "24", "--dim", "8", "--steps", str(steps), "--batch-size", "512",
            "--lr", "0.003", "--eval-every", "10", "--months-per-window", "2", "--no-progress", *extra]


def test_resume_after_kill_9_continues_exactly(tiny_chelsa, tmp_path):
    steps = 40
    # the run kills itself right after its 2nd resumable state (step 20): deterministic on any machine
    cmd = killed_cli("lamina.geo.pretrain:_save_state", 2, _cli(tiny_chelsa, tmp_path / "killed", steps)[3:])
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = tmp_path / "killed" / "state.pt"
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert state.exists(), proc.stderr.decode()[-2000:]
    killed_at = torch.load(state, weights_only=True)["state"]["step"]
    assert killed_at == 20, "killed right after the 2nd state (eval every 10 steps)"
    resumed = subprocess.run(_cli(tiny_chelsa, tmp_path / "killed", steps), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # whatever temporaries the kill left behind (state, history, best/), the resumed run cleaned them up
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["best", "final", "history.json", "state.pt"]
    straight = subprocess.run(_cli(tiny_chelsa, tmp_path / "straight", steps), capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-2000:]
    a, b = _weights(tmp_path / "killed" / "final"), _weights(tmp_path / "straight" / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.slow
def test_torchrun_two_processes(tiny_chelsa, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "lamina.cli", *_cli(tiny_chelsa, tmp_path / "ddp",
                                                                                          30)[3:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((tmp_path / "ddp" / "final" / "config.json").read_text())
    assert doc["metadata"]["training"]["world_size"] == 2
    hist = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert np.isfinite(lamina.geo.load(tmp_path / "ddp" / "final").embed(lon=[1.0], lat=[2.0], month=3)).all()


def test_config_validation():
    with pytest.raises(InputError, match="schedule"):
        PretrainConfig(schedule="linear")
    for bad in (1.0, -0.1, "0.1", True, float("nan")):
        with pytest.raises(InputError, match="val_fraction"):
            PretrainConfig(val_fraction=bad)
    assert PretrainConfig(val_fraction=0.0).in_sample_validation  # every pixel trains: a run to ship
    for bad in (0.0, 1.0, float("nan"), True, "0.7"):
        with pytest.raises(InputError, match="land_share"):
            PretrainConfig(land_share=bad)
    with pytest.raises(InputError, match="land_share.*land_only"):
        PretrainConfig(land_share=0.7, land_only=True)


def test_every_pixel_run_records_in_sample_metrics(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    pretrain(stack, TINY, _cfg(max_steps=20, eval_every=10, val_fraction=0.0, land_share=0.7), tmp_path / "all",
             progress=False)
    meta = json.loads((tmp_path / "all" / "final" / "config.json").read_text())["metadata"]
    assert "heldout_metrics" not in meta and set(meta["insample_metrics"]["per_variable"]) == {"tas", "pr"}
    assert meta["training"]["validation"].startswith("in-sample")
    assert meta["training"]["pretrain_config"]["land_share"] == 0.7


def test_resume_refuses_another_recipe_but_takes_more_time(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    pretrain(stack, TINY, _cfg(max_steps=10), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match=r"another recipe \(land_share: None -> 0.5\)"):
        pretrain(stack, TINY, _cfg(max_steps=10, land_share=0.5), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="lr: 0.003 -> 0.001"):
        pretrain(stack, TINY, _cfg(max_steps=10, lr=1e-3), tmp_path / "r", progress=False)
    # a larger step budget with the constant schedule, or another time budget, continues the same run
    pretrain(stack, TINY, _cfg(max_steps=20, max_minutes=30.0), tmp_path / "r", progress=False)
    assert json.loads((tmp_path / "r" / "history.json").read_text())[-1]["step"] == 20
    with pytest.raises(InputError, match="max_steps"):  # the cosine schedule's shape depends on max_steps
        pretrain(stack, TINY, _cfg(max_steps=30, schedule="cosine"), tmp_path / "r", progress=False)


def _stopped(out):
    return json.loads((out / "final" / "config.json").read_text())["metadata"]["training"]


def test_early_stopping_ends_the_run_after_patience_validations_without_progress(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    # a learning rate so small that validation cannot improve by the 1e-6 the stopping rule asks for
    pretrain(stack, TINY, _cfg(lr=1e-12, eval_every=5, checkpoint_every=5, patience=2), tmp_path / "es",
             progress=False)
    info = _stopped(tmp_path / "es")
    assert info["stopped"] == "early_stopping"
    assert info["steps"] == 15 and info["best_step"] == 5  # first validation best, then two without progress
    assert len(json.loads((tmp_path / "es" / "history.json").read_text())) == 3


def test_max_minutes_stops_cleanly_and_keeps_the_best(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    enc = pretrain(stack, TINY, _cfg(max_minutes=1e-9), tmp_path / "mm", progress=False)
    info = _stopped(tmp_path / "mm")
    assert info["stopped"] == "max_minutes" and info["steps"] == 1
    # the loop left early; the batch prefetch thread was stopped and joined all the same
    assert not [t for t in threading.enumerate() if t.name == "lamina-batch-prefetch"]
    assert np.isfinite(enc.embed(lon=[0.0], lat=[0.0], month=1)).all()
    # a resumed run of a finished one does not train further
    pretrain(stack, TINY, _cfg(max_minutes=1e-9), tmp_path / "mm", progress=False)
    assert _stopped(tmp_path / "mm")["steps"] == 1
    # a rerun with a larger budget continues the run that the clock stopped, to max_steps
    pretrain(stack, TINY, _cfg(max_minutes=60), tmp_path / "mm", progress=False)
    info = _stopped(tmp_path / "mm")
    assert info["stopped"] == "max_steps" and info["steps"] == 150


def _agree_worker(rank, port, results):
    import torch.distributed as dist

    from lamina.geo.pretrain import _agree

    # each rank's own view differs (only rank 1's clock ran out; only rank 0 saw the validation stall):
    # every rank must take rank 0's decision at the same step
    local = {0: ["", "early_stopping", "max_minutes"], 1: ["max_minutes", "", "max_minutes"]}[rank]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        results[rank] = [_agree(view, dist) for view in local]
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_stop_decisions_are_the_same_on_every_rank():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_agree_worker, args=(port, results), nprocs=2, join=True)
        got = dict(results)
    assert got[0] == got[1] == ["", "early_stopping", "max_minutes"]


def test_init_from_continues_a_finished_run_with_a_fresh_schedule_and_names_its_parent(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    pretrain(stack, TINY, _cfg(max_steps=50), tmp_path / "a", progress=False)
    parent = tmp_path / "a" / "final"
    # no step taken: the warm start is the parent exactly (weights and normalisation)
    warm = pretrain(stack, TINY, _cfg(max_steps=1, lr=1e-12, init_from=str(parent)), tmp_path / "w", progress=False)
    ref = lamina.geo.load(parent)
    np.testing.assert_array_equal(warm.mean, ref.mean)
    for k, v in ref.module.state_dict().items():
        torch.testing.assert_close(warm.module.state_dict()[k], v, rtol=0, atol=1e-6)
    # a real continuation improves on the parent and records where it started
    pretrain(stack, TINY, _cfg(max_steps=100, init_from=parent), tmp_path / "b", progress=False)
    doc = json.loads((tmp_path / "b" / "final" / "config.json").read_text())
    rec = doc["metadata"]["training"]["init_from"]
    parent_doc = json.loads((parent / "config.json").read_text())
    assert rec["checkpoint"] == str(parent) and rec["sha256"] == parent_doc["sha256"] and rec["steps"] == 50
    assert doc["metadata"]["heldout_metrics"]["normalised_mse"] < parent_doc["metadata"]["heldout_metrics"][
        "normalised_mse"]
    # refused, with nothing made: another architecture, other variables, a missing checkpoint, a changed parent
    other = EncoderConfig(n_variables=2, dim_hidden=16, num_layers=2, dim_embedding=8)
    with pytest.raises(InputError, match="init_from: .* another architecture"):
        pretrain(stack, other, _cfg(init_from=str(parent)), tmp_path / "x", progress=False)
    tas_pr = chelsa_stack(tiny_chelsa, ["pr", "tas"])
    with pytest.raises(InputError, match="init_from: .* regresses"):
        pretrain(tas_pr, TINY, _cfg(init_from=str(parent)), tmp_path / "y", progress=False)
    with pytest.raises(CheckpointError):
        pretrain(stack, TINY, _cfg(init_from=str(tmp_path / "nothing")), tmp_path / "z", progress=False)
    assert not any((tmp_path / d).exists() for d in "xyz")
    with pytest.raises(InputError, match="another recipe"):
        pretrain(stack, TINY, _cfg(max_steps=100, init_from=str(tmp_path / "w" / "final")), tmp_path / "b",
                 progress=False)
    with pytest.raises(InputError, match="init_from: expected"):
        _cfg(init_from=" ")


def test_cli_init_from_a_missing_checkpoint_is_one_line_and_makes_nothing(tiny_chelsa, tmp_path):
    from typer.testing import CliRunner

    from lamina.cli import app

    argv = _cli(tiny_chelsa, tmp_path / "o", 10, ["--init-from", str(tmp_path / "nothing")])[3:]
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "nothing" in r.output and "Traceback" not in r.output and not (tmp_path / "o").exists()


def test_weighted_mse_counts_each_entry_by_its_variables_weight():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    valid = torch.tensor([[True, True], [True, False]])
    w = torch.tensor([1.0, 3.0])
    assert masked_mse(pred, target, valid, w).item() == pytest.approx((1 + 3 * 4 + 0) / (1 + 3 + 1))
    unweighted = masked_mse(pred, target, valid).item()
    assert masked_mse(pred, target, valid, torch.ones(2)).item() == pytest.approx(unweighted)


@pytest.mark.parametrize("bad", [{"tas": 0}, {"tas": -1.0}, {"tas": float("nan")}, {"tas": "x"}, {"tas": True},
                                 {"tas": 1e4}, {"tas": 1e-46}, {"": 2.0}, {3: 2.0}, [("tas", 2.0)], "tas=2"])
def test_target_weights_are_validated(bad):
    with pytest.raises(InputError, match="target_weights"):
        PretrainConfig(target_weights=bad)


def test_target_weights_are_stored_as_plain_names_and_floats():
    assert PretrainConfig(target_weights={}).target_weights is None  # empty: all weigh 1
    cfg = PretrainConfig(target_weights={np.str_("tas"): np.int64(2)})
    assert cfg.target_weights == {"tas": 2.0} and type(next(iter(cfg.target_weights))) is str  # safe in state.pt


def test_validation_reports_the_unweighted_and_the_weighted_loss():
    from lamina.geo.data.sampling import Batch
    from lamina.geo.encoder import ClimateModule
    from lamina.geo.pretrain import _tensors, evaluate

    rng = np.random.default_rng(0)
    values = rng.normal(size=(64, 2)).astype(np.float32)
    values[::5, 1] = np.nan  # missing entries count in neither loss
    batch = Batch(rng.uniform(-180, 180, 64), rng.uniform(-90, 90, 64), rng.integers(1, 13, 64), values)
    module, mean, std = ClimateModule(TINY), np.zeros(2), np.ones(2)
    x, z, valid = _tensors(module, batch, mean, std)
    with torch.no_grad():
        err2 = ((module(x)[1] - z) ** 2 * valid).double().numpy()
    n = valid.double().numpy().sum(axis=0)
    m = evaluate(module, batch, mean, std, weights=np.array([1.0, 3.0]))
    assert m["loss"] == pytest.approx(err2.sum() / n.sum(), rel=1e-5)
    assert m["weighted_loss"] == pytest.approx((err2[:, 0].sum() + 3 * err2[:, 1].sum()) / (n[0] + 3 * n[1]), rel=1e-5)
    assert "weighted_loss" not in evaluate(module, batch, mean, std)


def test_target_weights_steer_the_fit_are_recorded_and_are_part_of_the_recipe(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "pr"])
    with pytest.raises(InputError, match="'rain' not among the stack's variables \\(tas, pr\\)"):
        pretrain(stack, TINY, _cfg(target_weights={"rain": 2.0}), tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()
    kw = dict(max_steps=100, val_fraction=0.0)
    for name in ("tas", "pr"):  # each run spends (almost) all of the network on one variable
        pretrain(stack, TINY, _cfg(**kw, target_weights={name: 1000.0}), tmp_path / name, progress=False)

    def meta(run):
        return json.loads((tmp_path / run / "final" / "config.json").read_text())["metadata"]

    on_tas, on_pr = (meta(r)["insample_metrics"]["per_variable"] for r in ("tas", "pr"))
    assert on_tas["tas"]["rmse"] < on_pr["tas"]["rmse"] and on_pr["pr"]["rmse"] < on_tas["pr"]["rmse"]
    assert meta("pr")["training"]["pretrain_config"]["target_weights"] == {"pr": 1000.0}
    assert {"normalised_mse", "weighted_mse"} <= set(meta("pr")["insample_metrics"])  # unweighted and objective
    assert "val_weighted_loss" in json.loads((tmp_path / "pr" / "history.json").read_text())[-1]
    with pytest.raises(InputError, match=r"another recipe \(target_weights: \{'pr': 1000.0\} -> None\)"):
        pretrain(stack, TINY, _cfg(max_steps=200, val_fraction=0.0), tmp_path / "pr", progress=False)


@pytest.mark.parametrize(("weights", "message"), [
    ("tas", "--target-weights: expected NAME=VALUE items, got 'tas'"),
    ("tas=2,tas=3", "--target-weights: 'tas' is set twice"),
    (",", "--target-weights: expected NAME=WEIGHT items"),
    ("tas=0", "target_weights['tas']: expected a finite number >= 0.001"),
    ("tas=x", "target_weights['tas']: expected a finite number"),
    ("rain=2", "'rain' not among the stack's variables"),
])
def test_cli_target_weights_errors_are_one_line_and_make_nothing(tiny_chelsa, tmp_path, weights, message):
    from typer.testing import CliRunner

    from lamina.cli import app

    r = CliRunner().invoke(app, _cli(tiny_chelsa, tmp_path / "o", 10, ["--target-weights", weights])[3:])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and message in r.output, r.output
    assert not (tmp_path / "o").exists()
