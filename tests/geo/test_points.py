"""Points with geometries: embed_frame, GeoParquet / GeoPackage through `lamina geo embed`, and one value per point
whichever way it is fetched (array API, GeoPandas, CLI, raster pixel centre)."""

import json
import warnings

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from typer.testing import CliRunner

import lamina.geo
from lamina.cli import app
from lamina.errors import InputError
from lamina.geo.encoder import load

from .test_encoder import tiny_encoder

runner = CliRunner()
COLS = [f"emb_{i:03d}" for i in range(8)]
LON, LAT = np.array([8.55, -70.0, 151.2, 0.0, -179.0]), np.array([47.37, -15.0, -33.9, 0.0, 65.0])


@pytest.fixture(scope="module")
def enc(ckpt):
    return load(ckpt)


def _frame(crs=4326):
    gdf = gpd.GeoDataFrame({"site": list("abcde"), "m": [1, 4, 7, 10, 12]},
                           geometry=gpd.points_from_xy(LON, LAT), crs=4326, index=[10, 11, 12, 13, 14])
    return gdf.to_crs(crs)


def _polygons():
    return gpd.GeoSeries(shapely.buffer(_frame().geometry.values, 0.5), index=_frame().index, crs=4326)


def test_embed_frame_reprojects_and_adds_columns(enc):
    ref = enc.embed(lon=LON, lat=LAT, month=6)
    out = lamina.geo.embed_frame(_frame(3857), month=6, encoder=enc)  # Web Mercator in, lon/lat inside
    assert list(out.index) == [10, 11, 12, 13, 14] and out.crs.to_epsg() == 3857
    assert list(out.columns[:2]) == ["site", "m"] and out.geometry.name == "geometry"
    np.testing.assert_allclose(out[COLS].to_numpy(), ref, rtol=1e-5, atol=1e-5)
    per_row = lamina.geo.embed_frame(_frame(), month="m", encoder=enc)
    np.testing.assert_allclose(per_row[COLS].to_numpy(), enc.embed(lon=LON, lat=LAT, month=[1, 4, 7, 10, 12]),
                               rtol=1e-6)
    assert lamina.geo.embed_frame(_frame(), encoder=enc).shape == (5, 3 + 32)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: _frame().set_crs(None, allow_override=True), "geometry: gdf has no CRS"),
        (lambda: _frame().set_geometry(_polygons()), "holds a polygon geometry at row 0; expected points"),
        (lambda: _frame().set_geometry(gpd.GeoSeries([shapely.Point(0, 0), None, shapely.Point(1, 1),
                                                      shapely.Point(2, 2), shapely.Point(3, 3)],
                                                     index=_frame().index, crs=4326)), "no (or an empty) geometry"),
        (lambda: _frame().drop(columns="geometry").assign(x=1), "gdf: expected a geopandas.GeoDataFrame"),
        (lambda: lamina.geo.embed_frame(_frame(), month=6, encoder=tiny_encoder()), "already has embedding columns"),
    ],
)
def test_embed_frame_bad_input(enc, make, fragment):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        lamina.geo.embed_frame(make(), month=6, encoder=enc)


def test_one_value_per_point_via_embed_embed_frame_cli_and_raster_pixel_centre(enc, ckpt, tmp_path):
    bbox, res = (-10.0, 40.0, 10.0, 50.0), 0.5
    da = enc.embed_grid(bbox=bbox, resolution=res, month=7)
    rows, cols = np.array([0, 3, 7, 19]), np.array([0, 11, 25, 39])
    lon, lat = da.lon.values[cols], da.lat.values[rows]  # pixel centres
    ref = enc.embed(lon=lon, lat=lat, month=7)
    np.testing.assert_allclose(da.values[:, rows, cols].T, ref, rtol=1e-5, atol=1e-6)
    gdf = gpd.GeoDataFrame({"k": range(4)}, geometry=gpd.points_from_xy(lon, lat), crs=4326).to_crs(32632)
    np.testing.assert_allclose(lamina.geo.embed_frame(gdf, month=7, encoder=enc)[COLS].to_numpy(), ref,
                               rtol=1e-5, atol=1e-5)
    gdf.to_parquet(tmp_path / "pts.parquet")
    gdf.to_file(tmp_path / "pts.gpkg")
    for src, dst in (("pts.parquet", "e1.parquet"), ("pts.gpkg", "e2.gpkg")):
        r = runner.invoke(app, ["geo", "embed", str(tmp_path / src), "-o", str(tmp_path / dst), "-m", "7",
                                "-c", str(ckpt), "--no-progress"])
        assert r.exit_code == 0, r.output
        back = gpd.read_file(tmp_path / dst) if dst.endswith(".gpkg") else gpd.read_parquet(tmp_path / dst)
        np.testing.assert_allclose(back[COLS].to_numpy(), ref, rtol=1e-5, atol=1e-5)
    r = runner.invoke(app, ["geo", "raster", "--bbox", *map(str, bbox), "-r", str(res), "-m", "7", "-o",
                            str(tmp_path / "r.tif"), "-c", str(ckpt), "--no-progress"])
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "r.tif") as ds:
        pix = np.array(list(ds.sample(zip(lon, lat, strict=True))))  # the GeoTIFF sampled at the points
    np.testing.assert_allclose(pix, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("out_name", ["out.parquet", "out.gpkg"])
@pytest.mark.parametrize("in_name", ["in.parquet", "in.gpkg"])
def test_cli_geo_tables_keep_geometry_and_crs_and_stream_in_chunks(enc, ckpt, tmp_path, in_name, out_name):
    gdf = _frame(3035)  # ETRS89 / LAEA Europe
    src = tmp_path / in_name
    gdf.to_file(src) if in_name.endswith(".gpkg") else gdf.to_parquet(src)
    dst = tmp_path / out_name
    r = runner.invoke(app, ["geo", "embed", str(src), "-o", str(dst), "--month-col", "m", "--chunk-rows", "2",
                            "-c", str(ckpt), "--no-progress"])
    assert r.exit_code == 0, r.output
    back = gpd.read_file(dst) if out_name.endswith(".gpkg") else gpd.read_parquet(dst)
    assert back.crs.to_epsg() == 3035 and list(back["site"]) == list("abcde")
    np.testing.assert_allclose(back.geometry.x, gdf.geometry.x)
    np.testing.assert_allclose(back.geometry.y, gdf.geometry.y)
    np.testing.assert_allclose(back[COLS].to_numpy(), enc.embed(lon=LON, lat=LAT, month=[1, 4, 7, 10, 12]),
                               rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({in_name, out_name})


def test_geoparquet_without_a_crs_key_is_lon_lat(ckpt, enc, tmp_path):
    src = tmp_path / "crs84.parquet"
    _frame().to_parquet(src)
    table = pq.read_table(src)
    geo = json.loads(table.schema.metadata[b"geo"])
    del geo["columns"]["geometry"]["crs"]  # GeoParquet: absent crs = OGC:CRS84
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(geo)}), src)
    r = runner.invoke(app, ["geo", "embed", str(src), "-o", str(tmp_path / "o.parquet"), "-m", "2", "-c",
                            str(ckpt), "--no-progress"])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(gpd.read_parquet(tmp_path / "o.parquet")[COLS].to_numpy(),
                               enc.embed(lon=LON, lat=LAT, month=2), rtol=1e-5, atol=1e-6)


