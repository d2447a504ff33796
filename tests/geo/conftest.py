"""Fixtures for lamina.geo tests.

``tiny_chelsa`` writes SYNTHETIC GeoTIFFs named like CHELSA's (smooth made-up fields on a coarse global grid):
they exercise file naming, windowed TIFF reading and the pretraining mechanics, not climate. Tests of the real
offline sources live in test_sources.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest


def write_geotiff(path, data, *, lon_left=-180.0, lat_top=90.0, res=None, nodata=None, tile=None, gdal_meta=None,
                  crs="EPSG:4326", transform=None, area_or_point=None):
    """Write a single-band GeoTIFF with rasterio (GDAL): EPSG:4326, PixelIsArea, pixels of ``res`` degrees from
    (``lon_left``, ``lat_top``) unless ``transform`` (an Affine, or None with ``crs=None`` for no georeferencing);
    ``gdal_meta={"scale": s, "offset": o}`` as GDAL writes them; ``area_or_point="Point"`` for PixelIsPoint."""
    import rasterio

    h, w = data.shape
    res = res or 360.0 / w
    if transform is None and crs is not None:
        transform = rasterio.Affine(res, 0.0, lon_left, 0.0, -res, lat_top)
    blocks = {"tiled": True, "blockysize": tile[0], "blockxsize": tile[1]} if tile else {"blockysize": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=1, dtype=data.dtype, crs=crs,
                           transform=transform, nodata=nodata, compress="deflate", **blocks) as dst:
            if area_or_point is not None:
                dst.update_tags(AREA_OR_POINT=area_or_point)
            if gdal_meta:
                dst.scales = (float(gdal_meta.get("scale", 1.0)),)
                dst.offsets = (float(gdal_meta.get("offset", 0.0)),)
            dst.write(data, 1)
    return path


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


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """The tiny test encoder (synthetic weights, :func:`tests.geo.test_encoder.tiny_encoder`) saved once per module:
    a module may alter its copy (the hostile-input tests do)."""
    from .test_encoder import tiny_encoder

    path = tmp_path_factory.mktemp("enc") / "tiny"
    tiny_encoder().save(path)
    return path
