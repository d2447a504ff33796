import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from lamina.cli import app

from .test_encoder import tiny_encoder

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("enc") / "tiny"
    tiny_encoder().save(path)
    return str(path)


def test_embed_prints_json(ckpt):
    r = runner.invoke(app, ["geo", "embed", "--lon", "8.55", "--lat", "47.37", "--month", "6", "-c", ckpt])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["dim"] == 8 and len(doc["embedding"][0]) == 8
    r = runner.invoke(app, ["geo", "embed", "--lon", "8.55", "--lat", "47.37", "-c", ckpt])
    assert json.loads(r.stdout)["dim"] == 32


def test_reconstruct_prints_units(ckpt):
    r = runner.invoke(app, ["geo", "reconstruct", "--lon", "1", "--lat", "2", "--month", "3", "-c", ckpt])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["units"] == {"t": "degC", "p": "mm"} and set(doc["values"][0]) == {"t", "p"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lon", "8", "--lat", "91", "--month", "1"], "lat: must lie in [-90, 90]"),
        (["--lon", "200", "--lat", "1", "--month", "1"], "--wrap-lon"),
        (["--lon", "8", "--lat", "1", "--month", "13"], "month: must lie in [1, 12]"),
        (["--lon", "nan", "--lat", "1", "--month", "1"], "NaN"),
        (["--lon", "8", "--lon", "9", "--lat", "1", "--month", "1"], "same length"),
        (["--lat", "1"], "give a points table"),
    ],
)
def test_bad_input_exits_2_with_one_line(ckpt, args, message):
    r = runner.invoke(app, ["geo", "embed", *args, "-c", ckpt])
    assert r.exit_code == 2
    assert message in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_unreadable_checkpoint_exits_2(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    r = runner.invoke(app, ["geo", "embed", "--lon", "1", "--lat", "1", "-c", str(tmp_path)])
    assert r.exit_code == 2 and "not a lamina checkpoint" in r.stderr


def test_table_and_wrap(ckpt, tmp_path):
    pd.DataFrame({"lon": [190.0, 5.0], "lat": [1.0, 2.0]}).to_csv(tmp_path / "p.csv", index=False)
    r = runner.invoke(app, ["geo", "embed", str(tmp_path / "p.csv"), "-o", str(tmp_path / "o.parquet"), "-m", "2",
                            "-c", ckpt, "--no-progress"])
    assert r.exit_code == 2 and "at row 0" in r.stderr and not (tmp_path / "o.parquet").exists()
    r = runner.invoke(app, ["geo", "embed", str(tmp_path / "p.csv"), "-o", str(tmp_path / "o.parquet"), "-m", "2",
                            "-c", ckpt, "--no-progress", "--wrap-lon"])
    assert r.exit_code == 0, r.output
    assert pd.read_parquet(tmp_path / "o.parquet").shape == (2, 2 + 8)


def test_map_writes_png(ckpt, tmp_path):
    out = tmp_path / "map.png"
    r = runner.invoke(app, ["geo", "map", "-o", str(out), "-c", ckpt, "--resolution", "10", "--variable", "t"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(app, ["geo", "map", "-o", str(out), "-c", ckpt, "--variable", "zzz"])
    assert r.exit_code == 2 and "not one of" in r.stderr


def test_info(ckpt):
    r = runner.invoke(app, ["geo", "info", "-c", ckpt])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["config"]["dim_embedding"] == 8


@pytest.mark.slow  # reads every source file
def test_sources_lists_every_offline_field_with_provenance():
    from lamina.geo.data.sources import BUNDLED_VARIABLES, SOURCES

    r = runner.invoke(app, ["geo", "sources"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert set(doc) == set(SOURCES)
    assert {k for k, v in doc.items() if v["in_default"]} == set(BUNDLED_VARIABLES)
    for name, entry in doc.items():
        assert entry["name"] == name and entry["units"] and entry["source"] and entry["licence"]
        assert 0 < entry["grid_deg"] <= 5 and len(entry["shape"]) == 2
        assert isinstance(entry["monthly"], bool)
    assert doc["elevation"]["units"] == "m" and not doc["elevation"]["monthly"]


def test_file_writing_commands_print_json_with_provenance(tmp_path):
    """`geo embed FILE`, `geo reconstruct FILE` and `geo raster` print what they wrote as JSON on stdout."""
    from lamina._io import read_checkpoint_config
    from lamina.geo.encoder import default_checkpoint_path

    sha = read_checkpoint_config(default_checkpoint_path())["sha256"]
    (tmp_path / "pts.csv").write_text("lon,lat\n8.55,47.37\n-70,-15\n")
    for cmd in (["embed", str(tmp_path / "pts.csv"), "-o", str(tmp_path / "e.parquet"), "-m", "6"],
                ["reconstruct", str(tmp_path / "pts.csv"), "-o", str(tmp_path / "r.parquet"), "-m", "6"],
                ["raster", "--bbox", "5", "45", "6", "46", "-r", "0.5", "-m", "6", "-o", str(tmp_path / "a.tif")]):
        r = runner.invoke(app, ["geo", *cmd, "--no-progress"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["checkpoint_sha256"] == sha and doc["output"].endswith(cmd[cmd.index("-o") + 1].split("/")[-1])
    assert doc["rows"] == 4 and doc["what"] == "raster"
