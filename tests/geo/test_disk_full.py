"""A full disk on the writers that reported it with a traceback: raster blocks (NumPy), GeoTIFF assembly (GDAL) and
GeoPackage output (OGR). The faults are injected (monkeypatched writes, and a disk-usage figure for the libraries
that do not say ENOSPC); each must end in one line naming the user's file, exit code 2, and no output file."""

import errno
import shutil
from collections import namedtuple

import numpy as np
import pytest
from typer.testing import CliRunner

from lamina.cli import app

runner = CliRunner()
RASTER = ["geo", "raster", "--bbox", "0", "40", "1", "41", "-r", "0.25", "--no-progress"]
Usage = namedtuple("Usage", "total used free")


def _low_disk(monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(real(p).total, real(p).total, 1024))


def test_raster_block_on_a_full_disk_names_the_output_and_keeps_the_blocks_for_resume(tmp_path, monkeypatch):
    def full(fh, arr, *a, **k):
        raise OSError(f"Not enough free space to write {arr.nbytes} bytes after offset 128")  # NumPy's, no errno

    out = tmp_path / "x.tif"
    with monkeypatch.context() as m:
        m.setattr(np, "save", full)
        r = runner.invoke(app, [*RASTER, "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert f"{out}: No space left on device" in r.output and "Traceback" not in r.output
    assert not out.exists()
    r = runner.invoke(app, [*RASTER, "-o", str(out)])  # space freed: the same command resumes and finishes
    assert r.exit_code == 0, r.output
    assert out.is_file() and [p.name for p in tmp_path.iterdir()] == ["x.tif"]


def test_geotiff_assembly_on_a_full_disk(tmp_path, monkeypatch):
    from rasterio.errors import RasterioIOError

    from lamina.geo import raster_file

    def failing(*a, **k):
        raise RasterioIOError("Write failed. See previous exception for details.")

    out = tmp_path / "x.tif"
    monkeypatch.setattr(raster_file, "_assemble", failing)
    _low_disk(monkeypatch)
    r = runner.invoke(app, [*RASTER, "-o", str(out)])
    assert r.exit_code == 2 and f"{out}: No space left on device" in r.output, r.output
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(1 << 40, 0, 1 << 40))  # plenty: another failure
    r = runner.invoke(app, [*RASTER, "-o", str(out)])
    assert r.exit_code == 2 and f"output: writing {out} failed (Write failed." in r.output, r.output
    assert not out.exists()


def test_geopackage_output_on_a_full_disk_names_the_users_file(tmp_path, monkeypatch):
    import geopandas as gpd
    import pyogrio
    from pyogrio.errors import DataLayerError

    src = tmp_path / "pts.parquet"
    gpd.GeoDataFrame({"id": [1, 2]}, geometry=gpd.points_from_xy([8.5, 9.0], [47.3, 46.0]),
                     crs="EPSG:4326").to_parquet(src)

    def failing(*a, **k):
        raise DataLayerError("Error while writing batch to OGR layer: sqlite3_exec(ROLLBACK) failed")

    monkeypatch.setattr(pyogrio, "write_arrow", failing)
    _low_disk(monkeypatch)
    out = tmp_path / "e.gpkg"
    r = runner.invoke(app, ["geo", "embed", str(src), "-o", str(out), "--no-progress"])
    assert r.exit_code == 2 and f"{out}: No space left on device" in r.output, r.output
    assert "~lamina" not in r.output  # the user's path, not the hidden temporary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pts.parquet"]


def test_atomic_path_names_the_target_not_its_temporary(tmp_path):
    from lamina._io import atomic_path

    target = tmp_path / "t.bin"
    with pytest.raises(OSError) as err, atomic_path(target) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert err.value.filename == str(target) and err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
