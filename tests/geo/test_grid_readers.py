import h5py
import netCDF4
import numpy as np
import pytest

from lamina.errors import InputError
from lamina.geo.data.grid import Grid
from lamina.geo.data.readers import ArrayReader, NetCDFReader, TiffReader

from .conftest import write_geotiff


def test_grid_index_wraps_and_flags_outside():
    g = Grid.global_grid(1.0)
    r, c, inside = g.index(np.array([-180.0, 179.9, 0.2, 180.0]), np.array([90.0, -90.0, 0.1, 0.0]))
    np.testing.assert_array_equal(r, [0, 179, 89, 90])
    np.testing.assert_array_equal(c, [0, 359, 180, 0])  # 180 E wraps onto column 0
    assert inside.all()
    regional = Grid(5.0, 50.0, 0.5, 0.5, 10, 10)
    _, _, inside = regional.index(np.array([7.0, 20.0]), np.array([47.0, 47.0]))
    np.testing.assert_array_equal(inside, [True, False])


def test_grid_from_point_registered_centres_snaps_global():
    lon = np.linspace(0, 359.92, 4320)  # ETOPO5 stores slightly rounded coordinates
    lat = np.linspace(-90, 90, 2161)
    g = Grid.from_centres(lon, lat)
    assert g.is_global and g.dlat < 0
    r, c, inside = g.index(np.array([-150.0]), np.array([0.0]))
    assert inside.all() and c[0] == (210 * 12) and r[0] == 1080


def _raw(h=20, w=40, layers=12):
    rng = np.random.default_rng(0)
    return rng.integers(0, 200, size=(layers, h, w)).astype(np.uint8)


def test_array_reader_layouts_and_decoding():
    raw = _raw()
    g = Grid.global_grid(9.0)
    a = ArrayReader(raw, g, axes="lhw", scale=0.5, offset=-1.0, nodata=0)
    b = ArrayReader(np.moveaxis(raw, 0, -1).copy(), g, axes="hwl", scale=0.5, offset=-1.0, nodata=0)
    win = a.read(3, 2, 7, 5, 30)
    np.testing.assert_array_equal(win, b.read(3, 2, 7, 5, 30))
    expect = raw[3, 2:7, 5:30] * 0.5 - 1.0
    expect[raw[3, 2:7, 5:30] == 0] = np.nan
    np.testing.assert_array_equal(win, expect.astype(np.float32))
    rows, cols = np.array([0, 19, 5]), np.array([39, 0, 11])
    np.testing.assert_array_equal(a.read_points(7, rows, cols), b.read_points(7, rows, cols))
    with pytest.raises(InputError, match="does not match the grid"):
        ArrayReader(raw, Grid.global_grid(10.0))


def test_hdf5_dataset_is_read_by_windows(tmp_path):
    raw = _raw()
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5.create_dataset("v", data=raw, chunks=(1, 8, 8), compression="gzip")
    with h5py.File(tmp_path / "x.h5", "r") as h5:
        r = ArrayReader(h5["v"], Grid.global_grid(9.0), axes="lhw")
        rows, cols = np.array([1, 18, 3, 3]), np.array([2, 39, 20, 21])
        np.testing.assert_array_equal(r.read_points(4, rows, cols, block=8), raw[4, rows, cols].astype(np.float32))


def test_netcdf_reader(tmp_path):
    path = tmp_path / "clim.nc"
    data = np.random.default_rng(1).normal(size=(12, 18, 36)).astype(np.float32)
    data[0, 0, 0] = -1e34
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 12), ds.createDimension("lat", 18), ds.createDimension("lon", 36)
        ds.createVariable("lat", "f8", ("lat",))[:] = np.arange(-85, 90, 10.0)  # south to north
        ds.createVariable("lon", "f8", ("lon",))[:] = np.arange(5, 360, 10.0)  # 0..360 convention
        v = ds.createVariable("t", "f4", ("time", "lat", "lon"), fill_value=np.float32(-1e34))
        v[:] = data
    r = NetCDFReader(path, "t")
    assert r.n_layers == 12 and r.grid.is_global and r.grid.dlat < 0
    win = r.read(0, 0, 18, 0, 36)
    assert np.isnan(win[0, 0])
    np.testing.assert_allclose(win[1:, 1:], data[0, 1:, 1:])
    with pytest.raises(InputError, match="'nope' is not in"):
        NetCDFReader(path, "nope")


@pytest.mark.parametrize("tile", [None, (16, 16)])
def test_tiff_windows_match_full_image(tmp_path, tile):
    data = np.random.default_rng(2).integers(0, 1000, size=(40, 80)).astype(np.int16)
    write_geotiff(tmp_path / "a.tif", data, nodata=-1, tile=tile, gdal_meta={"scale": 0.1, "offset": 2.0})
    r = TiffReader(tmp_path / "a.tif")
    assert r.grid == Grid(-180.0, 90.0, 4.5, 4.5, 40, 80)
    assert (r.scale, r.offset, r.nodata) == (0.1, 2.0, -1.0)
    expected = (data * np.float32(0.1) + np.float32(2.0)).astype(np.float32)
    np.testing.assert_allclose(r.read(0, 0, 40, 0, 80), expected, rtol=1e-6)
    np.testing.assert_allclose(r.read(0, 13, 29, 7, 61), expected[13:29, 7:61], rtol=1e-6)
    rows, cols = np.array([0, 39, 17]), np.array([79, 0, 33])
    np.testing.assert_allclose(r.read_points(0, rows, cols, block=16), expected[rows, cols], rtol=1e-6)


def test_tiff_without_georeferencing_is_refused(tmp_path):
    write_geotiff(tmp_path / "plain.tif", np.zeros((4, 4), np.uint8), crs=None)
    with pytest.raises(InputError, match="georeferencing"):
        TiffReader(tmp_path / "plain.tif")
