"""Fixtures for lamina.geo tests.

``tiny_chelsa`` writes SYNTHETIC GeoTIFFs named like CHELSA's (smooth made-up fields on a coarse global grid):
they exercise file naming, windowed TIFF reading and the pretraining mechanics, not climate. Tests of the real
offline sources live in test_sources.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile


def write_geotiff(path, data, *, lon_left=-180.0, lat_top=90.0, res=None, nodata=None, tile=None, gdal_meta=None):
    """Write a single-band GeoTIFF in EPSG:4326 (PixelIsArea) with tifffile."""
    _h, w = data.shape
    res = res or 360.0 / w
    extratags = [
        (33550, "d", 3, (res, res, 0.0)),
        (33922, "d", 6, (0.0, 0.0, 0.0, lon_left, lat_top, 0.0)),
        (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326)),
    ]
    if nodata is not None:
        extratags.append((42113, "s", 0, str(nodata), True))
    if gdal_meta:
        items = "".join(f'<Item name="{k}" sample="0" role="{k}">{v}</Item>' for k, v in gdal_meta.items())
        extratags.append((42112, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>", True))
    kw = {"tile": tile} if tile else {"rowsperstrip": 3}
    tifffile.imwrite(path, data, extratags=extratags, compression="zlib", **kw)


def synthetic_field(var_index: int, month: int, h: int = 36, w: int = 72) -> np.ndarray:
    lat = np.linspace(90 - 90 / h, -90 + 90 / h, h)[:, None]
    lon = np.linspace(-180 + 180 / w, 180 - 180 / w, w)[None, :]
    season = np.cos(2 * np.pi * (month - 1) / 12)
    return (np.cos(np.deg2rad(lat)) * (20 + var_index) + season * np.sin(np.deg2rad(lat)) * 5
            + np.sin(np.deg2rad(lon) * (var_index + 1)))


@pytest.fixture(scope="session")
def tiny_chelsa(tmp_path_factory):
    """A folder of SYNTHETIC CHELSA-named GeoTIFFs: tas (scaled int16, with nodata) and pr (float), 12 months."""
    folder = tmp_path_factory.mktemp("chelsa")
    for m in range(1, 13):
        tas_c = synthetic_field(0, m)
        raw = np.round((tas_c + 273.15) / 0.1).astype(np.int16)
        raw[:3, :] = -32768  # no data near the north pole
        write_geotiff(folder / f"CHELSA_tas_{m:02d}_1981-2010_V.2.1.tif", raw, nodata=-32768)
        write_geotiff(folder / f"CHELSA_pr_{m:02d}_1981-2010_V.2.1.tif",
                      (synthetic_field(1, m) * 100 + 5000).astype(np.uint16), tile=(16, 16))
    write_geotiff(folder / "CHELSA_bio1_1981-2010_V.2.1.tif", synthetic_field(2, 1).astype(np.float32))
    (folder / "README.txt").write_text("not a tif")
    return folder
