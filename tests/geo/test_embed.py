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
