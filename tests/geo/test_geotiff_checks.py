"""GeoTIFFs that lamina must not misread: projected CRS, PixelIsPoint registration, unparseable decoding tags.

Every file here is SYNTHETIC, written by tifffile in the test (made-up values on made-up grids).
"""

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from lamina.errors import InputError
from lamina.geo.data.rasters import RasterStack
from lamina.geo.data.readers import TiffReader

H, W = 18, 36  # a global 10-degree grid


def _geokeys(*keys):
    """GeoKeyDirectory tag values for (key, value) pairs stored in the directory itself."""
    flat = [1, 1, 0, len(keys)]
    for k, v in sorted(keys):
        flat += [k, 0, 1, v]
    return tuple(flat)


def write_tiff(path, data, *, scale=(10.0, 10.0), tiepoint=(0.0, 0.0, -180.0, 90.0), keys=((1024, 2), (1025, 1),
               (2048, 4326)), nodata=None, gdal_meta=None):  # fmt: skip
    """A synthetic single-band GeoTIFF; ``keys`` are GeoKeys ((1024, 1) = projected, (1025, 2) = PixelIsPoint)."""
    i, j, x, y = tiepoint
    extratags = [(33550, "d", 3, (scale[0], scale[1], 0.0)), (33922, "d", 6, (i, j, 0.0, x, y, 0.0))]
    if keys is not None:
        extratags.append((34735, "H", 4 + 4 * len(keys), _geokeys(*keys)))
    if nodata is not None:
        extratags.append((42113, "s", 0, nodata, True))
    if gdal_meta:
        items = "".join(f'<Item name="{k}" sample="0" role="{k}">{v}</Item>' for k, v in gdal_meta.items())
        extratags.append((42112, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>", True))
    tifffile.imwrite(path, data, extratags=extratags, rowsperstrip=4)
    return path


def _field():
    return np.arange(H * W, dtype=np.float32).reshape(H, W)  # value = row * W + col: says which pixel was read


def test_pixel_is_point_is_read_on_the_grid_centred_at_the_tiepoint(tmp_path):
    area = TiffReader(write_tiff(tmp_path / "area.tif", _field()))
    # the same raster registered as points: the tiepoint is the centre of pixel (0, 0), at (-175, 85)
    point = TiffReader(write_tiff(tmp_path / "point.tif", _field(), tiepoint=(0.0, 0.0, -175.0, 85.0),
                                  keys=((1024, 2), (1025, 2), (2048, 4326))))  # fmt: skip
    assert point.grid == area.grid and point.grid.is_global
    stack = RasterStack.from_geotiffs({"v": tmp_path / "point.tif"})
    vals = stack.values_at(lon=[-174.0, 5.0, 179.0], lat=[84.0, -5.0, -89.0], month=1)[:, 0]
    np.testing.assert_array_equal(vals, [0, 9 * W + 18, 17 * W + 35])


def test_projected_crs_is_refused_naming_the_file(tmp_path):
    utm = write_tiff(tmp_path / "utm.tif", _field(), scale=(1000.0, 1000.0), tiepoint=(0, 0, 500000.0, 4200000.0),
                     keys=((1024, 1), (1025, 1), (3072, 32610)))  # fmt: skip
    with pytest.raises(InputError) as err:
        TiffReader(utm)
    assert str(utm) in str(err.value) and "projected CRS (EPSG:32610)" in str(err.value)
    # no GeoKeys at all, coordinates in metres: refused by the extent check
    bare = write_tiff(tmp_path / "bare.tif", _field(), scale=(1000.0, 1000.0), tiepoint=(0, 0, 500000.0, 4200000.0),
                      keys=None)  # fmt: skip
    with pytest.raises(InputError, match=r"bare\.tif: extent lon \[500000, .* is not in degrees"):
        TiffReader(bare)
    geocentric = write_tiff(tmp_path / "ecef.tif", _field(), keys=((1024, 3),))
    with pytest.raises(InputError, match=r"ecef\.tif: geocentric CRS"):
        TiffReader(geocentric)


def test_invalid_pixel_size_is_refused(tmp_path):
    path = write_tiff(tmp_path / "flat.tif", _field(), scale=(0.0, 10.0))
    with pytest.raises(InputError, match=r"flat\.tif: invalid ModelPixelScale \(0.0, 10.0\)"):
        TiffReader(path)


def test_unparseable_nodata_is_refused_unless_given(tmp_path):
    raw = _field().astype(np.int16)
    raw[0, 0] = -9999
    path = write_tiff(tmp_path / "nd.tif", raw, nodata="none")
    with pytest.raises(InputError) as err:
        TiffReader(path)
    assert str(path) in str(err.value) and "GDAL_NODATA tag 'none' is not a number" in str(err.value)
    reader = TiffReader(path, nodata=-9999)  # the caller says what no data is
    assert np.isnan(reader.read(0, 0, 1, 0, 2)[0, 0]) and reader.read(0, 0, 1, 0, 2)[0, 1] == 1
    good = TiffReader(write_tiff(tmp_path / "ok.tif", raw, nodata="-9999"))
    assert np.isnan(good.read(0, 0, 1, 0, 1)[0, 0])


@pytest.mark.parametrize(("meta", "message"), [
    ({"scale": "abc"}, "GDAL metadata scale 'abc' is not a finite number"),
    ({"scale": "0.1", "offset": ""}, "GDAL metadata offset '' is not a finite number"),
    ({"offset": "nan"}, "GDAL metadata offset 'nan' is not a finite number"),
])  # fmt: skip
def test_unparseable_scale_or_offset_is_refused(tmp_path, meta, message):
    path = write_tiff(tmp_path / "meta.tif", _field().astype(np.int16), gdal_meta=meta)
    with pytest.raises(InputError) as err:
        TiffReader(path)
    assert str(path) in str(err.value) and message in str(err.value)
    reader = TiffReader(path, scale=2.0, offset=1.0)  # explicit decoding wins over the broken tags
    assert reader.read(0, 0, 1, 0, 2).tolist() == [[1.0, 3.0]]


def test_parsed_scale_and_offset_decode(tmp_path):
    reader = TiffReader(write_tiff(tmp_path / "s.tif", _field().astype(np.int16),
                                   gdal_meta={"scale": "0.5", "offset": "-1"}))  # fmt: skip
    assert reader.read(0, 0, 1, 0, 3).tolist() == [[-1.0, -0.5, 0.0]]


def test_cli_refuses_a_projected_chelsa_file_in_one_line(tmp_path):
    from lamina.cli import app

    folder = tmp_path / "chelsa"
    folder.mkdir()
    write_tiff(folder / "CHELSA_bio1_1981-2010_V.2.1.tif", _field(), scale=(1000.0, 1000.0),
               tiepoint=(0, 0, 500000.0, 4200000.0), keys=((1024, 1), (3072, 32610)))  # fmt: skip
    r = CliRunner().invoke(app, ["geo", "pretrain", "--out", str(tmp_path / "run"), "--stack", f"chelsa:{folder}",
                                 "--steps", "1", "--layers", "1", "--hidden", "4", "--dim", "2"])  # fmt: skip
    assert r.exit_code == 2 and "projected CRS (EPSG:32610)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
