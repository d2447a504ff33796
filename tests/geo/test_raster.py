"""Embedding rasters: the DataArray API, COG files, PCA bands, resuming, bad input (tiny untrained encoder)."""

import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import InputError
from lamina.geo import raster_file
from lamina.geo.data.grid import Grid
from lamina.geo.raster import RasterGrid
from lamina.geo.raster_file import work_dir, write_raster

from .test_encoder import tiny_encoder

runner = CliRunner()


@pytest.fixture(scope="module")
def enc():
    return tiny_encoder()


def test_embed_grid_is_a_georeferenced_dataarray_of_pixel_centre_embeddings(ckpt):
    from lamina.geo.encoder import load

    enc = load(ckpt)
    da = enc.embed_grid(bbox=(5.0, 40.0, 15.0, 48.0), resolution=2.0, month=6)
    assert da.dims == ("band", "lat", "lon") and da.shape == (8, 4, 5) and da.dtype == np.float32
    np.testing.assert_allclose(da.lon.values, [6, 8, 10, 12, 14])
    np.testing.assert_allclose(da.lat.values, [47, 45, 43, 41])  # north to south, pixel centres
    lon, lat = np.meshgrid(da.lon.values, da.lat.values)
    ref = enc.embed(lon=lon.ravel(), lat=lat.ravel(), month=6)  # (20, 8)
    np.testing.assert_allclose(da.values.reshape(8, -1).T, ref, rtol=1e-5, atol=1e-6)
    assert da.attrs["crs"] == "EPSG:4326" and da.attrs["months"] == "6"
    assert da.attrs["checkpoint_sha256"] == json.loads((ckpt / "config.json").read_text())["sha256"]
    ref_attrs = da.spatial_ref.attrs
    assert "WGS 84" in ref_attrs["crs_wkt"] and ref_attrs["GeoTransform"].split()[:4] == ["5.0", "2.0", "0.0", "48.0"]
    assert list(da.band_name.values[:2]) == ["emb_000", "emb_001"]
    four = enc.embed_grid(bbox=(5.0, 40.0, 15.0, 48.0), resolution=2.0)
    assert four.shape == (32, 4, 5) and four.attrs["months"] == "3,6,9,12"


def test_bbox_across_the_antimeridian_wraps_longitudes(enc):
    da = enc.embed_grid(bbox=(170.0, -10.0, -170.0, 0.0), resolution=5.0, month=1)
    np.testing.assert_allclose(da.lon.values, [172.5, 177.5, -177.5, -172.5])
    ref = enc.embed(lon=[-177.5], lat=[-7.5], month=1)[0]
    np.testing.assert_allclose(da.sel(lon=-177.5, lat=-7.5).values, ref, rtol=1e-5, atol=1e-6)


def test_grid_covers_a_bbox_that_is_not_a_whole_number_of_pixels():
    g = RasterGrid.from_bbox((0, 0, 10, 9), 3)
    assert (g.width, g.height) == (4, 3)
    assert RasterGrid is Grid and g.bounds == (0.0, 0.0, 10.0, 9.0)  # one grid type; the requested bbox kept
    assert g.transform == (0.0, 3.0, 0.0, 9.0, 0.0, -3.0) and g == Grid(0.0, 9.0, 3.0, 3.0, 3, 4)
    wrap = Grid.from_bbox((170, -90, -170, -88), 5)  # crosses the antimeridian; the row's centre is past the pole
    assert wrap.wrapped_lons.tolist() == [172.5, 177.5, -177.5, -172.5] and wrap.lats.tolist() == [-90.0]
    g = RasterGrid.from_bbox((-180, -90, 180, 90), 0.1)
    assert (g.width, g.height) == (3600, 1800)  # 360 / 0.1 is 3599.9999999999995 in floats


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"bbox": (-190, 0, 10, 10)}, "bbox: west must lie in [-180, 180]"),
        ({"bbox": (0, -95, 10, 10)}, "bbox: south must lie in [-90, 90]"),
        ({"bbox": (0, 10, 10, 10)}, "bbox: south must be < north"),
        ({"bbox": (0, 0, float("nan"), 10)}, "bbox: values must be finite"),
        ({"bbox": (0, 0, 10)}, "bbox: expected four numbers"),
        ({"bbox": "abcd"}, "bbox: expected four numbers"),
        ({"bbox": (5, 0, 5, 10)}, "are the same meridian"),
        ({"bbox": (180, 0, -180, 10)}, "are the same meridian"),
        ({"resolution": 0}, "resolution: expected degrees > 0"),
        ({"resolution": -1}, "resolution: expected degrees > 0"),
        ({"resolution": float("inf")}, "resolution: expected degrees > 0"),
        ({"month": 13}, "month: expected an integer in 1..12"),
    ],
)
def test_bad_grid_arguments_name_the_argument(enc, kw, fragment):
    args = {"bbox": (0, 0, 10, 10), "resolution": 1.0, "month": 6, **kw}
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        enc.embed_grid(**args)


