import json

import pytest
from typer.testing import CliRunner

from lamina.cli import app
from lamina.seq.targets import TARGETS

runner = CliRunner()


def test_construct_writes_a_report(tmp_path):
    out = tmp_path / "c"
    result = runner.invoke(app, ["seq", "construct", "smooth-cummax", "--n", "2", "--d", "1", "--eps", "0.02",
                                 "--param", "tau=5", "--verify-random", "500", "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "construct.json").read_text())
    assert summary["certificate_holds"] and summary["certificate"]["total"] <= 0.02
    assert summary["target"]["tau"] == 5.0
    assert (out / "construct.md").read_text().startswith("# Constructed")
    assert (out / "figures" / "attention.png").stat().st_size > 1000
    assert (out / "model" / "model.safetensors").is_file()


@pytest.mark.slow  # ~18 s on 2 loaded cores
def test_train_and_sweep_write_reports(tmp_path):
    out = tmp_path / "t"
    args = ["--n", "3", "--d", "1", "--d-model", "8", "--heads", "2", "--d-ff", "8", "--batch-size", "16",
            "--num-train", "200", "--num-test", "50", "--threads", "1"]
    result = runner.invoke(app, ["seq", "train", "moving-average", *args, "--steps", "20", "--eval-every", "10",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "train.json").read_text())
    assert summary["metrics"]["steps"] == 20 and {"linear", "mean_field"} <= set(summary["baselines"])
    for name in ("learning_curve.png", "attention.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    out = tmp_path / "s"
    result = runner.invoke(app, ["seq", "sweep", "moving-average", *args, "--vary", "heads", "--values", "1,2",
                                 "--steps", "10", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "sweep.json").read_text())["runs"]) == 2
    assert (out / "figures" / "error_vs_heads.png").is_file()


def test_train_icl_reports_the_gd_comparison(tmp_path):
    result = runner.invoke(app, ["seq", "train", "icl-regression", "--n", "6", "--d", "2", "--heads", "1",
                                 "--d-model", "4", "--d-ff", "0", "--positional", "none", "--attention", "linear",
                                 "--steps", "20", "--num-train", "0", "--num-test", "50", "--eval-every", "10",
                                 "--batch-size", "16", "--threads", "1", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "one GD step" in result.output
    assert "gamma_vs_eta_identity" in json.loads((tmp_path / "train.json").read_text())["gd_comparison"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["construct", "sort", "--domain", "1", "0"], "domain"),
        (["construct", "random-mlp", "--eps", "0"], "eps"),
        (["construct", "sort", "--n", "0"], "n: expected an integer >= 1"),
        (["construct", "softmax-mixing", "--n", "20", "--d", "5"], "curse of dimensionality"),
        (["construct", "nope"], "target: expected one of"),
        (["construct", "icl-regression"], "sampled task"),
        (["construct", "sort", "--param", "oops"], "key=value"),
        (["train", "sort", "--positional", "rotary", "--steps", "1"], "positional"),
        (["train", "sort", "--init", "magic"], "--init"),
        (["sweep", "sort", "--values", "1,x"], "--values"),
        (["sweep", "sort", "--vary", "depth", "--values", "1", "--steps", "1"], "vary"),
        # certificates never lie: a Lipschitz constant that is not a positive number, or one that sampled
        # difference quotients refute, is refused on every route (the issue: certified 1e-13, measured 0.53)
        (["construct", "sine-product", "--n", "2", "--d", "1", "--size", "2", "2", "--method", "grid",
          "--lipschitz", "-1000"], "lipschitz: expected a finite number > 0"),
        (["construct", "sine-product", "--n", "2", "--d", "1", "--eps", "0.05", "--method", "grid",
          "--lipschitz", "-1000"], "lipschitz"),
        (["construct", "smooth-cummax", "--n", "2", "--d", "1", "--eps", "0.05", "--lipschitz", "-1"], "lipschitz"),
        (["construct", "sine-product", "--n", "2", "--lipschitz", "nan"], "lipschitz"),
        (["construct", "sine-product", "--n", "2", "--lipschitz", "inf"], "lipschitz"),
        (["construct", "sine-product", "--n", "2", "--lipschitz", "0.5", "--method", "grid"],
         "lipschitz: 0.5 is below"),
        (["construct", "sort", "--eps", "nan"], "eps"),
        (["construct", "sort", "--eps", "-0.1"], "eps"),
        (["construct", "sort", "--beta", "inf"], "beta"),
        (["construct", "sort", "--max-params", "-1"], "max_params"),
        (["construct", "sort", "--max-evaluations", "nan"], "max_evaluations"),
        (["construct", "sort", "--verify-random", "0"], "verify_random"),
        (["construct", "sort", "--seed", "-1"], "seed"),
        (["construct", "sine-product", "--n", "2", "--size", "0", "3"], "size"),
        (["train", "sort", "--lr", "nan", "--steps", "1"], "lr"),
        (["train", "sort", "--time-limit", "-1", "--steps", "1"], "time_limit_s"),
        (["train", "sort", "--time-limit", "inf", "--steps", "1"], "time_limit_s"),
        (["train", "sort", "--steps", "0"], "steps"),
        (["compare", "smooth-cummax", "--eps", "0,0.1"], "--eps"),
        (["compare", "smooth-cummax", "--eps", "nan"], "--eps"),
        (["compare", "smooth-cummax", "--eps", "0.1,x"], "--eps"),
        (["compare", "smooth-cummax", "--widths", "4,x"], "--widths"),
        (["compare", "smooth-cummax", "--widths", "0"], "--widths"),
        (["compare", "smooth-cummax", "--n", "0"], "n: expected an integer >= 1"),
        (["compare", "nope"], "target: expected one of"),
        (["compare", "icl-regression"], "sampled task"),
        (["compare", "smooth-cummax", "--param", "tau=-1"], "tau"),
        (["construct", "smooth-cummax", "--param", "tau=" + "9" * 400], "tau: expected a finite number > 0"),
        (["construct", "sort", "--seed", str(2**64)], "seed: expected an integer in [0, 4294967295]"),
        (["train", "sort", "--seed", str(2**64), "--steps", "1"], "seed: expected an integer in [0, 4294967295]"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["seq", *args, "-o", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not (tmp_path / "x").exists()  # nothing half-written is left behind


def test_targets_lists_every_target_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["seq", "targets"])
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []
    names = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert names == [*sorted(TARGETS), "icl-regression"]
    for line in result.output.splitlines():  # each with the first line of its description
        assert len(line.split(maxsplit=1)) == 2


def test_compare_writes_both_sides_and_the_figure(tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["seq", "compare", "moving-average", "--n", "2", "--d", "1", "--eps", "0.1,0.01",
                                 "--widths", "4", "--d-model", "8", "--steps", "20", "--threads", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "compare.json").read_text())
    constructed, trained = summary["constructed"], summary["trained"]
    assert [r["eps"] for r in constructed] == [0.1, 0.01]
    for r in constructed:  # certified within eps, and above the measured error (up to float64 rounding)
        assert r["measured_sup"] <= r["certified"] + 1e-12 and r["certified"] <= r["eps"], r
    assert len(trained) == 1 and trained[0]["d_ff"] == 4 and trained[0]["measured_sup"] > 0
    assert (out / "compare.md").read_text().startswith("# Constructed versus trained")
    assert (out / "figures" / "construct_vs_train.png").stat().st_size > 1000
    assert "report:" in result.output and "constructed:" in result.output


def test_train_stops_at_the_time_limit(tmp_path):
    out = tmp_path / "t"
    result = runner.invoke(app, ["seq", "train", "moving-average", "--n", "3", "--d", "1", "--d-model", "8",
                                 "--heads", "2", "--d-ff", "8", "--batch-size", "8", "--num-train", "0",
                                 "--num-test", "20", "--steps", "1000000", "--eval-every", "100000",
                                 "--time-limit", "0.5", "--threads", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "train.json").read_text())["metrics"]
    assert metrics["stopped_by"] == "time" and 0 < metrics["steps"] < 1_000_000


def test_train_resuming_from_a_corrupt_checkpoint_exits_2_with_one_line(tmp_path):
    out = tmp_path / "t"
    args = ["seq", "train", "moving-average", "--n", "3", "--d", "1", "--d-model", "8", "--heads", "2", "--d-ff",
            "8", "--batch-size", "8", "--num-train", "50", "--num-test", "20", "--steps", "4", "--eval-every", "2",
            "--threads", "1", "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    weights = out / "checkpoint" / "state" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint: "), result.output
