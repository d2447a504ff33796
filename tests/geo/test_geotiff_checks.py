"""GeoTIFFs that lamina must not misread: projected CRS, PixelIsPoint registration, unparseable decoding tags.

Every file here is SYNTHETIC, written by rasterio (GDAL) in the test (made-up values on made-up grids); the files
with a broken tag are GDAL's, with the tag's text overwritten afterwards (as another tool might have written it).
"""

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from typer.testing import CliRunner

from lamina.errors import InputError
from lamina.geo.data.rasters import RasterStack
from lamina.geo.data.readers import TiffReader

from .conftest import write_geotiff

H, W = 18, 36  # a global 10-degree grid
UTM = {"crs": "EPSG:32610", "transform": Affine(1000.0, 0.0, 500000.0, 0.0, -1000.0, 4200000.0)}


def _field():
    return np.arange(H * W, dtype=np.float32).reshape(H, W)  # value = row * W + col: says which pixel was read


def _damage(path, old: bytes, new: bytes):
    """Overwrite the one occurrence of ``old`` in the file with ``new`` (same length: a tag's text, in place)."""
    assert len(old) == len(new)
    raw = path.read_bytes()
    assert raw.count(old) == 1
    path.write_bytes(raw.replace(old, new))
    return path


def test_pixel_is_point_is_read_on_the_grid_centred_at_the_tiepoint(tmp_path):
    area = TiffReader(write_geotiff(tmp_path / "area.tif", _field()))
    # the same raster registered as points: GDAL writes the centre of pixel (0, 0), (-175, 85), as the tiepoint
    write_geotiff(tmp_path / "point.tif", _field(), area_or_point="Point")
    with rasterio.Env(GTIFF_POINT_GEO_IGNORE=True):  # GDAL's option to read the tiepoint as a corner
        with rasterio.open(tmp_path / "point.tif") as src:
            assert (src.transform.c, src.transform.f) == (-175.0, 85.0)  # the file is registered as points
        point = TiffReader(tmp_path / "point.tif")  # ... which lamina does not follow
    assert point.grid == area.grid and point.grid.is_global
    stack = RasterStack.from_geotiffs({"v": tmp_path / "point.tif"})
    vals = stack.values_at(lon=[-174.0, 5.0, 179.0], lat=[84.0, -5.0, -89.0], month=1)[:, 0]
    np.testing.assert_array_equal(vals, [0, 9 * W + 18, 17 * W + 35])


def test_projected_crs_is_refused_naming_the_file(tmp_path):
    utm = write_geotiff(tmp_path / "utm.tif", _field(), **UTM)
    with pytest.raises(InputError) as err:
        TiffReader(utm)
    assert str(utm) in str(err.value) and "projected CRS (EPSG:32610)" in str(err.value)
    # no CRS at all, coordinates in metres: refused by the extent check
    bare = write_geotiff(tmp_path / "bare.tif", _field(), crs=None, transform=UTM["transform"])
    with pytest.raises(InputError, match=r"bare\.tif: extent lon \[500000, .* is not in degrees"):
        TiffReader(bare)
    geocentric = write_geotiff(tmp_path / "ecef.tif", _field(), crs="EPSG:4978")
    with pytest.raises(InputError, match=r"ecef\.tif: geocentric CRS"):
        TiffReader(geocentric)