def test_size_limit_needs_force(enc):
    from lamina.geo.raster import embed_grid

    with pytest.raises(InputError, match=r"resolution: .* above the limit .* force=True"):
        embed_grid(enc, bbox=(0, 0, 10, 10), resolution=1.0, month=1, max_values=799)
    assert embed_grid(enc, bbox=(0, 0, 10, 10), resolution=1.0, month=1, max_values=799, force=True).size == 800
    with pytest.raises(InputError, match="limit of 2e"):
        enc.embed_grid(bbox=(-180, -90, 180, 90), resolution=0.001, month=1)


def test_geotiff_holds_the_embedding_with_crs_transform_and_provenance(enc, tmp_path):
    out = tmp_path / "emb.tif"
    info = write_raster(enc, out, bbox=(5.0, 40.0, 15.0, 48.0), resolution=0.5, month=6, block_rows=3,
                        progress=False)
    assert info["blocks"] == 6 and info["driver"] == "COG"
    da = enc.embed_grid(bbox=(5.0, 40.0, 15.0, 48.0), resolution=0.5, month=6)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 4326 and ds.count == 8 and ds.shape == (16, 20)
        assert ds.transform.c == 5.0 and ds.transform.f == 48.0 and ds.res == (0.5, 0.5)
        structure = ds.tags(ns="IMAGE_STRUCTURE")
        assert ds.block_shapes[0] == (128, 128) and structure["LAYOUT"] == "COG"
        assert structure["PREDICTOR"] == "3" and structure["COMPRESSION"] == "DEFLATE"  # floating-point predictor
        assert np.isnan(ds.nodata) and ds.dtypes[0] == "float32"  # nodata stated (NaN); no pixel is NaN
        assert ds.descriptions[0] == "emb_000"
        tags = ds.tags()
        x, y = ds.xy(3, 7)  # pixel centre of row 3, column 7
        np.testing.assert_array_equal(ds.read(), da.values)
    assert (x, y) == (float(da.lon[7]), float(da.lat[3]))
    assert tags["checkpoint_sha256"] == da.attrs["checkpoint_sha256"] and tags["months"] == "6"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.tif"]


def test_cog_has_overviews_and_the_fallback_without_the_cog_driver_too(enc, tmp_path, monkeypatch):
    kw = {"bbox": (-30.0, 0.0, 30.0, 1.0), "resolution": 0.1, "month": 3, "progress": False}
    write_raster(enc, tmp_path / "a.tif", **kw)
    monkeypatch.setattr(raster_file, "has_cog_driver", lambda: False)
    info = write_raster(enc, tmp_path / "b.tif", **kw)
    assert info["driver"] == "GTiff"
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert a.shape == (10, 600) and a.overviews(1) == b.overviews(1) == [2]
        assert a.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == b.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        assert np.isnan(a.nodata) and np.isnan(b.nodata)
        assert a.block_shapes[0] == b.block_shapes[0] == (512, 512)
        np.testing.assert_array_equal(a.read(), b.read())


