import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lamina.errors import InputError
from lamina.geo.embed import embed_grid, process_table

from .test_encoder import tiny_encoder


@pytest.fixture
def points(tmp_path):
    rng = np.random.default_rng(0)
    n = 2500
    df = pd.DataFrame({"site": [f"s{i}" for i in range(n)], "x": rng.uniform(-180, 180, n),
                       "y": rng.uniform(-90, 90, n), "m": rng.integers(1, 13, n)})
    df.to_parquet(tmp_path / "pts.parquet", row_group_size=700)
    df.to_csv(tmp_path / "pts.csv", index=False)
    return df, tmp_path


@pytest.mark.parametrize("src", ["pts.parquet", "pts.csv"])
def test_table_streams_in_chunks_and_matches_array_api(points, src):
    df, d = points
    enc = tiny_encoder()
    n = process_table(enc, d / src, d / "out.parquet", lon_col="x", lat_col="y", month_col="m", chunk_rows=600,
                      progress=False)
    assert n == len(df)
    out = pd.read_parquet(d / "out.parquet")
    assert list(out.columns[:4]) == ["site", "x", "y", "m"] and out.shape == (len(df), 4 + 8)
    emb = out[[f"emb_{i:03d}" for i in range(8)]].to_numpy()
    np.testing.assert_allclose(emb, enc.embed(lon=df.x, lat=df.y, month=df.m), rtol=1e-6)
    assert pq.ParquetFile(d / "out.parquet").schema_arrow.field("emb_000").type == "float"


def test_table_without_month_gives_four_seasons_and_reconstruct_needs_month(points):
    df, d = points
    enc = tiny_encoder()
    process_table(enc, d / "pts.csv", d / "out.csv", lon_col="x", lat_col="y", keep_columns=False, progress=False)
    out = pd.read_csv(d / "out.csv")
    assert out.shape == (len(df), 32) and out.columns[0] == "emb_m03_000" and out.columns[-1] == "emb_m12_007"
    with pytest.raises(InputError, match="reconstruct needs"):
        process_table(enc, d / "pts.csv", d / "r.parquet", what="reconstruct", lon_col="x", lat_col="y")
    process_table(enc, d / "pts.csv", d / "r.parquet", what="reconstruct", lon_col="x", lat_col="y", month=4,
                  progress=False)
    assert list(pd.read_parquet(d / "r.parquet").columns[-2:]) == ["t", "p"]


def test_bad_rows_leave_nothing_behind(points):
    df, d = points
    bad = df.copy()
    bad.loc[2100, "y"] = 95.0
    bad.to_parquet(d / "bad.parquet", row_group_size=700)
    (d / "out.parquet").write_bytes(b"previous result")
    with pytest.raises(InputError, match=r"lat: must lie in \[-90, 90\], got 95 at row 2100"):
        process_table(tiny_encoder(), d / "bad.parquet", d / "out.parquet", lon_col="x", lat_col="y", month=1,
                      chunk_rows=700, progress=False)
    assert (d / "out.parquet").read_bytes() == b"previous result"
    assert sorted(p.name for p in d.iterdir()) == ["bad.parquet", "out.parquet", "pts.csv", "pts.parquet"]


def test_table_errors(points):
    _, d = points
    enc = tiny_encoder()
    with pytest.raises(InputError, match="column 'lon' not found"):
        process_table(enc, d / "pts.csv", d / "o.parquet", month=1, progress=False)
    with pytest.raises(InputError, match="does not exist"):
        process_table(enc, d / "nope.csv", d / "o.parquet", progress=False)
    with pytest.raises(InputError, match=r"must end in \.parquet or \.csv"):
        process_table(enc, d / "pts.csv", d / "o.txt", lon_col="x", lat_col="y", progress=False)
    (d / "empty.csv").write_text("x,y\n")
    with pytest.raises(InputError, match="no rows"):
        process_table(enc, d / "empty.csv", d / "o.parquet", lon_col="x", lat_col="y", month=1, progress=False)
    assert not (d / "o.parquet").exists()


def test_embed_grid():
    grid, emb = embed_grid(tiny_encoder(), resolution_deg=10.0, month=1)
    assert grid.shape == (18, 36) and emb.shape == (18, 36, 8)
    with pytest.raises(InputError, match="resolution"):
        embed_grid(tiny_encoder(), resolution_deg=0.0)


def test_every_table_output_says_which_encoder_made_it(tmp_path):
    """Parquet schema metadata, a CSV sidecar, GeoParquet metadata and GeoPackage layer metadata all carry the
    checkpoint's sha256 (as its config.json states it) and lamina's version."""
    import json

    import geopandas as gpd
    import pyarrow.parquet as pq
    import pyogrio
    import shapely

    import lamina
    from lamina._io import read_checkpoint_config
    from lamina.geo.embed import csv_sidecar, process_table
    from lamina.geo.encoder import default_checkpoint_path

    enc = lamina.geo.load()
    sha = read_checkpoint_config(default_checkpoint_path())["sha256"]
    pts = tmp_path / "pts.csv"
    pts.write_text("lon,lat\n8.55,47.37\n-70,-15\n")
    process_table(enc, pts, tmp_path / "e.parquet", month=6, progress=False)
    prov = json.loads(pq.read_schema(tmp_path / "e.parquet").metadata[b"lamina"])
    assert prov["checkpoint_sha256"] == sha and prov["lamina_version"] == lamina.__version__ and prov["months"] == "6"
    process_table(enc, pts, tmp_path / "e.csv", progress=False)
    side = json.loads(csv_sidecar(tmp_path / "e.csv").read_text())
    assert side["checkpoint_sha256"] == sha and side["months"] == "3,6,9,12"
    gdf = gpd.GeoDataFrame({"site": ["a", "b"]}, geometry=shapely.points([8.55, -70.0], [47.37, -15.0]),
                           crs="EPSG:4326")
    gdf.to_parquet(tmp_path / "g.parquet")
    gdf.to_file(tmp_path / "g.gpkg")
    process_table(enc, tmp_path / "g.parquet", tmp_path / "o.parquet", month=3, progress=False)
    meta = pq.read_schema(tmp_path / "o.parquet").metadata
    assert json.loads(meta[b"lamina"])["checkpoint_sha256"] == sha and b"geo" in meta
    process_table(enc, tmp_path / "g.gpkg", tmp_path / "o.gpkg", month=3, progress=False)
    layer_meta = pyogrio.read_info(tmp_path / "o.gpkg")["layer_metadata"]
    assert json.loads(layer_meta["lamina"])["checkpoint_sha256"] == sha


def test_an_input_column_named_like_an_output_column_is_refused(tmp_path):
    from typer.testing import CliRunner

    from lamina.cli import app

    (tmp_path / "pts.csv").write_text("lon,lat,emb_000\n8.55,47.37,1\n")
    r = CliRunner().invoke(app, ["geo", "embed", str(tmp_path / "pts.csv"), "-o", str(tmp_path / "o.parquet"),
                                 "--month", "6"])
    assert r.exit_code == 2 and "'emb_000'" in r.output and "--no-keep-columns" in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pts.csv"]
    r = CliRunner().invoke(app, ["geo", "embed", str(tmp_path / "pts.csv"), "-o", str(tmp_path / "o.parquet"),
                                 "--month", "6", "--no-keep-columns"])
    assert r.exit_code == 0, r.output
