"""Issue 27 for lamina geo (items 1, 5, 6, 11): sizes checked against memory before anything is allocated or a
work folder is made; GeoPackage layers named, never the first one taken silently; Dask partition jobs that
recompute replaced inputs, fail in one line and leave no job file behind an unreachable scheduler; booleans
refused where numbers are meant; messages that name the user's path, not a hidden temporary.

Tiny untrained encoder, synthetic points; the Dask cluster runs in this process (threads), so the worker's
logging can be watched.
"""

import logging

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import InputError
from lamina.geo.encoder import load
from lamina.geo.raster import embed_grid
from lamina.geo.raster_file import work_dir

from ..cli_checks import fails_cleanly as _fails_cleanly
from ..cli_checks import only as _only

runner = CliRunner()


# ---------------------------------------------------------------------------------------------- rasters


@pytest.mark.parametrize("args, words", [
    (["--bbox", "-180", "-90", "180", "90", "-r", "1e-6", "--force"], ["resolution:", "of memory"]),
    (["--bbox", "-180", "-90", "180", "90", "-r", "0.001", "--force", "--block-rows", "100000"],
     ["block_rows:", "of memory"]),
    (["--bbox", "0", "0", "1", "1", "-r", "1e-320"], ["resolution:", "pixels across the bbox"]),
    (["--bbox", "0", "0", "1", "1", "-r", "0.5", "--pca", "2", "--seed", "-1"], ["seed:"]),
    (["--bbox", "0", "0", "1", "1", "-r", "0.5", "--pca", "2", "--seed", "99999999999999999999999"], ["seed:"]),
])
@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_raster_sizes_and_seeds_are_refused_before_a_work_folder_is_made(ckpt, tmp_path, args, words, suffix):
    out = tmp_path / f"x{suffix}"
    r = runner.invoke(app, ["geo", "raster", *args, "-o", str(out), "-c", str(ckpt), "--no-progress"])
    _fails_cleanly(r, *words)
    _only(tmp_path)  # no output, no .x.tif.~lamina-work


def test_raster_errors_name_the_users_path_not_the_hidden_work_folder(ckpt, tmp_path):
    out = tmp_path / "x.tif"
    work_dir(out).write_text("a file where lamina keeps its row blocks")
    r = runner.invoke(app, ["geo", "raster", "--bbox", "0", "0", "1", "1", "-r", "0.5", "-o", str(out), "-c",
                            str(ckpt), "--no-progress"])
    err = _fails_cleanly(r, f"output: {out}:", "in the way")
    assert not out.exists()
    (tmp_path / "afile").write_text("")
    r = runner.invoke(app, ["geo", "raster", "--bbox", "0", "0", "1", "1", "-r", "0.5", "-o",
                            str(tmp_path / "afile" / "y.tif"), "-c", str(ckpt), "--no-progress"])
    err = _fails_cleanly(r, str(tmp_path / "afile" / "y.tif"))
    assert "~lamina" not in err


def test_embed_grid_refuses_booleans_where_numbers_are_meant(ckpt):
    enc = load(ckpt)
    for kwargs, word in (({"bbox": (0, 0, 1, True)}, "bbox"), ({"resolution": True}, "resolution"),
                         ({"max_values": True}, "max_values"), ({"bbox": (0, 0, "1", 1)}, "bbox")):
        args = {"bbox": (0, 0, 1, 1), "resolution": 0.5, **kwargs}
        with pytest.raises(InputError, match=word):
            embed_grid(enc, **args)
    with pytest.raises(InputError, match="of memory"):
        embed_grid(enc, bbox=(-180, -90, 180, 90), resolution=1e-5, force=True)


def test_embed_dask_frame_refuses_boolean_columns_before_anything_runs(ckpt):
    dd = pytest.importorskip("dask.dataframe")
    from lamina.geo.scale import embed_dask_frame

    ddf = dd.from_pandas(pd.DataFrame({"lon": [1.0, 2.0], "lat": [3.0, 4.0], "flag": [True, False]}), npartitions=1)
    for kwargs in ({"lon_col": "flag"}, {"lat_col": "flag"}, {"month_col": "flag"}):
        with pytest.raises(InputError, match="'flag': expected numbers, got dtype bool"):
            embed_dask_frame(ddf, checkpoint=ckpt, **kwargs)


@pytest.mark.parametrize("option", ["--layers", "--hidden", "--dim"])
def test_encoder_sizes_beyond_memory_are_refused_before_the_run_folder_is_made(tiny_chelsa, tmp_path, option):
    out = tmp_path / "run"
    r = runner.invoke(app, ["geo", "pretrain", "--stack", f"chelsa:{tiny_chelsa}", "-o", str(out), "--steps", "1",
                            "--no-progress", option, "99999999999"])
    _fails_cleanly(r, "config: a climate encoder of", "of memory")
    assert not out.exists()


def test_probe_fit_sample_size_beyond_memory_is_refused(ckpt, tmp_path):
    out = tmp_path / "probe"
    r = runner.invoke(app, ["geo", "probe-fit", "koppen", "-o", str(out), "-c", str(ckpt), "--n",
                            "100000000000000000000"])
    _fails_cleanly(r, "n:", "of memory")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- GeoPackage


