"""Scale-out on Dask: a zoo fine-tuned and predicted on a 2-worker LocalCluster on loopback gives the local build's
files and the local predictions; it resumes, stops cleanly on a failed write, and a bad scheduler is one line."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import CheckpointError, InputError
from lamina.weights.experts import ProbeXMixture
from lamina.weights.serve.predict import catalogue_sources, iter_predictions, write_predictions
from lamina.weights.zoo.build import build_zoo

from .conftest import read_catalogue, tiny_config

distributed = pytest.importorskip("distributed")
runner = CliRunner()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_dask_build_gives_the_local_files_resumes_and_stops_cleanly_on_a_failed_write(cluster, tiny_zoo, tmp_path):
    """The first 3 models of each tree of the (locally built) tiny zoo have the same specs as a 3-model zoo's: the
    Dask build must give them byte for byte."""
    cfg, zoo, address = tiny_config(n_models=3), tmp_path / "z", cluster.scheduler_address
    first = build_zoo(cfg, zoo, limit=4, quiet=True, scheduler=address)
    assert first["new"] == 4 and read_catalogue(zoo, "count") == 4

    # the trees advance together, so the cnn tree has files already: a file in place of its folder makes them
    # missing (dropped from the catalogue, rebuilt later) and its next files unwritable
    shutil.rmtree(zoo / "models" / "cnn-digits")
    (zoo / "models" / "cnn-digits").write_text("in the way")
    with pytest.raises(InputError, match=r"cannot write .*cnn-digits.*run the same command to resume"):
        build_zoo(cfg, zoo, quiet=True, scheduler=address)
    rows = read_catalogue(zoo)
    assert 2 <= len(rows) <= 6 and all(m["tree"] != "cnn-digits" for m in rows)
    assert all(_sha(zoo / m["path"]) == m["sha256"] for m in rows)  # only complete files are catalogued

    (zoo / "models" / "cnn-digits").unlink()
    again = build_zoo(cfg, zoo, quiet=True, scheduler=address)
    assert again["models"] == 9 and again["new"] == 9 - len(rows) and again["rebuilt"] == 0
    local = {m["id"]: m for m in read_catalogue(tiny_zoo)}
    got = read_catalogue(zoo)
    assert sorted(m["id"] for m in got) == sorted(f"{r.name}-{i:05d}" for r in cfg.roots for i in range(3))
    for m in got:
        assert m["sha256"] == local[m["id"]]["sha256"] == _sha(zoo / m["path"])
        assert m["hparams"] == local[m["id"]]["hparams"] and m["categories"] == local[m["id"]]["categories"]
    roots = read_catalogue(zoo, "roots")
    assert {k: r["sha256"] for k, r in roots.items()} == {k: r["sha256"]
                                                         for k, r in read_catalogue(tiny_zoo, "roots").items()}
    assert [p for p in zoo.rglob(".*") if "~lamina-" in p.name] == []


def test_dask_predictions_equal_local_ones_in_input_order(cluster, tiny_zoo, tiny_probe, tmp_path):
    import torch

    threads = torch.get_num_threads()
    mix = ProbeXMixture.load(tiny_probe)
    sources = catalogue_sources(tiny_zoo)[::-1]  # not the catalogue's order: the order must be the input's
    sources.insert(5, type(sources[0])(tmp_path / "missing.safetensors"))
    local = list(iter_predictions(mix, sources, batch_size=7, errors="report"))
    done = []
    dask = list(iter_predictions(mix, sources, batch_size=7, errors="report", scheduler=cluster.scheduler_address,
                                 progress=done.append))
    assert sum(done) == len(sources) and len(dask) == len(local) == len(sources)
    assert "error" in dask[5] and dask[5]["model"] == local[5]["model"] == str(sources[5].path)
    for a, b in zip(dask, local, strict=True):
        assert (a["model"], a["id"], a.get("tree"), a.get("layer")) == (b["model"], b["id"], b.get("tree"),
                                                                          b.get("layer"))
        if "error" not in b:
            np.testing.assert_allclose(a["probabilities"], b["probabilities"], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(a["features"], b["features"], rtol=1e-4, atol=1e-5)
    for where in (None, cluster.scheduler_address):  # errors="raise": the same error, naming the file
        with pytest.raises(CheckpointError, match="missing.safetensors: no such model file"):
            list(iter_predictions(mix, sources, batch_size=7, scheduler=where))

    out = tmp_path / "dask.jsonl"
    info = write_predictions(mix, sources, out, top=3, batch_size=5, scheduler=cluster.scheduler_address)
    ref = write_predictions(mix, sources, tmp_path / "local.jsonl", top=3, batch_size=5)
    assert info["models"] == ref["models"] == len(sources) - 1 and info["errors"] == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["model"] for r in rows] == [str(s.path) for s in sources]
    assert [r.get("id") for r in rows] == [s.id for s in sources]
    assert torch.get_num_threads() == threads  # the client process is left as it was


def test_cli_predict_on_a_local_dask_cluster_equals_predict_here(tiny_zoo, tiny_probe, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for m in read_catalogue(tiny_zoo)[::9]:
        shutil.copyfile(tiny_zoo / m["path"], folder / f"{m['id']}.safetensors")
    n_cat = len(ProbeXMixture.load(tiny_probe).categories_)
    args = ["weights", "predict", str(tiny_probe), "--dir", str(folder), "--top", str(n_cat), "--quiet"]
    r = runner.invoke(app, [*args, "-o", str(tmp_path / "d.jsonl"), "--dask", "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "-o", str(tmp_path / "l.jsonl")])
    assert r.exit_code == 0, r.output
    got = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert len(got) == len(ref) == len(list(folder.iterdir())) > 1
    for a, b in zip(got, ref, strict=True):
        assert (a["model"], a["tree"], a["layer"]) == (b["model"], b["tree"], b["layer"])
        pa = {c["name"]: c["probability"] for c in a["categories"]}
        pb = {c["name"]: c["probability"] for c in b["categories"]}
        assert pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) <= 2e-4 for k in pa)


@pytest.mark.parametrize("command", ["build", "predict"])
def test_cli_bad_scheduler_is_one_line_exit_2_and_writes_nothing(tiny_probe, tiny_zoo, tmp_path, command,
                                                                quick_connect_timeout):
    out = tmp_path / "out"
    argv = (["weights", "zoo", "build", "--config", "small", "-o", str(out)] if command == "build" else
            ["weights", "predict", str(tiny_probe), "--zoo", str(tiny_zoo), "-o", str(out), "--quiet"])
    r = runner.invoke(app, [*argv, "--scheduler", "tcp://127.0.0.1:9"])
    assert r.exit_code == 2, r.output
    assert "scheduler: cannot reach tcp://127.0.0.1:9" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_library_bad_scheduler_arguments(tmp_path, tiny_probe):
    with pytest.raises(InputError, match="scheduler: expected 'local', an address"):
        build_zoo(tiny_config(n_models=1), tmp_path / "z", quiet=True, scheduler=8786)
    with pytest.raises(InputError, match="scheduler: expected 'local' or an address"):
        build_zoo(tiny_config(n_models=1), tmp_path / "z", quiet=True, scheduler="")
    assert not (tmp_path / "z").exists()
    fitted = ProbeXMixture.load(tiny_probe)
    fitted.path_ = None  # as if fitted in this process: the workers would have nothing to load
    with pytest.raises(InputError, match="save it"):
        list(iter_predictions(fitted, [tmp_path / "m.safetensors"], scheduler="local"))