def test_invalid_pixel_size_rotation_and_bands_are_refused(tmp_path):
    path = write_geotiff(tmp_path / "flip.tif", _field(), transform=Affine(-10.0, 0.0, 180.0, 0.0, -10.0, 90.0))
    with pytest.raises(InputError, match=r"flip\.tif: invalid pixel size \(-10.0, 10.0\)"):
        TiffReader(path)
    path = write_geotiff(tmp_path / "rot.tif", _field(), transform=Affine(10.0, 1.0, -180.0, 0.0, -10.0, 90.0))
    with pytest.raises(InputError, match=r"rot\.tif: rotated or sheared geotransform"):
        TiffReader(path)
    with pytest.raises(InputError, match=r"plain\.tif: no GeoTIFF georeferencing"):
        TiffReader(write_geotiff(tmp_path / "plain.tif", _field(), crs=None))
    with rasterio.open(tmp_path / "two.tif", "w", driver="GTiff", height=H, width=W, count=2, dtype="float32",
                       crs="EPSG:4326", transform=Affine(10.0, 0.0, -180.0, 0.0, -10.0, 90.0)) as dst:
        dst.write(np.stack([_field(), _field()]))
    with pytest.raises(InputError, match=r"two\.tif: expected a single-band GeoTIFF, got 2 bands"):
        TiffReader(tmp_path / "two.tif")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"junk\.tif: not a readable GeoTIFF"):
        TiffReader(tmp_path / "junk.tif")


def test_unparseable_nodata_is_refused_unless_given(tmp_path):
    raw = _field().astype(np.int16)
    raw[0, 0] = -9999
    path = _damage(write_geotiff(tmp_path / "nd.tif", raw, nodata=-9999), b"-9999\x00", b"none\x00\x00")
    with pytest.raises(InputError) as err:
        TiffReader(path)
    assert str(path) in str(err.value) and "GDAL_NODATA tag 'none' is not a number" in str(err.value)
    reader = TiffReader(path, nodata=-9999)  # the caller says what no data is
    assert np.isnan(reader.read(0, 0, 1, 0, 2)[0, 0]) and reader.read(0, 0, 1, 0, 2)[0, 1] == 1
    good = TiffReader(write_geotiff(tmp_path / "ok.tif", raw, nodata=-9999))
    assert good.nodata == -9999 and np.isnan(good.read(0, 0, 1, 0, 1)[0, 0])


@pytest.mark.parametrize(("meta", "damage", "message"), [
    ({"scale": 0.5}, (b'"scale">0.5<', b'"scale">abc<'), "GDAL metadata scale 'abc' is not a finite number"),
    ({"scale": 0.1, "offset": -1.0}, (b'"offset">-1</Item>', b'"offset"></Item>  '),
     "GDAL metadata offset '' is not a finite number"),
    ({"offset": float("nan")}, None, "GDAL metadata offset 'nan' is not a finite number"),
])  # fmt: skip
def test_unparseable_scale_or_offset_is_refused(tmp_path, meta, damage, message):
    path = write_geotiff(tmp_path / "meta.tif", _field().astype(np.int16), gdal_meta=meta)
    if damage is not None:
        _damage(path, *damage)
    with pytest.raises(InputError) as err:
        TiffReader(path)
    assert str(path) in str(err.value) and message in str(err.value)
    reader = TiffReader(path, scale=2.0, offset=1.0)  # explicit decoding wins over the broken tags
    assert reader.read(0, 0, 1, 0, 2).tolist() == [[1.0, 3.0]]


def test_parsed_scale_and_offset_decode(tmp_path):
    reader = TiffReader(write_geotiff(tmp_path / "s.tif", _field().astype(np.int16),
                                      gdal_meta={"scale": 0.5, "offset": -1.0}))  # fmt: skip
    assert reader.read(0, 0, 1, 0, 3).tolist() == [[-1.0, -0.5, 0.0]]


def test_cli_refuses_a_projected_chelsa_file_in_one_line(tmp_path):
    from lamina.cli import app

    folder = tmp_path / "chelsa"
    folder.mkdir()
    write_geotiff(folder / "CHELSA_bio1_1981-2010_V.2.1.tif", _field(), **UTM)
    r = CliRunner().invoke(app, ["geo", "pretrain", "--out", str(tmp_path / "run"), "--stack", f"chelsa:{folder}",
                                 "--steps", "1", "--layers", "1", "--hidden", "4", "--dim", "2"])  # fmt: skip
    assert r.exit_code == 2 and "projected CRS (EPSG:32610)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