def test_pca_bands_and_the_stored_pca_map_back_to_the_embedding(enc, tmp_path):
    out = tmp_path / "pca.tif"
    kw = {"bbox": (-20.0, -10.0, 20.0, 10.0), "resolution": 1.0, "month": 9, "pca": 3, "progress": False}
    write_raster(enc, out, **kw)
    with rasterio.open(out) as ds:
        bands, tags = ds.read(), ds.tags()
        assert ds.count == 3 and ds.descriptions == ("pca_00", "pca_01", "pca_02")
    comp, mean = np.array(json.loads(tags["pca_components"])), np.array(json.loads(tags["pca_mean"]))
    assert comp.shape == (3, 8) and mean.shape == (8,)
    np.testing.assert_allclose(comp @ comp.T, np.eye(3), atol=1e-6)  # orthonormal directions
    ratio = np.array(json.loads(tags["pca_explained_variance_ratio"]))
    assert np.all(np.diff(ratio) <= 0) and 0 < ratio.sum() <= 1
    emb = enc.embed_grid(bbox=kw["bbox"], resolution=1.0, month=9).values.reshape(8, -1).T  # (800, 8)
    np.testing.assert_allclose(bands.reshape(3, -1).T, (emb - mean) @ comp.T, rtol=1e-4, atol=1e-5)
    write_raster(enc, tmp_path / "again.tif", **kw)
    assert (tmp_path / "again.tif").read_bytes() == out.read_bytes()  # seeded: byte for byte


def test_float16_halves_the_values(enc, tmp_path):
    kw = {"bbox": (0.0, 0.0, 8.0, 8.0), "resolution": 1.0, "month": 1, "progress": False}
    write_raster(enc, tmp_path / "h.tif", dtype="float16", **kw)
    with rasterio.open(tmp_path / "h.tif") as ds:
        assert ds.tags(1, ns="IMAGE_STRUCTURE")["NBITS"] == "16" and np.isnan(ds.nodata)
        half = ds.read()
    full = enc.embed_grid(bbox=kw["bbox"], resolution=1.0, month=1).values
    np.testing.assert_array_equal(half, full.astype(np.float16).astype(np.float32))


def test_an_interrupted_raster_resumes_from_its_finished_blocks(enc, tmp_path, monkeypatch):
    out = tmp_path / "r.tif"
    kw = {"bbox": (0.0, 0.0, 10.0, 10.0), "resolution": 1.0, "month": 6, "block_rows": 2, "progress": False}
    calls = []
    real = raster_file.embed_rows

    def interrupted(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(raster_file, "embed_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_raster(enc, out, **kw)
    assert not out.exists() and sorted(p.name for p in work_dir(out).glob("rows-*.npy")) == [
        "rows-0000000.npy", "rows-0000002.npy"]
    monkeypatch.setattr(raster_file, "embed_rows", real)
    info = write_raster(enc, out, **kw)
    assert info["resumed_blocks"] == 2 and info["blocks"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tif"]
    write_raster(enc, tmp_path / "fresh.tif", **kw)
    assert (tmp_path / "fresh.tif").read_bytes() == out.read_bytes()


def test_a_work_folder_of_other_arguments_is_not_reused(enc, tmp_path, monkeypatch):
    out = tmp_path / "r.tif"
    monkeypatch.setattr(raster_file, "embed_rows", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        write_raster(enc, out, bbox=(0, 0, 4, 4), resolution=1.0, month=6, progress=False)
    monkeypatch.undo()
    (work_dir(out) / "rows-0000000.npy").write_bytes(b"left by a run with other arguments")
    info = write_raster(enc, out, bbox=(0, 0, 4, 4), resolution=1.0, month=7, progress=False)
    assert info["resumed_blocks"] == 0
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), enc.embed_grid(bbox=(0, 0, 4, 4), resolution=1.0, month=7).values)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--bbox", "-190", "0", "10", "10", "-r", "1"], "bbox: west must lie in [-180, 180]"),
        (["--bbox", "0", "10", "10", "5", "-r", "1"], "bbox: south must be < north"),
        (["--bbox", "0", "0", "10", "nan", "-r", "1"], "bbox: values must be finite"),
        (["--bbox", "0", "0", "10", "10", "-r", "0"], "resolution: expected degrees > 0"),
        (["--bbox", "0", "0", "10", "10", "-r", "-2"], "resolution: expected degrees > 0"),
        (["--bbox", "-180", "-90", "180", "90", "-r", "0.001"], "above the limit"),
        (["--bbox", "0", "0", "10", "10", "-r", "1", "--pca", "33"], "pca: expected an integer in 1..32"),
        (["--bbox", "0", "0", "10", "10", "-r", "1", "--dtype", "int8"], "dtype: expected"),
        (["--bbox", "0", "0", "10", "10", "-r", "1", "--month", "0"], "month: expected an integer in 1..12"),
    ],
)
def test_cli_bad_raster_arguments_exit_2_with_one_line_and_write_nothing(ckpt, tmp_path, args, fragment):
    r = runner.invoke(app, ["geo", "raster", *args, "-o", str(tmp_path / "o.tif"), "-c", str(ckpt)])
    assert r.exit_code == 2, r.output
    assert fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _files(tmp_path) == []


