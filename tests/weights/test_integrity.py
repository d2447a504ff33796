"""Zoo integrity: byte-reproducible model files, sha256 checks on resume and on train, damaged catalogues, a full
disk while building (CLI cases: exit code 2, one line naming the file, nothing half-written left)."""

import errno
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import CheckpointError, InputError
from lamina.weights.io.modelfile import model_file_bytes
from lamina.weights.zoo.build import build_zoo
from lamina.weights.zoo.catalogue import CATALOGUE, Catalogue

from .conftest import read_catalogue, tiny_config

runner = CliRunner()

MICRO = (
    "[zoo]\nseed = 1\nviews = ['original', 'white frame', 'corner square']\n"
    "pool_per_category = 20\ntest_per_category = 5\n"
    "[[roots]]\nname = 'mlp'\narch = 'mlp'\nhidden = [8, 8]\npretrain = 'digits'\nepochs = 1\nn_models = 6\n"
    "[finetune]\ncategories_per_model = [2, 3]\nimages_per_category = [5, 10]\nepochs = [1, 1]\n"
)


def run(*args):
    return runner.invoke(app, ["weights", *map(str, args)])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(zoo: Path) -> dict[str, str]:
    return {str(p.relative_to(zoo)): _sha(p) for p in sorted(zoo.rglob("*.safetensors"))}


def _error_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_model_file_bytes_do_not_depend_on_insertion_order():
    rng = np.random.default_rng(0)
    state = {k: rng.standard_normal((3, 2)).astype(np.float32) for k in ("fc2.weight", "fc1.weight", "head.bias")}
    meta = {"tree": "t", "id": "t-00001", "categories": "[1, 4]"}
    a = model_file_bytes(state, meta)
    b = model_file_bytes(dict(reversed(state.items())), dict(reversed(meta.items())))
    assert a == b
    n = int.from_bytes(a[:8], "little")
    header = json.loads(a[8 : 8 + n])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(meta)
    assert n % 8 == 0


@pytest.mark.slow
def test_two_builds_of_the_tiny_zoo_are_byte_identical(tmp_path):
    cfg = tiny_config(n_models=3)
    build_zoo(cfg, tmp_path / "a", workers=2, quiet=True)
    build_zoo(cfg, tmp_path / "b", workers=1, quiet=True)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 3 * 3 + 3 and a == b  # every model and root file, byte for byte
    rows = {m["path"]: m["sha256"] for m in read_catalogue(tmp_path / "a", "models")}
    assert all(a[p] == sha for p, sha in rows.items())  # the catalogue's digests are the files' digests


