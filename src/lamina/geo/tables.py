"""Whole points tables with attribute columns, for training on them (``lamina geo finetune``).

A table is read with the readers of ``lamina geo embed`` (:mod:`lamina.geo.embed`, :mod:`lamina.geo.points`), so
it may be any format those commands take: CSV or Parquet with longitude / latitude columns in degrees, or points
with a geometry column in any CRS (GeoParquet, GeoPackage; reprojected to EPSG:4326 lon / lat). A pandas
DataFrame (lon / lat columns) or a GeoPandas GeoDataFrame (point geometries in any CRS) is read the same way.
Unlike embedding, training needs the whole table in memory, so the number of rows is bounded (``max_rows``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lamina.errors import InputError

TABLE_FORMATS = (".csv", ".parquet", ".pq", ".gpkg")


@dataclass
class PointTable:
    """Points and the requested columns of a table.

    Attributes:
        lon: (N,) float64 degrees east as stored (checked by the caller). lat: (N,) float64 degrees north.
        columns: name -> (N,) pandas Series of the requested columns, in the table's own types.
        source: where the rows came from: ``{"source": "file", "path", "format", "sha256"}`` (the sha256 of the
            file's bytes) or ``{"source": "DataFrame"}``; ``"coordinates"`` says how lon / lat were read.
    """

    lon: np.ndarray
    lat: np.ndarray
    columns: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lon)


def read_point_table(data, *, columns, lon_col: str = "lon", lat_col: str = "lat", max_rows: int = 1_000_000,
                     chunk_rows: int = 65_536) -> PointTable:
    """Read the points and some columns of a table file or a (Geo)DataFrame.

    Args:
        data: a path to a ``.csv``, ``.parquet`` (GeoParquet when it has "geo" metadata) or ``.gpkg`` file, or a
            pandas DataFrame / GeoPandas GeoDataFrame.
        columns: names of the columns to return (e.g. the training target).
        lon_col, lat_col: coordinate columns (degrees) of a table without a geometry column.
        max_rows: refuse tables with more rows (they would not fit in memory for training).
        chunk_rows: rows read at once from a file.

    Raises:
        InputError: a missing file or column, an unknown format, an empty or unreadable table, coordinates that are
            not numbers, geometries that are not points or have no CRS, more than ``max_rows`` rows.
    """
    columns = list(columns)
    if isinstance(data, str | os.PathLike):
        return _read_file(Path(data), columns, lon_col, lat_col, max_rows, chunk_rows)
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return _read_frame(data, columns, lon_col, lat_col, max_rows)
    raise InputError(f"data: expected a path to a points table ({', '.join(TABLE_FORMATS)}) or a pandas DataFrame, "
                     f"got {type(data).__name__}")


def _missing_column(name: str, available, where: str, option: str) -> InputError:
    shown = ", ".join(map(str, available))
    return InputError(f"column {name!r} not found in {where}; columns are: {shown} (choose with {option})")


def _check_columns(names, available, where: str, lon_lat: tuple[str, str] | None) -> None:
    if lon_lat is not None:
        for col, option in zip(lon_lat, ("--lon-col", "--lat-col"), strict=True):
            if col not in available:
                raise _missing_column(col, available, where, option)
    for col in names:
        if col not in available:
            raise _missing_column(col, available, where, "--target")


def _check_rows(n: int, max_rows: int, where: str) -> None:
    if n > max_rows:
        raise InputError(f"input: {where} has more than {max_rows:,} rows; training keeps every row in memory, so "
                         "use a random subset of the table")


def _read_frame(df, columns, lon_col, lat_col, max_rows) -> PointTable:
    where = "the DataFrame"
    gpd = sys.modules.get("geopandas")  # a GeoDataFrame exists only if geopandas was imported
    if gpd is not None and isinstance(df, gpd.GeoDataFrame):
        from lamina.geo.points import points_lonlat

        _check_columns(columns, df.columns, where, None)
        _check_rows(len(df), max_rows, where)
        lon, lat = points_lonlat(np.asarray(df.geometry.values), df.crs, where="the GeoDataFrame")
        coords = {"coordinates": f"point geometries ({df.crs}) reprojected to EPSG:4326"}
    else:
        from lamina._validation import as_float_array

        _check_columns(columns, df.columns, where, (lon_col, lat_col))
        _check_rows(len(df), max_rows, where)
        lon = as_float_array(lon_col, df[lon_col].to_numpy(), allow_nan=True)
        lat = as_float_array(lat_col, df[lat_col].to_numpy(), allow_nan=True)
        coords = {"coordinates": f"columns {lon_col!r}, {lat_col!r} (degrees)"}
    if len(df) == 0:
        raise InputError(f"input: {where} has no rows")
    cols = {c: df[c].reset_index(drop=True) for c in columns}
    return PointTable(lon, lat, cols, {"source": "DataFrame", **coords})


def _read_file(path: Path, columns, lon_col, lat_col, max_rows, chunk_rows) -> PointTable:
    import pyarrow as pa

    from lamina._io import sha256_file
    from lamina.geo.points import is_geo_table

    if not path.is_file():
        raise InputError(f"input: {path} does not exist or is not a file")
    if path.suffix.lower() not in TABLE_FORMATS:
        raise InputError(f"input: {path} is not a points table; expected {', '.join(TABLE_FORMATS)} (CSV, Parquet, "
                         "GeoParquet or GeoPackage)")
    if is_geo_table(path):
        lon, lat, parts, coords = _read_geo(path, columns, max_rows, chunk_rows)
    else:
        lon, lat, parts, coords = _read_plain(path, columns, lon_col, lat_col, max_rows, chunk_rows)
    if len(lon) == 0:
        raise InputError(f"input: {path} has no rows")
    try:
        cols = {c: pa.chunked_array(parts[c]).to_pandas() for c in columns}
    except pa.ArrowException as exc:
        raise InputError(f"input: a column of {path} cannot be read as one column ({exc})") from None
    source = {"source": "file", "path": str(path.resolve()), "format": path.suffix.lower().lstrip("."),
              "sha256": sha256_file(path), **coords}
    return PointTable(lon, lat, cols, source)


def _append(parts: list, column) -> None:
    """Collect the Arrow arrays of a column (a RecordBatch gives an Array, a Table a ChunkedArray)."""
    parts.extend(column.chunks if hasattr(column, "chunks") else [column])


def _read_plain(path: Path, columns, lon_col, lat_col, max_rows, chunk_rows):
    from lamina.geo.embed import iter_table, numeric_column  # the readers of lamina geo embed

    lons, lats, parts, n = [], [], {c: [] for c in columns}, 0
    for chunk in iter_table(path, chunk_rows):
        _check_columns(columns, chunk.schema.names, str(path), (lon_col, lat_col))
        lons.append(numeric_column(chunk, lon_col, path, n))
        lats.append(numeric_column(chunk, lat_col, path, n))
        for c in columns:
            _append(parts[c], chunk.column(c))
        n += chunk.num_rows
        _check_rows(n, max_rows, str(path))
    lon = np.concatenate(lons) if lons else np.empty(0)
    lat = np.concatenate(lats) if lats else np.empty(0)
    return lon, lat, parts, {"coordinates": f"columns {lon_col!r}, {lat_col!r} (degrees)"}


def _read_geo(path: Path, columns, max_rows, chunk_rows):
    from lamina.geo.points import GeoReader, geometries_from_wkb, points_lonlat

    reader = GeoReader(path, chunk_rows)
    if reader.crs is None:
        raise InputError(f"geometry: {path} has no CRS; set one (GeoPandas: gdf.set_crs('EPSG:4326'))")
    _check_rows(reader.rows, max_rows, str(path))
    lons, lats, parts, n = [], [], {c: [] for c in columns}, 0
    for attrs, wkb in reader:
        _check_columns(columns, attrs.schema.names, str(path), None)
        geoms = geometries_from_wkb(wkb, where=str(path), offset=n)
        lon, lat = points_lonlat(geoms, reader.crs, where=str(path), offset=n)
        lons.append(lon)
        lats.append(lat)
        for c in columns:
            _append(parts[c], attrs.column(c))
        n += attrs.num_rows
        _check_rows(n, max_rows, str(path))
    lon = np.concatenate(lons) if lons else np.empty(0)
    lat = np.concatenate(lats) if lats else np.empty(0)
    return lon, lat, parts, {"coordinates": "point geometries reprojected to EPSG:4326"}
