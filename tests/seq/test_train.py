import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lamina._io import load_checkpoint
from lamina.errors import CheckpointError, InputError
from lamina.seq.model import SeqConfig, SingleLayerTransformer, save_model
from lamina.seq.targets import MovingAverage
from lamina.seq.train import TrainConfig, baselines, gather_init, lr_at, relative_mse, train


def _small(task, **kw):
    cfg = SeqConfig(n_ctx=task.n, d_in=task.d, d_out=task.d_out, d_model=16, n_heads=4, d_ff=32, **kw)
    torch.manual_seed(0)
    return SingleLayerTransformer(cfg)


def test_training_learns_a_position_dependent_map():
    task = MovingAverage(4, 1, window=2)
    model = _small(task)
    cfg = TrainConfig(steps=400, batch_size=64, lr=1e-2, warmup_steps=20, num_train=None, num_test=500,
                      eval_every=200, threads=1)
    result = train(model, task, cfg, progress=False)
    first, last = result.history[0]["rel_mse"], result.metrics["rel_mse"]
    assert last < 0.1 and last < first
    assert result.metrics["steps"] == 400 and result.metrics["stopped_by"] == "steps"
    assert result.metrics["n_params"] == model.n_params


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path):
    task = MovingAverage(3, 1, window=2)
    cfg = TrainConfig(steps=60, batch_size=16, num_train=200, num_test=50, eval_every=10, checkpoint_every=20,
                      threads=1, warmup_steps=5)
    straight = train(_small(task), task, cfg, progress=False)

    def interrupt(rec):
        if rec["step"] == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_small(task), task, cfg, checkpoint_dir=tmp_path, progress=False, callback=interrupt)
    resumed = train(_small(task), task, cfg, checkpoint_dir=tmp_path, progress=False)  # from step 20
    x = np.random.default_rng(0).uniform(size=(8, 3, 1))
    np.testing.assert_allclose(resumed.model.predict(x), straight.model.predict(x), rtol=1e-5, atol=1e-6)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in straight.history]


def test_resume_from_the_end_of_a_run_is_a_no_op(tmp_path):
    task = MovingAverage(3, 1, window=2)
    cfg = TrainConfig(steps=40, batch_size=16, num_train=200, num_test=50, eval_every=20, threads=1)
    first = train(_small(task), task, cfg, checkpoint_dir=tmp_path, progress=False)
    again = train(_small(task), task, cfg, checkpoint_dir=tmp_path, progress=False)
    x = np.random.default_rng(0).uniform(size=(8, 3, 1))
    np.testing.assert_array_equal(first.model.predict(x), again.model.predict(x))
    other = SingleLayerTransformer(SeqConfig(n_ctx=3, d_in=1, d_model=8))
    with pytest.raises(InputError, match="another architecture"):
        train(other, task, cfg, checkpoint_dir=tmp_path, progress=False)


def test_time_limit_stops_the_run():
    task = MovingAverage(3, 1)
    cfg = TrainConfig(steps=10**6, batch_size=8, num_train=None, num_test=20, eval_every=10**5,
                      time_limit_s=0.5, threads=1)
    result = train(_small(task), task, cfg, progress=False)
    assert result.metrics["stopped_by"] == "time" and result.metrics["steps"] < 10**6


def test_baselines_on_a_linear_target_and_the_mean_field_gap():
    task = MovingAverage(6, 1, window=3)
    rng = np.random.default_rng(0)
    xtr, ytr = task.sample(2000, rng)
    xte, yte = task.sample(500, rng)
    lines = baselines(task, xtr, ytr, xte, yte)
    assert lines["linear"] < 1e-20  # the target is linear in vec(X)
    assert lines["mean_field"] > 0.1  # (x_i, mean x) cannot express a window of 3 out of 6 tokens


def test_relative_mse():
    y = np.array([[1.0], [3.0]])
    assert relative_mse(y, y) == 0.0
    assert relative_mse(np.full_like(y, 2.0), y) == pytest.approx(1.0)