@pytest.mark.parametrize("name", ["o.png", "o.parquet", "o", "o.nc"])
def test_cli_unknown_raster_extension(ckpt, tmp_path, name):
    r = runner.invoke(app, ["geo", "raster", "--bbox", "0", "0", "1", "1", "-r", "1", "-o", str(tmp_path / name),
                            "-c", str(ckpt)])
    assert r.exit_code == 2 and r.stderr.startswith("error: output:") and len(r.stderr.strip().splitlines()) == 1
    assert _files(tmp_path) == []


def test_zarr_store_opens_as_the_embed_grid_dataarray_and_resumes(enc, tmp_path, monkeypatch):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    bbox = (170.0, -10.0, -170.0, 0.0)  # across the antimeridian
    ref = enc.embed_grid(bbox=bbox, resolution=2.0, month=3)
    out = tmp_path / "emb.zarr"
    real, calls = raster_file.embed_rows, []

    def dying(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(raster_file, "embed_rows", dying)
    with pytest.raises(KeyboardInterrupt):
        write_raster(enc, out, bbox=bbox, resolution=2.0, month=3, block_rows=2, progress=False)
    assert not out.exists()  # nothing published before every block is done
    monkeypatch.setattr(raster_file, "embed_rows", real)
    info = write_raster(enc, out, bbox=bbox, resolution=2.0, month=3, block_rows=2, progress=False)
    assert info["driver"] == "Zarr" and info["resumed_blocks"] == 1
    got = xr.open_zarr(out)["embedding"].load()
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-5, atol=1e-6)  # other row blocks: other BLAS sums
    np.testing.assert_array_equal(got.lon.values, ref.lon.values)
    assert got.attrs["checkpoint_sha256"] == ref.attrs["checkpoint_sha256"] and got.attrs["months"] == "3"
    assert list(got.band_name.values) == list(ref.band_name.values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.zarr"]  # work folder and temporaries gone

    write_raster(enc, out, bbox=bbox, resolution=2.0, month=3, pca=2, dtype="float16", progress=False)
    small = xr.open_zarr(out)["embedding"].load()  # the store is replaced as a whole
    assert small.shape == (2, 5, 10) and small.dtype == np.float16
    comp, mean = np.asarray(small.attrs["pca_components"]), np.asarray(small.attrs["pca_mean"])
    assert comp.shape == (2, ref.shape[0]) and mean.shape == (ref.shape[0],)


def test_an_existing_folder_that_is_not_a_zarr_store_is_never_replaced(enc, tmp_path):
    pytest.importorskip("zarr")
    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a Zarr store"):
        write_raster(enc, folder, bbox=(0, 0, 4, 4), resolution=2.0, month=1, progress=False)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_dask_backed_grid_equals_the_in_memory_one(enc):
    pytest.importorskip("dask")
    bbox = (-20.0, -30.0, 40.0, 30.0)
    ref = enc.embed_grid(bbox=bbox, resolution=5.0, month=7)
    lazy = enc.embed_grid(bbox=bbox, resolution=5.0, month=7, chunks=5)
    assert lazy.chunks[1] == (5, 5, 2) and lazy.attrs == ref.attrs
    np.testing.assert_allclose(lazy.compute().values, ref.values, rtol=1e-5, atol=1e-6)  # other batch shapes
    with pytest.raises(InputError, match="chunks"):
        enc.embed_grid(bbox=bbox, resolution=5.0, month=7, chunks=0)


def test_cli_writes_a_raster(ckpt, tmp_path):
    out = tmp_path / "x.tif"
    r = runner.invoke(app, ["geo", "raster", "--bbox", "170", "-5", "-175", "5", "-r", "2.5", "-m", "6", "--pca",
                            "2", "-o", str(out), "-c", str(ckpt), "--no-progress"])
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as ds:
        assert ds.shape == (4, 6) and ds.count == 2 and ds.bounds.left == 170 and ds.bounds.right == 185


@pytest.mark.slow
def test_kill_9_mid_raster_then_rerun_resumes_and_leaves_only_the_output(ckpt, tmp_path):
    import signal
    import subprocess
    import sys

    from tests.killpoint import killed_cli

    out = tmp_path / "big.tif"
    cmd = [sys.executable, "-m", "lamina.cli", "geo", "raster", "--bbox", "-30", "-10", "30", "10", "-r", "0.1",
           "-m", "6", "--block-rows", "1", "-o", str(out), "-c", str(ckpt), "--no-progress"]
    # the run kills itself right after its 3rd finished block: deterministic on any machine
    proc = subprocess.run(killed_cli("lamina.geo.raster_file:_save_npy", 3, cmd[3:]), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    work = work_dir(out)
    assert proc.returncode == -signal.SIGKILL, "the run must be interrupted mid-raster for this test to mean anything"
    finished = len(list(work.glob("rows-*.npy")))
    assert not out.exists() and finished == 3
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed after {finished} finished blocks" in done.stderr
    assert _files(tmp_path) == ["big.tif"]
    enc = tiny_encoder()
    with rasterio.open(out) as ds:
        assert ds.shape == (200, 600)
        rows = ds.read(window=rasterio.windows.Window(0, 0, 600, finished + 2))
    head = enc.embed_grid(bbox=(-30, 10 - 0.1 * (finished + 2), 30, 10), resolution=0.1, month=6).values
    np.testing.assert_allclose(rows, head, rtol=1e-5, atol=1e-6)


def test_a_second_writer_of_the_same_output_is_refused(enc, tmp_path):
    import fcntl
    import os

    out = tmp_path / "r.tif"
    work_dir(out).mkdir()
    fd = os.open(work_dir(out), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running write_raster holds
        with pytest.raises(InputError, match="being written by another running process"):
            write_raster(enc, out, bbox=(0, 0, 4, 4), resolution=1.0, month=6, progress=False)
    finally:
        os.close(fd)
    write_raster(enc, out, bbox=(0, 0, 4, 4), resolution=1.0, month=6, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tif"]


def test_assemble_writes_rows_of_tiles_from_blocks_that_straddle_them(tmp_path):
    """Row blocks of uneven heights, crossing tile boundaries, land where they belong (synthetic values)."""
    grid = RasterGrid.from_bbox((0.0, 0.0, 30.0, 30.0), 0.1)  # 300 x 300 pixels, tiles of 128: 3 rows of tiles
    heights = [7, 121, 1, 64, 107]
    full = np.random.default_rng(0).random((2, 300, 300)).astype(np.float32)
    files, r0 = [], 0
    for i, h in enumerate(heights):
        files.append(tmp_path / f"b{i}.npy")
        np.save(files[-1], full[:, r0 : r0 + h])
        r0 += h
    out = tmp_path / "a.tif"
    raster_file._assemble(out, grid, files, ["a", "b"], {}, dtype="float32", tile=128)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), full)
    assert 64 << 20 <= raster_file._gdal_cache_bytes(grid, 2, 128) <= 1024 << 20
    big = RasterGrid.from_bbox((-180.0, -90.0, 180.0, 90.0), 0.05)
    assert raster_file._gdal_cache_bytes(big, 16, 512) > 512 * 7680 * 16 * 4  # a whole row of tiles fits