def _damage(zoo: Path) -> dict[str, str]:
    """Bit-flip, truncate and delete one model file each; truncate one root. Returns path -> kind of damage."""
    models = read_catalogue(zoo, "models")
    flip, cut, gone = (zoo / models[i]["path"] for i in (0, 7, 13))
    data = bytearray(flip.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    flip.write_bytes(bytes(data))
    cut.write_bytes(cut.read_bytes()[:-64])
    gone.unlink()
    root = zoo / read_catalogue(zoo, "roots")["cnn-digits"]["path"]
    root.write_bytes(root.read_bytes()[:200])
    return {str(flip): "flip", str(cut): "cut", str(gone): "gone", str(root): "root"}


@pytest.mark.slow
def test_resume_rechecks_catalogued_files_and_rebuilds_the_bad_ones(tiny_zoo, tmp_path, caplog):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    before = _files(zoo)
    damaged = _damage(zoo)
    summary = build_zoo(tiny_config(), zoo, workers=1, quiet=True)
    assert summary["rebuilt"] == 4 and summary["new"] == 3 and summary["models"] == 60
    assert _files(zoo) == before  # rebuilt byte for byte
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert all(Path(p).name in warning for p in damaged)


@pytest.mark.slow
def test_train_drops_files_that_no_longer_match_their_checksum(tiny_zoo, tmp_path, caplog):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    damaged = [p for p, kind in _damage(zoo).items() if kind != "root"]
    r = run("train", zoo, "-o", tmp_path / "p", "--layer", "fc1", "--epochs", "1", "--r-u", "4", "--r-v", "4",
            "--r-t", "8")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)  # stdout is the JSON alone (the training log is on stderr)
    assert out["dropped"]["count"] == 3
    assert sorted(Path(m.split(":")[0]).name for m in out["dropped"]["files"]) == sorted(Path(p).name for p in damaged)
    assert out["skipped"] == []  # dropped before any read
    assert "warning: train: dropped 3 model(s)" in r.output  # the CLI shows the library's logged warning
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert all(Path(p).name in warning for p in damaged)
    from lamina.weights.experts import ProbeXMixture

    index = set(ProbeXMixture.load(tmp_path / "p").index_ids_)
    assert len(index) == 57 and not any(Path(p).stem in index for p in damaged)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_catalogue_is_one_line_exit_2(tiny_zoo, tiny_probe, tmp_path, damage):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    cat = zoo / CATALOGUE
    data = cat.read_bytes()
    cat.write_bytes({"garbage": b"this is not sqlite " * 300, "truncated": data[: len(data) // 2],
                     "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=CATALOGUE):
        read_catalogue(zoo, "models")
    for args in (("train", zoo, "-o", tmp_path / "p"), ("search", "a coat", "--zoo", zoo),
                 ("search", "--like", "mlp-digits-00001", "--zoo", zoo),
                 ("zoo", "build", "--config", "small", "-o", zoo, "--quiet")):
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert CATALOGUE in _error_line(r.output)
    assert not (tmp_path / "p").exists()  # nothing half-written
    # predict reads a probe, not a catalogue: unaffected
    model = next((zoo / "models" / "mlp-digits").glob("*.safetensors"))
    assert run("predict", tiny_probe, model, "--top", "2").exit_code == 0


def test_full_disk_while_building_keeps_the_catalogue_consistent(tmp_path, monkeypatch):
    import lamina.weights.io.modelfile as modelfile
    from lamina._io import atomic_path

    real = modelfile.write_bytes_atomic
    written = []

    def full_disk(path, data):
        if "models" in Path(path).parts:
            if len(written) >= 2:  # the third model file meets a full disk, a third of the way through
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data[: len(data) // 3])
                    raise OSError(errno.ENOSPC, "No space left on device")
            written.append(path)
        return real(path, data)

    monkeypatch.setattr(modelfile, "write_bytes_atomic", full_disk)
    cfg = tmp_path / "micro.toml"
    cfg.write_text(MICRO)
    zoo = tmp_path / "zoo"
    r = run("zoo", "build", "--config", cfg, "-o", zoo, "--workers", "1", "--quiet")
    assert r.exit_code == 2, r.output
    line = _error_line(r.output)
    assert "No space left on device" in line and "resume" in line and "mlp-00002.safetensors" in line
    models = read_catalogue(zoo, "models")
    assert len(models) == 2
    assert all(_sha(zoo / m["path"]) == m["sha256"] for m in models)  # catalogued only once completely written
    assert not [p for p in zoo.rglob(".*") if p.is_file()]  # no temporary file left
    monkeypatch.setattr(modelfile, "write_bytes_atomic", real)
    r = run("zoo", "build", "--config", cfg, "-o", zoo, "--workers", "1", "--quiet")
    assert r.exit_code == 0, r.output
    assert read_catalogue(zoo, "count") == 6


def test_a_full_disk_for_a_root_is_one_line_too(tmp_path, monkeypatch):
    import lamina.weights.io.modelfile as modelfile

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(modelfile, "write_bytes_atomic", full_disk)
    cfg = tmp_path / "micro.toml"
    cfg.write_text(MICRO)
    r = run("zoo", "build", "--config", cfg, "-o", tmp_path / "zoo", "--workers", "1", "--quiet")
    assert r.exit_code == 2 and "mlp.safetensors: No space left on device" in _error_line(r.output)
    assert read_catalogue(tmp_path / "zoo", "roots") == {}


def test_catalogue_of_another_program_is_refused(tmp_path):
    import sqlite3

    (tmp_path / "z").mkdir()
    con = sqlite3.connect(str(tmp_path / "z" / CATALOGUE))
    con.execute("CREATE TABLE something (x)")
    con.commit()
    con.close()
    with pytest.raises(CheckpointError, match="not a zoo catalogue"):
        Catalogue(tmp_path / "z")
    with pytest.raises(InputError, match="no catalogue.sqlite"):
        Catalogue(tmp_path / "nowhere")
