"""The zoo catalogue's errors: a damaged file asks for a rebuild; a full disk, a lock held by another process or a
path that cannot be opened say so (and leave the healthy zoo alone)."""

import sqlite3

import pytest
from typer.testing import CliRunner

import lamina.weights.zoo.catalogue as catalogue
from lamina.cli import app
from lamina.errors import CheckpointError, InputError
from lamina.weights.zoo.catalogue import CATALOGUE, Catalogue

ROW = {"tree": "t", "parent": "t", "arch": {"kind": "mlp"}, "categories": [1, 2], "hparams": {"lr": 0.1},
       "accuracy": 0.5, "path": "models/t/x.safetensors", "sha256": "0" * 64, "seconds": 1.0}


def test_full_disk_is_not_reported_as_a_damaged_catalogue(tmp_path):
    with Catalogue(tmp_path, create=True) as cat:
        pages = cat.con.execute("PRAGMA page_count").fetchone()[0]
        cat.con.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk
        with pytest.raises(InputError, match=r"disk is full; free space and rerun: the build resumes") as err:
            cat.add_models([{**ROW, "id": f"t-{i:05d}", "hparams": {"pad": "x" * 500}} for i in range(200)])
        assert CATALOGUE in str(err.value) and "rebuild" not in str(err.value)
        assert cat.count() == 0  # the failed batch was rolled back, the catalogue is intact
    with Catalogue(tmp_path) as cat:  # still a readable catalogue
        assert cat.count() == 0


def test_locked_catalogue_is_in_use_not_damaged(tmp_path, monkeypatch):
    Catalogue(tmp_path, create=True).close()
    monkeypatch.setattr(catalogue, "BUSY_TIMEOUT", 0.05)
    other = sqlite3.connect(str(tmp_path / CATALOGUE), isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another build holds the write lock
        with pytest.raises(InputError, match="in use by another process") as err:
            Catalogue(tmp_path)
        assert CATALOGUE in str(err.value) and "rebuild" not in str(err.value)
        other.execute("ROLLBACK")
    finally:
        other.close()
    with Catalogue(tmp_path) as cat:  # healthy once the other process is done
        assert cat.count() == 0


def test_corruption_still_asks_for_a_rebuild(tmp_path):
    (tmp_path / CATALOGUE).write_bytes(b"this is not sqlite " * 300)
    with pytest.raises(CheckpointError, match="not a readable zoo catalogue.*rebuild"):
        Catalogue(tmp_path)


def test_catalogue_that_cannot_be_opened_is_one_error_naming_it(tmp_path):
    (tmp_path / CATALOGUE).mkdir()  # sqlite3.connect fails: unable to open database file
    with pytest.raises(InputError, match=f"{CATALOGUE}: cannot be opened"):
        Catalogue(tmp_path, create=True)


def test_zoo_build_into_an_existing_file_is_one_line_naming_it(tmp_path):
    target = tmp_path / "zoo.txt"
    target.write_text("not a folder")
    r = CliRunner().invoke(app, ["weights", "zoo", "build", "--config", "small", "-o", str(target), "--quiet"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(target) in lines[0], r.output
    assert target.read_text() == "not a folder"