def test_gather_init_points_every_head_at_its_position():
    model = SingleLayerTransformer(SeqConfig(n_ctx=6, d_in=2, d_model=16, n_heads=6, d_head=2, d_ff=8))  # 16 >= 6+2+1
    gather_init(model, beta=6.0)
    x = torch.rand(10, 6, 2)
    with torch.no_grad():
        _, pattern = model(x, return_attention=True)  # (B, H, L, L)
    for h in range(6):
        assert torch.all(pattern[:, h, :, h] > 0.9)
    with pytest.raises(InputError, match="gather_init"):
        gather_init(SingleLayerTransformer(SeqConfig(n_ctx=6, d_in=2, d_model=4)))


@pytest.mark.parametrize("warmup, floor", [(10, 0.1), (0, 0.0), (50, 0.5)])
def test_learning_rate_warms_up_then_decays_to_its_floor(warmup, floor):
    cfg = TrainConfig(lr=3e-3, warmup_steps=warmup, min_lr_ratio=floor, steps=200)
    rates = np.array([lr_at(cfg, step / cfg.steps, step) for step in range(cfg.steps + 1)])
    peak = max(warmup - 1, 0)
    assert np.all(rates[:-1] > 0) and np.all(rates <= cfg.lr * (1 + 1e-12))  # the last one is 0 when floor == 0
    assert np.all(rates[peak:] >= cfg.lr * floor - 1e-15)
    assert np.all(np.diff(rates[: peak + 1]) > 0)  # rises through the warm-up ...
    assert rates[peak] == pytest.approx(cfg.lr)  # ... to the peak
    assert np.all(np.diff(rates[peak:]) <= 1e-15)  # then never rises again
    assert rates[-1] == pytest.approx(cfg.lr * floor, abs=1e-15)  # and ends at lr * min_lr_ratio


@pytest.mark.parametrize(
    "kw, match",
    [(dict(steps=0), "steps"), (dict(lr=0.0), "lr"), (dict(num_train=0), "num_train"),
     (dict(time_limit_s=-1.0), "time_limit_s"), (dict(min_lr_ratio=2.0), "min_lr_ratio"), (dict(seed=-1), "seed"),
     (dict(seed=2**64), r"seed: expected an integer in \[0, 4294967295\]"), (dict(steps=5.0), "steps")],
)
def test_train_config_validation(kw, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**kw)


def test_model_must_fit_the_task():
    task = MovingAverage(4, 2)
    model = SingleLayerTransformer(SeqConfig(n_ctx=4, d_in=1, d_model=8))
    with pytest.raises(InputError, match="does not fit the task"):
        train(model, task, TrainConfig(steps=1), progress=False)


CKPT_CFG = TrainConfig(steps=30, batch_size=8, num_train=100, num_test=20, eval_every=10, checkpoint_every=10,
                       threads=1, warmup_steps=2)


def test_model_and_optimiser_are_one_checkpoint(tmp_path):
    task = MovingAverage(3, 1, window=2)
    train(_small(task), task, CKPT_CFG, checkpoint_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]  # no separate model/ and optimizer.pt
    tensors, doc = load_checkpoint(tmp_path / "state", kind="seq.TrainState")
    assert doc["metadata"]["step"] == 30
    assert any(k.startswith("model.") for k in tensors) and any(k.endswith(".exp_avg_sq") for k in tensors)


def test_a_save_killed_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    import safetensors.numpy

    task = MovingAverage(3, 1, window=2)
    real, calls = safetensors.numpy.save_file, []

    def dies_on_second_save(arrays, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"\0" * 100)  # a partial file, then the process is gone
            raise KeyboardInterrupt
        return real(arrays, path, *args, **kwargs)

    monkeypatch.setattr(safetensors.numpy, "save_file", dies_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        train(_small(task), task, CKPT_CFG, checkpoint_dir=tmp_path, progress=False)
    monkeypatch.setattr(safetensors.numpy, "save_file", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]  # the temporary sibling is gone
    _, doc = load_checkpoint(tmp_path / "state", kind="seq.TrainState")
    assert doc["metadata"]["step"] == 10
    resumed = train(_small(task), task, CKPT_CFG, checkpoint_dir=tmp_path, progress=False)
    straight = train(_small(task), task, CKPT_CFG, progress=False)
    x = np.random.default_rng(0).uniform(size=(8, 3, 1))
    np.testing.assert_allclose(resumed.model.predict(x), straight.model.predict(x), rtol=1e-5, atol=1e-6)


def _truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _random_bytes(p):
    p.write_bytes(np.random.default_rng(0).bytes(4096))


def _empty(p):
    p.write_bytes(b"")


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
@pytest.mark.parametrize("damage", [_truncate, _random_bytes, _empty])
def test_resuming_from_a_damaged_checkpoint_is_a_clear_error(tmp_path, name, damage):
    task = MovingAverage(3, 1, window=2)
    train(_small(task), task, CKPT_CFG, checkpoint_dir=tmp_path, progress=False)
    damage(tmp_path / "state" / name)
    with pytest.raises(CheckpointError, match=r"^checkpoint: "):
        train(_small(task), task, CKPT_CFG, checkpoint_dir=tmp_path, progress=False)


def _legacy_checkpoint(directory, task):
    """The layout of earlier versions: model/ and optimizer.pt written one after the other."""
    model = _small(task)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(4, task.n, task.d)).sum().backward()
    opt.step()
    save_model(model, directory / "model", metadata={"step": 7, "history": [], "elapsed_s": 1.0})
    torch.save({"step": 7, "optimizer": opt.state_dict()}, directory / "optimizer.pt")
    return model


