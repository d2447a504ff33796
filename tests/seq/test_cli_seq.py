import json

import pytest
from typer.testing import CliRunner

from lamina.cli import app

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
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["seq", *args, "-o", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