def _write(kind, path):
    if kind == "polygons":
        _frame().set_geometry(_polygons()).to_parquet(path)
    elif kind == "no_crs":
        _frame().set_crs(None, allow_override=True).to_parquet(path)
    elif kind == "no_crs_gpkg":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pyogrio: "'crs' was not provided"
            _frame().set_crs(None, allow_override=True).to_file(path)
    elif kind == "lines_gpkg":
        g = _frame()
        g.set_geometry(gpd.GeoSeries([shapely.LineString([(0, 0), (1, 1)])] * 5, index=g.index, crs=4326)
                       ).to_file(path)
    elif kind == "garbage_gpkg":
        path.write_bytes(b"not a geopackage at all")
    else:
        _frame().to_parquet(path)


@pytest.mark.parametrize(
    ("kind", "src_name", "dst_name", "fragment"),
    [
        ("polygons", "p.parquet", "o.parquet", "holds a polygon geometry at row 0; expected points"),
        ("lines_gpkg", "p.gpkg", "o.gpkg", "holds a linestring geometry at row 0; expected points"),
        ("no_crs", "p.parquet", "o.parquet", "has no CRS"),
        ("no_crs_gpkg", "p.gpkg", "o.parquet", "has no CRS"),
        ("garbage_gpkg", "p.gpkg", "o.parquet", "is not a readable GeoPackage"),
        ("points", "p.parquet", "o.csv", "written as GeoParquet (.parquet) or GeoPackage (.gpkg)"),
    ],
)
def test_cli_bad_geo_input_exits_2_leaves_nothing_and_input_untouched(ckpt, tmp_path, kind, src_name, dst_name,
                                                                      fragment):
    src = tmp_path / src_name
    _write(kind, src)
    before = src.read_bytes()
    r = runner.invoke(app, ["geo", "embed", str(src), "-o", str(tmp_path / dst_name), "-m", "6", "-c", str(ckpt),
                            "--no-progress"])
    assert r.exit_code == 2, r.output
    assert fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [src_name] and src.read_bytes() == before


def test_cli_gpkg_output_needs_a_geometry_input(ckpt, tmp_path):
    src = tmp_path / "plain.csv"
    src.write_text("lon,lat\n1,2\n")
    r = runner.invoke(app, ["geo", "embed", str(src), "-o", str(tmp_path / "o.gpkg"), "-m", "6", "-c", str(ckpt)])
    assert r.exit_code == 2 and "needs an input with point geometries" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.csv"]


def _geoparquet(path, geo_meta: bytes | None, wkb=None):
    """A Parquet file written by pyarrow with a hand-set 'geo' entry (the damage under test), from a real point."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    geom = wkb if wkb is not None else shapely.to_wkb(shapely.points([8.55], [47.37]))
    table = pa.table({"site": ["a"], "geometry": pa.array(list(geom), type=pa.binary())})
    if geo_meta is not None:
        table = table.replace_schema_metadata({b"geo": geo_meta})
    pq.write_table(table, path)


@pytest.mark.parametrize("geo_meta, wkb, words", [
    (b"{not json", None, "not JSON"),
    (b"[1, 2]", None, "not a GeoParquet description"),
    (b'{"primary_column": "geometry", "columns": {"geometry": 5}}', None, "is not an object"),
    (b'{"primary_column": "geometry", "columns": {"geometry": {"encoding": "WKB"}}}', [b"\x01\x02garbage"],
     "not a WKB geometry at row 0"),
    (b'{"primary_column": "geometry", "columns": {"geometry": {"encoding": "WKB", "crs": "EPSG:99999999"}}}', None,
     "CRS that cannot be read"),
])
def test_damaged_geoparquet_is_one_error_line(tmp_path, geo_meta, wkb, words):
    from typer.testing import CliRunner

    from lamina.cli import app

    src = tmp_path / "pts.parquet"
    _geoparquet(src, geo_meta, wkb)
    r = CliRunner().invoke(app, ["geo", "embed", str(src), "-o", str(tmp_path / "out.parquet"), "--month", "6"])
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pts.parquet"]