def test_a_checkpoint_of_the_earlier_layout_resumes_and_a_damaged_one_is_refused(tmp_path):
    task = MovingAverage(3, 1, window=2)
    cfg = TrainConfig(steps=7, batch_size=8, num_train=100, num_test=20, eval_every=10, threads=1)
    saved = _legacy_checkpoint(tmp_path, task)
    result = train(_small(task), task, cfg, checkpoint_dir=tmp_path, progress=False)  # step 7 of 7: nothing to do
    x = np.random.default_rng(0).uniform(size=(4, 3, 1))
    np.testing.assert_array_equal(result.model.predict(x), saved.predict(x))
    for bad in (b"", *(np.random.default_rng(seed).bytes(2048) for seed in range(5)), b"\x80\x02}q\x00."):
        shutil.rmtree(tmp_path / "state", ignore_errors=True)
        (tmp_path / "optimizer.pt").write_bytes(bad)
        with pytest.raises(CheckpointError, match="cannot resume"):
            train(_small(task), task, cfg, checkpoint_dir=tmp_path, progress=False)


def test_an_earlier_checkpoint_with_pickled_code_is_not_executed(tmp_path):
    task = MovingAverage(3, 1, window=2)
    _legacy_checkpoint(tmp_path, task)
    torch.save({"step": 7, "optimizer": _Evil()}, tmp_path / "optimizer.pt")  # weights_only=True refuses objects
    with pytest.raises(CheckpointError, match="cannot resume"):
        train(_small(task), task, TrainConfig(steps=8, threads=1, num_train=50, num_test=10), checkpoint_dir=tmp_path,
              progress=False)
    assert not _Evil.ran


class _Evil:
    ran = False

    def __reduce__(self):
        return (_Evil._run, ())

    @staticmethod
    def _run():
        _Evil.ran = True
        return {}


def test_resuming_refuses_another_task_or_config_but_not_more_steps(tmp_path):
    task = MovingAverage(3, 1, window=2)
    cfg = TrainConfig(steps=10, batch_size=8, num_train=50, num_test=20, eval_every=5, threads=1, warmup_steps=0)
    train(_small(task), task, cfg, checkpoint_dir=tmp_path, progress=False)
    other_task = MovingAverage(3, 1, window=3)  # same n, d, d_out: the architecture check alone lets it through
    with pytest.raises(InputError, match=r"checkpoint_dir: .* was trained on another task \(window: 2 -> 3\); "
                                         r"use a new directory"):
        train(_small(other_task), other_task, cfg, checkpoint_dir=tmp_path, progress=False)
    for changed in (dict(lr=1e-3), dict(seed=1), dict(num_train=60)):
        with pytest.raises(InputError, match=f"another config \\({next(iter(changed))}: "):
            train(_small(task), task, replace(cfg, **changed), checkpoint_dir=tmp_path, progress=False)
    longer = train(_small(task), task, replace(cfg, steps=14, eval_every=7, threads=2), checkpoint_dir=tmp_path,
                   progress=False)
    assert longer.metrics["steps"] == 14 and [h["step"] for h in longer.history][:2] == [5, 10]
