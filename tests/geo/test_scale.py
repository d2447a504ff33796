"""Scale-out on Dask: partitioned tables embedded on a 2-worker LocalCluster on loopback (tiny untrained encoder,
synthetic points: API tests only)."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import InputError
from lamina.geo.encoder import load

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

from lamina.geo.scale import (  # noqa: E402
    JOB_FILE,
    _worker_encoder,
    embed_dask_frame,
    embed_partitions,
    partition_files,
)

runner = CliRunner()


def _points(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lon": rng.uniform(-180, 180, n), "lat": rng.uniform(-80, 80, n),
                         "month": rng.integers(1, 13, n), "site": [f"s{seed}-{i}" for i in range(n)]})


@pytest.fixture()
def parts(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    _points(50, 0).to_parquet(folder / "a.parquet")
    _points(70, 1).to_parquet(folder / "b.parquet")
    _points(30, 2).to_csv(folder / "c.csv", index=False)
    return folder


def test_partitions_on_a_cluster_equal_the_single_machine_embedding_and_resume(parts, ckpt, cluster, tmp_path):
    out = tmp_path / "out"
    info = embed_partitions(parts, out, checkpoint=ckpt, month_col="month", scheduler=cluster.scheduler_address,
                            progress=False)
    assert info == {"partitions": 3, "skipped": 0, "rows": 150, "output": str(out)}
    # a CSV partition gets its provenance sidecar (c.csv.lamina.json) beside it, as any CSV output
    assert sorted(p.name for p in out.iterdir()) == [JOB_FILE, "a.parquet", "b.parquet", "c.csv", "c.csv.lamina.json"]
    enc = load(ckpt)
    for name, reader in (("a.parquet", pd.read_parquet), ("c.csv", pd.read_csv)):
        src, got = reader(parts / name), reader(out / name)
        ref = enc.embed(lon=src.lon.to_numpy(), lat=src.lat.to_numpy(), month=src.month.to_numpy())
        assert list(got.site) == list(src.site)  # row order and input columns kept
        np.testing.assert_allclose(got.filter(like="emb_").to_numpy(), ref, rtol=1e-5, atol=1e-6)
    job = json.loads((out / JOB_FILE).read_text())
    assert job["complete"] and len(job["inputs"]) == 3 and job["checkpoint_sha256"]

    (out / "b.parquet").unlink()  # as if the run had been killed before b was written
    again = embed_partitions(parts, out, checkpoint=ckpt, month_col="month", scheduler=cluster.scheduler_address,
                             progress=False)
    assert again["skipped"] == 2 and again["rows"] == 70 and (out / "b.parquet").is_file()
    with pytest.raises(InputError, match="another job"):
        embed_partitions(parts, out, checkpoint=ckpt, month=4, scheduler=cluster.scheduler_address, progress=False)


def test_a_bad_row_in_one_partition_names_the_file_and_row(parts, ckpt, cluster, tmp_path):
    bad = _points(20, 3)
    bad.loc[7, "lat"] = 95.0
    bad.to_parquet(parts / "d.parquet")
    with pytest.raises(InputError, match=r"row 7") as exc:
        embed_partitions(parts, tmp_path / "out", checkpoint=ckpt, month=6, scheduler=cluster.scheduler_address,
                         progress=False)
    assert "d.parquet" not in {p.name for p in (tmp_path / "out").iterdir()}
    assert "lat" in str(exc.value)


def test_dask_dataframe_gets_embedding_columns_computed_on_the_workers(parts, ckpt, cluster):
    ddf = dd.read_parquet(str(parts / "*.parquet"))
    with distributed.Client(cluster):
        got = embed_dask_frame(ddf, month=9, checkpoint=ckpt).compute()
    src = pd.concat([pd.read_parquet(parts / "a.parquet"), pd.read_parquet(parts / "b.parquet")])
    got = got.set_index("site").loc[src.site]
    ref = load(ckpt).embed(lon=src.lon.to_numpy(), lat=src.lat.to_numpy(), month=9)
    np.testing.assert_allclose(got.filter(like="emb_").to_numpy(), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="'longitude' not found"):
        embed_dask_frame(ddf, lon_col="longitude", checkpoint=ckpt)


def test_cli_glob_on_the_default_local_cluster(parts, ckpt, tmp_path):
    out = tmp_path / "emb"
    r = runner.invoke(app, ["geo", "embed", str(parts / "*.parquet"), "-o", str(out), "-m", "3", "-c", str(ckpt),
                            "--workers", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "wrote 120 rows in 2 partitions" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == [JOB_FILE, "a.parquet", "b.parquet"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["{parts}/*.nothing", "-o", "{tmp}/o"], "matches no"),
        (["{parts}", "-o", "{tmp}/o.parquet"], "give a folder"),
        (["{parts}", "-o", "{parts}"], "holds input partitions"),
        (["{parts}/a.parquet", "-o", "{tmp}/o.parquet", "--scheduler", "tcp://127.0.0.1:9"], "--scheduler needs"),
        (["{parts}", "-o", "{tmp}/o", "--scheduler", "tcp://127.0.0.1:9"], "scheduler: cannot reach"),
    ],
)
def test_cli_bad_partitioned_input_is_one_line_exit_2(parts, ckpt, tmp_path, args, fragment, quick_connect_timeout):
    argv = [a.format(parts=parts, tmp=tmp_path) for a in args]
    r = runner.invoke(app, ["geo", "embed", *argv, "-m", "1", "-c", str(ckpt), "--no-progress"])
    assert r.exit_code == 2, r.output
    assert fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.parquet").exists()
    assert not (tmp_path / "o").exists()  # an unreachable scheduler leaves no job folder that would refuse reruns


def test_an_unreachable_scheduler_does_not_block_a_later_run_with_other_arguments(parts, ckpt, tmp_path,
                                                                                 quick_connect_timeout):
    (tmp_path / "o").mkdir()  # an empty folder the user made stays, empty
    argv = ["geo", "embed", str(parts), "-o", str(tmp_path / "o"), "-c", str(ckpt), "--no-progress"]
    r = runner.invoke(app, [*argv, "-m", "1", "--scheduler", "tcp://127.0.0.1:9"])
    assert r.exit_code == 2 and "cannot reach" in r.stderr
    assert list((tmp_path / "o").iterdir()) == []
    r = runner.invoke(app, [*argv, "-m", "2", "--workers", "1"])
    assert r.exit_code == 0, r.output


def test_partition_names_must_not_collide(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        _points(3, 0).to_parquet(tmp_path / sub / "part.parquet")
    with pytest.raises(InputError, match="share the file name"):
        partition_files(str(tmp_path / "*" / "*.parquet"))


def test_partitions_whose_outputs_would_share_a_name_are_refused_before_anything_is_written(ckpt, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _points(3, 0).to_parquet(src / "a.parquet")
    _points(3, 1).to_csv(src / "a.csv", index=False)
    with pytest.raises(InputError, match="a.csv and a.parquet would both be written as 'a.csv'"):
        embed_partitions(src, tmp_path / "o", checkpoint=ckpt, month=1, output_format="csv", workers=1,
                         progress=False)
    assert not (tmp_path / "o").exists()


def test_a_worker_with_other_weights_refuses_to_embed(ckpt):
    with pytest.raises(InputError, match="give every node the same checkpoint"):
        _worker_encoder(str(ckpt), "0" * 64)