@pytest.fixture()
def two_layers(tmp_path):
    gpd = pytest.importorskip("geopandas")
    path = tmp_path / "two.gpkg"
    gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=gpd.points_from_xy([1, 2], [3, 4]), crs=4326).to_file(
        path, layer="first", driver="GPKG")
    gpd.GeoDataFrame({"name": ["c"]}, geometry=gpd.points_from_xy([10], [20]), crs=4326).to_file(
        path, layer="second", driver="GPKG")
    return path


def test_a_geopackage_of_several_layers_needs_layer(ckpt, two_layers, tmp_path):
    out = tmp_path / "out.parquet"
    base = ["geo", "embed", str(two_layers), "-o", str(out), "--month", "3", "-c", str(ckpt), "--no-progress"]
    _fails_cleanly(runner.invoke(app, base), "2 layers", "'first', 'second'", "--layer")
    _fails_cleanly(runner.invoke(app, [*base, "--layer", "third"]), "no layer 'third'", "'first', 'second'")
    _only(tmp_path, "two.gpkg")
    r = runner.invoke(app, [*base, "--layer", "second"])
    assert r.exit_code == 0, r.output
    got = pd.read_parquet(out)
    assert list(got["name"]) == ["c"] and "emb_000" in got
    csv = tmp_path / "pts.csv"
    csv.write_text("lon,lat\n1,2\n")
    r = runner.invoke(app, ["geo", "embed", str(csv), "-o", str(tmp_path / "o.parquet"), "--layer", "x", "-c",
                            str(ckpt), "--no-progress"])
    _fails_cleanly(r, "layer:", "not a GeoPackage")


# ---------------------------------------------------------------------------------------------- Dask partitions


@pytest.fixture(scope="module")
def cluster_address():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as c:
        yield c.scheduler_address


def _points(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lon": rng.uniform(-180, 180, n), "lat": rng.uniform(-80, 80, n)})


@pytest.fixture()
def parts(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    _points(20, 0).to_parquet(folder / "a.parquet")
    _points(30, 1).to_parquet(folder / "b.parquet")
    return folder


def _embed(parts, out, ckpt, address, *more):
    return runner.invoke(app, ["geo", "embed", str(parts), "-o", str(out), "--month", "3", "-c", str(ckpt),
                               "--scheduler", address, "--no-progress", *more])


def test_a_partition_replaced_between_runs_is_computed_again(ckpt, cluster_address, parts, tmp_path, caplog):
    out = tmp_path / "out"
    assert _embed(parts, out, ckpt, cluster_address).exit_code == 0
    r = _embed(parts, out, ckpt, cluster_address)
    assert r.exit_code == 0 and "2 already done" in r.stderr, r.output
    new = _points(30, 7)  # same name, same number of rows, other points
    new.to_parquet(parts / "b.parquet")
    with caplog.at_level(logging.WARNING, logger="lamina"):
        r = _embed(parts, out, ckpt, cluster_address)
    assert r.exit_code == 0, r.output
    assert "1 already done" in r.stderr and "1 input partition(s) changed since" in caplog.text
    got = pd.read_parquet(out / "b.parquet")
    np.testing.assert_array_equal(got["lon"].to_numpy(), new["lon"].to_numpy())
    ref = load(ckpt).embed(lon=new["lon"].to_numpy(), lat=new["lat"].to_numpy(), month=3)
    np.testing.assert_allclose(got.filter(like="emb_").to_numpy(), ref, rtol=1e-5, atol=1e-6)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_failing_partition_is_one_line_without_the_workers_traceback(ckpt, cluster_address, parts, tmp_path):
    (parts / "c.csv").write_text("lon,lat\n1,2\neast,3\n")
    records = _Records()
    worker_log = logging.getLogger("distributed.worker")
    worker_log.addHandler(records)
    try:
        r = _embed(parts, tmp_path / "out", ckpt, cluster_address)
    finally:
        worker_log.removeHandler(records)
    _fails_cleanly(r, "c.csv", "'east'", "row 1")
    assert not any("Compute Failed" in m for m in records.messages), records.messages
    assert "c.csv" not in {p.name for p in (tmp_path / "out").iterdir()}


def test_an_unexpected_worker_error_names_the_log_that_holds_its_traceback(ckpt, cluster_address, parts, tmp_path,
                                                                            monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom in a partition")

    monkeypatch.setattr("lamina.geo.scale._embed_part", broken)  # the workers run in this process
    out = tmp_path / "out"
    err = _fails_cleanly(_embed(parts, out, ckpt, cluster_address), "RuntimeError: boom in a partition",
                         "_lamina_error.log")
    log = out / "_lamina_error.log"
    assert str(log) in err and "Traceback" in log.read_text() and "boom in a partition" in log.read_text()


@pytest.mark.parametrize("address", ["tls://127.0.0.1:9", "nonsense"])  # (tcp:// retries for 10 s: the same path)
def test_an_unreachable_scheduler_leaves_no_job_file_behind(ckpt, cluster_address, parts, tmp_path, address):
    out = tmp_path / "out"
    _fails_cleanly(_embed(parts, out, ckpt, address), "scheduler:", address)
    assert not out.exists()
    out.mkdir()
    _fails_cleanly(_embed(parts, out, ckpt, address), "scheduler:")
    _only(out)  # an empty folder stays empty
    r = _embed(parts, out, ckpt, cluster_address)  # and the next run into it is not refused
    assert r.exit_code == 0, r.output
    _only(out, "_lamina_job.json", "a.parquet", "b.parquet")
