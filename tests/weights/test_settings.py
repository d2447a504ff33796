"""Settings are checked where they enter (configs, estimators, CLI flags): one InputError naming the setting, before
any work; never a ValueError / RuntimeError from NumPy or torch later on."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import InputError
from lamina.weights.eval.evaluate import EvalConfig
from lamina.weights.experts import TrainConfig
from lamina.weights.probes.linear import DenseLinearProbe, StatNN
from lamina.weights.probes.probex import ProbeXConfig
from lamina.weights.text.aligner import TextAligner
from lamina.weights.zoo.build import RootConfig, ZooConfig

BAD_SEEDS = [-1, 2**32, True, 1.5, "3", None]


@pytest.mark.parametrize("seed", BAD_SEEDS)
def test_configs_refuse_bad_seeds(seed):
    with pytest.raises(InputError, match=r"^seed: expected an integer in \[0, 4294967295\]"):
        ProbeXConfig(seed=seed)
    with pytest.raises(InputError, match=r"^seed: expected an integer"):
        TrainConfig(seed=seed)
    with pytest.raises(InputError, match=r"^seeds\[1\]: expected an integer"):
        EvalConfig(seeds=[0, seed])
    with pytest.raises(InputError, match=r"^roots\.r\.seed: expected an integer"):
        RootConfig(name="r", seed=seed)
    with pytest.raises(InputError, match=r"^seed: expected an integer"):
        ZooConfig(seed=seed, roots=[{"name": "r"}])


def test_largest_seed_is_accepted():
    assert ProbeXConfig(seed=2**32 - 1).seed == 2**32 - 1
    assert EvalConfig(seeds=[np.int64(5), 2**32 - 1]).seeds == [5, 2**32 - 1]


@pytest.mark.parametrize("lr", [math.inf, math.nan, 0.0, -1e-3, True, "0.1"])
def test_learning_rates_are_finite_and_positive(lr):
    with pytest.raises(InputError, match=r"^lr: expected a finite number > 0"):
        ProbeXConfig(lr=lr)
    with pytest.raises(InputError, match=r"^roots\.r\.lr: expected a finite number > 0"):
        RootConfig(name="r", lr=lr)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("weight_decay", -1e-5, r"^weight_decay: expected a finite number >= 0"),
    ("weight_decay", math.inf, r"^weight_decay: expected a finite number >= 0"),
    ("dropout", 1.0, r"^dropout: expected a finite number >= 0 and < 1"),
    ("dropout", math.nan, r"^dropout: expected a finite number >= 0 and < 1"),
    ("center", "yes", r"^center / normalize: expected True or False"),
])
def test_probex_config_ranges(field, value, message):
    with pytest.raises(InputError, match=message):
        ProbeXConfig(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("workers", 0), ("workers", True), ("dense_seeds", 0),
                                              ("max_models_per_tree", 0), ("energy_images", -1),
                                              ("low_rank", 0), ("low_rank", 2.5)])
def test_eval_config_counts(field, value):
    with pytest.raises(InputError, match=rf"^{field}: expected an integer >= 1"):
        EvalConfig(**{field: value})


def test_eval_config_seeds_and_fractions():
    with pytest.raises(InputError, match="^seeds: expected a non-empty list"):
        EvalConfig(seeds=[])
    with pytest.raises(InputError, match="^seeds: expected distinct seeds"):
        EvalConfig(seeds=[1, 1])
    with pytest.raises(InputError, match="^train_fraction: expected a finite number > 0 and < 1"):
        EvalConfig(train_fraction=math.nan)


def test_eval_config_probex_grid():
    cfg = EvalConfig(probex_grid=[{"activation": "linear", "weight_decay": 1e-3, "r_u": 8}])
    chosen = cfg.candidate(1, seed=4)
    assert (chosen.activation, chosen.weight_decay, chosen.r_u, chosen.seed) == ("linear", 1e-3, 8, 4)
    compact = cfg.candidate(1, seed=4, compact=True)  # the compact expert keeps its own dimensions
    assert (compact.activation, compact.r_u, compact.r_t) == ("linear", cfg.compact.r_u, cfg.compact.r_t)
    assert cfg.candidate(0, seed=4) == ProbeXConfig(seed=4)
    with pytest.raises(InputError, match="^probex_grid: unknown ProbeX setting"):
        EvalConfig(probex_grid=[{"actvation": "linear"}])
    with pytest.raises(InputError, match="^probex_grid: unknown ProbeX setting"):
        EvalConfig(probex_grid=[{"seed": 3}])  # the seeds come from the evaluation
    with pytest.raises(InputError, match="^activation: expected one of"):
        EvalConfig(probex_grid=[{"activation": "tanh"}])
    with pytest.raises(InputError, match="^probex_grid: unknown ProbeX setting"):
        EvalConfig(probex_grid=[{1: 2}])
    with pytest.raises(InputError, match="^probex_grid: an empty or repeated entry"):
        EvalConfig(probex_grid=[{}])
    with pytest.raises(InputError, match="^probex_grid: an empty or repeated entry"):
        EvalConfig(probex_grid=[{"r_u": 8, "activation": "linear"}, {"activation": "linear", "r_u": 8}])
    with pytest.raises(InputError, match="^probex_grid: expected a list of dicts"):
        EvalConfig(probex_grid={"activation": "linear"})


def test_train_config_fraction():
    with pytest.raises(InputError, match=r"^val_fraction: expected a finite number > 0 and < 0.5"):
        TrainConfig(val_fraction=math.inf)


def test_train_config_reader():
    with pytest.raises(InputError, match=r"^reader: expected one of probex, low-rank, auto, got 'ridge'"):
        TrainConfig(reader="ridge")
    with pytest.raises(InputError, match=r"^low_rank: expected an integer >= 1"):
        TrainConfig(low_rank=0)
    assert TrainConfig().reader == "probex"  # ProbeX unless asked otherwise


@pytest.mark.parametrize("config", [EvalConfig, TrainConfig])
def test_text_ranks_are_a_list_of_positive_integers(config):
    for bad, message in (("1,2", r"^text_ranks: expected a list of integer ranks"),
                         (4, r"^text_ranks: expected a list of integer ranks"),
                         ([1, 0], r"^text_ranks\[1\]: expected an integer >= 1"),
                         ([2.0], r"^text_ranks\[0\]: expected an integer"),
                         ([True], r"^text_ranks\[0\]: expected an integer")):
        with pytest.raises(InputError, match=message):
            config(text_ranks=bad)
    assert config().text_ranks == [] and config(text_ranks=(1, 2)).text_ranks == [1, 2]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lr": math.inf}, r"^TextAligner\.lr: expected a finite number > 0"),
    ({"lr": True}, r"^TextAligner\.lr: expected a finite number > 0"),
    ({"weight_decay": -1.0}, r"^TextAligner\.weight_decay: expected a finite number >= 0"),
    ({"seed": -1}, r"^TextAligner\.seed: expected an integer in"),
])
def test_text_aligner_checks_its_settings_at_fit(kwargs, message):
    rng = np.random.default_rng(0)
    R, Y, T = rng.standard_normal((6, 5, 3)), rng.integers(0, 2, (6, 2)), rng.standard_normal((2, 384))
    with pytest.raises(InputError, match=message):
        TextAligner(epochs=1, **kwargs).fit(R, Y, T)


def test_baselines_check_seeds_at_fit():
    X, Y = np.zeros((4, 3, 2), np.float32), np.array([[0, 1], [1, 0], [0, 1], [1, 0]])
    with pytest.raises(InputError, match=r"^DenseLinearProbe\.seed: expected an integer"):
        DenseLinearProbe(seed=-1).fit(X, Y)
    with pytest.raises(InputError, match=r"^DenseLinearProbe\.lr: expected a finite number > 0"):
        DenseLinearProbe(lr=math.inf).fit(X, Y)
    with pytest.raises(InputError, match=r"^StatNN\.seed: expected an integer"):
        StatNN(seed=2**32).fit(np.zeros((4, 2)), Y)


def _error_line(args) -> str:
    r = CliRunner().invoke(app, ["weights", *map(str, args)])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


@pytest.mark.parametrize(("args", "flag"), [
    (("train", "ZOO", "-o", "P", "--seed", "-1"), "--seed"),
    (("train", "ZOO", "-o", "P", "--threads", "0"), "--threads"),
    (("train", "ZOO", "-o", "P", "--epochs", "0"), "--epochs"),
    (("evaluate", "ZOO", "-o", "R", "--seeds", "0,-1"), "--seeds"),
    (("evaluate", "ZOO", "-o", "R", "--workers", "0"), "--workers"),
    (("evaluate", "ZOO", "-o", "R", "--dense-seeds", "0"), "--dense-seeds"),
    (("evaluate", "ZOO", "-o", "R", "--low-rank", "0"), "--low-rank"),
    (("train", "ZOO", "-o", "P", "--low-rank", "0"), "--low-rank"),
    (("train", "ZOO", "-o", "P", "--reader", "ridge"), "--reader"),
    (("evaluate", "ZOO", "-o", "R", "--max-models", "0"), "--max-models"),
    (("zoo", "build", "-o", "ZOO", "--workers", "0", "--quiet"), "--workers"),
])
def test_cli_flags_are_checked_before_any_work(tmp_path, args, flag):
    import torch

    threads = torch.get_num_threads()
    args = [str(tmp_path / a) if a in ("ZOO", "P", "R") else a for a in args]
    line = _error_line(args)
    assert line.startswith(f"error: {flag}: expected"), line  # the flag, not a missing zoo
    assert torch.get_num_threads() == threads
    assert not any(tmp_path.iterdir())  # nothing created


def test_sweep_choice_needs_evidence_for_other_settings():
    from lamina.weights.eval.evaluate import _best_run

    def run(layer, variant, val):
        return {"layer": layer, "variant": variant, "val_map": val}

    nan = math.nan
    # no run scored (too few validation models): the default settings, never a grid entry, on the last layer
    assert _best_run([run("a", 0, nan), run("a", 1, nan), run("b", 0, nan), run("b", 1, nan)]) == run("b", 0, nan)
    # scored runs: the best, the first of equals; unscored runs never win
    runs = [run("a", 0, 0.4), run("a", 1, nan), run("b", 0, 0.6), run("b", 1, 0.6)]
    assert _best_run(runs) is runs[2]
    assert _best_run([run("a", 0, nan), run("a", 1, 0.1)])["variant"] == 1


def test_the_dense_probe_never_takes_the_settings_of_a_ridge_start():
    """Where the sweep picks ProbeX's closed-form ridge start (few epochs at a small step), the dense logistic probe,
    which starts from zero, takes the best entry without that start; with none, ProbeX's default training."""
    from lamina.weights.eval.evaluate import _dense_settings, _dense_variant

    cfg = EvalConfig(probex_grid=[{"init": "ridge", "activation": "linear", "epochs": 20, "lr": 3e-4},
                                  {"activation": "linear", "weight_decay": 1e-3, "epochs": 60}])
    runs = [{"variant": 0, "val_map": 0.50}, {"variant": 1, "val_map": 0.70}, {"variant": 2, "val_map": 0.60},
            {"variant": 2, "val_map": float("nan")}]
    assert _dense_variant(cfg, runs) == 2
    assert _dense_settings(cfg, 2) == {"epochs": 60, "lr": 3e-3, "weight_decay": 1e-3, "batch_size": 32}
    assert _dense_variant(cfg, [{"variant": 1, "val_map": 0.7}]) == 0  # only a ridge start scored: the default
    assert _dense_variant(cfg, [{"variant": 2, "val_map": float("nan")}]) == 0  # nothing scored: the default
    ridge_only = EvalConfig(probex={"init": "ridge", "activation": "linear", "epochs": 0})
    assert _dense_variant(ridge_only, [{"variant": 0, "val_map": 0.7}]) is None
    assert _dense_settings(ridge_only, None)["epochs"] == 20  # ProbeXConfig's default training, not epochs=0


def test_a_grid_entry_that_the_compact_expert_cannot_take_is_refused_up_front():
    """The compact expert takes each entry's settings over its own dimensions and activation: an entry that only
    works with the base's (a ridge start over a linear base, the compact one ReLU) fails before any work."""
    from lamina.weights.probes.probex import ProbeXConfig

    with pytest.raises(InputError, match="init='ridge' needs activation='linear'"):
        EvalConfig(probex=ProbeXConfig(activation="linear"), probex_grid=[{"init": "ridge", "epochs": 0}])
    EvalConfig(probex=ProbeXConfig(activation="linear"), compact=ProbeXConfig(r_u=4, r_v=4, r_t=4,
               activation="linear"), probex_grid=[{"init": "ridge", "epochs": 0}])
