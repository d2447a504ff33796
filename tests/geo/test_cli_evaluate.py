"""``lamina geo evaluate``, ``probe-fit`` and ``probe-predict`` on the CLI (tiny UNTRAINED encoders, real tasks)."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from lamina.cli import app

from .test_encoder import tiny_encoder

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    tiny_encoder().save(root / "dim8")
    _encoder_with_dim(4).save(root / "dim4")
    return root


def _encoder_with_dim(dim: int):
    """An UNTRAINED small encoder with a ``dim``-d embedding (random weights)."""
    import torch

    from lamina.geo.data.grid import Variable
    from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig

    torch.manual_seed(1)
    config = EncoderConfig(n_variables=1, dim_hidden=16, num_layers=2, dim_embedding=dim)
    return ClimateEncoder(ClimateModule(config), [Variable("t", "degC")], [10.0], [5.0], {"note": "synthetic"})


def _one_line_error(r, message):
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "koppen,biomes"], "--tasks: unknown task 'biomes'"),
        (["--encoders", "satclip"], "--encoders: unknown method 'satclip'"),
        (["--splits", "diagonal"], "--splits: expected some of random, block"),
        (["--seeds", "0"], "--seeds: expected an integer >= 1"),
        (["-c", "/nonexistent/ckpt"], "--checkpoint: /nonexistent/ckpt does not exist"),
    ],
)
def test_evaluate_bad_input_exits_2(tmp_path, args, message):
    r = runner.invoke(app, ["geo", "evaluate", *args, "-o", str(tmp_path / "r")])
    _one_line_error(r, message)
    assert not (tmp_path / "r").exists()


def test_evaluate_quick_writes_report(ckpts, tmp_path):
    out = tmp_path / "report"
    r = runner.invoke(app, ["geo", "evaluate", "--quick", "--tasks", "city-temperature", "--encoders",
                            "climplicit,lonlat", "--splits", "random", "--jobs", "1", "-c", str(ckpts / "dim8"),
                            "-o", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "| climplicit |" in r.stderr and "| lonlat |" in r.stderr  # the table for people; stdout: JSON
    assert json.loads(r.stdout)["written"][:2] == [str(out / "results.json"), str(out / "results.md")]
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["seeds"] == [0, 1] and doc["checkpoint"] == str(ckpts / "dim8")
    assert (out / "city-temperature.png").is_file()


def test_probe_fit_and_predict(ckpts, tmp_path):
    probe = tmp_path / "probe"
    r = runner.invoke(app, ["geo", "probe-fit", "city-temperature", "-c", str(ckpts / "dim8"), "-o", str(probe)])
    assert r.exit_code == 0, r.output
    pd.DataFrame({"x": [8.55, -9.14], "y": [47.37, 38.72]}).to_csv(tmp_path / "pts.csv", index=False)
    out = tmp_path / "pred.parquet"
    r = runner.invoke(app, ["geo", "probe-predict", str(probe), str(tmp_path / "pts.csv"), "--lon-col", "x",
                            "--lat-col", "y", "-o", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(out)
    assert list(table.columns) == ["lon", "lat", *"jan feb mar apr may jun jul aug sep oct nov dec".split()]
    assert len(table) == 2 and table["jul"].notna().all()


def test_probe_classifier_outputs_labels_and_probabilities(tmp_path):
    probe = tmp_path / "probe"
    r = runner.invoke(app, ["geo", "probe-fit", "koppen-main", "--encoder", "sh10", "--n", "300", "-o", str(probe)])
    assert r.exit_code == 0, r.output
    pd.DataFrame({"lon": [2.35, 31.2], "lat": [48.85, 30.0]}).to_csv(tmp_path / "pts.csv", index=False)
    r = runner.invoke(app, ["geo", "probe-predict", str(probe), str(tmp_path / "pts.csv"), "-o",
                            str(tmp_path / "pred.csv")])  # fmt: skip
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "pred.csv")
    assert set(table["label"]) <= {"A tropical", "B arid", "C temperate", "D continental", "E polar"}
    p_cols = [c for c in table.columns if c.startswith("p_")]
    assert len(p_cols) == 5 and (table[p_cols].sum(axis=1) - 1).abs().max() < 1e-9


@pytest.fixture(scope="module")
def fitted(ckpts, tmp_path_factory):
    probe = tmp_path_factory.mktemp("probe") / "p"
    r = runner.invoke(app, ["geo", "probe-fit", "city-temperature", "-c", str(ckpts / "dim8"), "-o", str(probe)])
    assert r.exit_code == 0, r.output
    return probe


def test_checkpoint_with_another_embedding_size_exits_2(ckpts, fitted, tmp_path):
    pd.DataFrame({"lon": [8.55], "lat": [47.37]}).to_csv(tmp_path / "pts.csv", index=False)
    out = tmp_path / "pred.csv"
    r = runner.invoke(app, ["geo", "probe-predict", str(fitted), str(tmp_path / "pts.csv"), "-c",
                            str(ckpts / "dim4"), "-o", str(out)])  # fmt: skip
    _one_line_error(r, "gives 16 features per point, but the probe")
    assert "fitted on 32" in r.stderr and not out.exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"lon": [8.55, 10.0], "lat": [47.37, 95.0]}, "lat: must lie in [-90, 90], got 95 at index 1"),
        ({"lon": [200.0], "lat": [0.0]}, "--wrap-lon"),
        ({"lon": [float("nan")], "lat": [0.0]}, "lon: contains NaN"),
        ({"lon": ["east"], "lat": [0.0]}, "lon: expected real numbers, got str 'east'"),
        ({"longitude": [1.0], "lat": [0.0]}, "has no column 'lon'"),
    ],
)
def test_points_file_with_invalid_coordinates_exits_2(fitted, tmp_path, rows, message):
    pd.DataFrame(rows).to_csv(tmp_path / "pts.csv", index=False)
    out = tmp_path / "pred.csv"
    r = runner.invoke(app, ["geo", "probe-predict", str(fitted), str(tmp_path / "pts.csv"), "-o", str(out)])
    _one_line_error(r, message)
    assert not out.exists()


def test_probe_fit_bad_input_exits_2(ckpts, tmp_path):
    r = runner.invoke(app, ["geo", "probe-fit", "biomes", "-o", str(tmp_path / "p")])
    _one_line_error(r, "task: unknown task 'biomes'")
    r = runner.invoke(app, ["geo", "probe-fit", "koppen", "--encoder", "mlp", "-o", str(tmp_path / "p")])
    _one_line_error(r, "encoder: expected one of")
    r = runner.invoke(app, ["geo", "probe-predict", str(ckpts / "dim8"), "pts.csv", "-o", str(tmp_path / "o.csv")])
    _one_line_error(r, "not a lamina probe")


def test_a_probe_refuses_another_encoder_of_the_same_size(ckpts, fitted, tmp_path):
    """Same feature size, other weights: the probe records its encoder's sha256 and refuses the other one."""
    import torch

    from tests.geo.test_encoder import tiny_encoder

    other = tmp_path / "other"
    enc = tiny_encoder()
    with torch.no_grad():
        next(enc.module.parameters()).add_(0.5)
    enc.save(other)
    pd.DataFrame({"lon": [8.55], "lat": [47.37]}).to_csv(tmp_path / "pts.csv", index=False)
    r = runner.invoke(app, ["geo", "probe-predict", str(fitted), str(tmp_path / "pts.csv"), "-c", str(other),
                            "-o", str(tmp_path / "pred.csv")])  # fmt: skip
    _one_line_error(r, "was fitted on the encoder with sha256")
    assert not (tmp_path / "pred.csv").exists()


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999999"])
def test_bad_seeds_exit_2_and_leave_nothing(ckpts, tmp_path, seed):
    r = runner.invoke(app, ["geo", "probe-fit", "city-temperature", "-c", str(ckpts / "dim8"), "--seed", seed,
                            "-o", str(tmp_path / "p")])
    _one_line_error(r, "seed: expected an integer in [0,")
    r = runner.invoke(app, ["geo", "raster", "--bbox", "5", "45", "6", "46", "-r", "0.5", "--pca", "2", "--seed",
                            seed, "-c", str(ckpts / "dim8"), "-o", str(tmp_path / "r.tif")])
    _one_line_error(r, "seed: expected an integer in [0,")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
