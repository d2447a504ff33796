"""Points with a geometry column: GeoPandas frames, GeoParquet and GeoPackage files, in any CRS.

Point geometries are reprojected to EPSG:4326 longitude / latitude (pyproj, ``always_xy``) before embedding; the
output keeps the input geometry as it was (same CRS). Files are streamed in chunks like CSV / Parquet tables
(:func:`lamina.geo.embed.process_table`): GeoParquet through pyarrow row batches (WKB geometries, "geo" metadata),
GeoPackage through pyogrio's Arrow stream, and written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lamina._io import write_failure
from lamina.errors import InputError

GEO_SUFFIXES = (".gpkg",)
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_geoparquet(path: Path) -> bool:
    """A Parquet file whose schema carries GeoParquet's ``geo`` metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix.lower() not in PARQUET_SUFFIXES or not path.is_file():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError, ValueError):
        return False  # not readable: the plain-table reader reports it
    return b"geo" in meta


def is_geo_table(path: Path) -> bool:
    """Whether ``path`` is a GeoPackage or a GeoParquet file (points with a geometry column)."""
    return path.suffix.lower() in GEO_SUFFIXES or is_geoparquet(path)


def _is_wgs84_lonlat(crs) -> bool:
    from pyproj import CRS

    return CRS.from_user_input(crs).equals(CRS.from_epsg(4326), ignore_axis_order=True)


def geometries_from_wkb(wkb: np.ndarray, *, where: str, offset: int = 0) -> np.ndarray:
    """(N,) shapely geometries from WKB bytes; InputError naming the first row that is not WKB."""
    import shapely

    try:
        return shapely.from_wkb(wkb)
    except (shapely.errors.GEOSException, TypeError, ValueError):
        geoms = shapely.from_wkb(wkb, on_invalid="ignore")
        bad = np.flatnonzero(shapely.is_missing(geoms) & np.array([w is not None for w in wkb]))
        row = offset + (int(bad[0]) if bad.size else 0)
        raise InputError(f"geometry: {where} holds bytes that are not a WKB geometry at row {row}") from None


def points_lonlat(geoms: np.ndarray, crs, *, where: str, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (EPSG:4326, degrees) of point geometries in ``crs``.

    Args:
        geoms: (N,) shapely geometries.
        crs: anything pyproj reads (EPSG code, WKT, PROJJSON dict, ``pyproj.CRS``); None is refused.
        where: the frame or file, for messages; offset: row number of ``geoms[0]``, for messages.

    Returns:
        ``(lon (N,), lat (N,))`` float64.

    Raises:
        InputError: a missing CRS, a missing or empty geometry, a geometry that is not a point, or a point that
            cannot be reprojected.
    """
    import shapely
    from pyproj import Transformer

    if crs is None:
        raise InputError(f"geometry: {where} has no CRS; set one (GeoPandas: gdf.set_crs('EPSG:4326'))")
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        raise InputError(f"geometry: {where} has no (or an empty) geometry at row {offset + int(np.argmax(missing))}")
    kinds = shapely.get_type_id(geoms)
    not_point = kinds != shapely.GeometryType.POINT
    if not_point.any():
        i = int(np.argmax(not_point))
        name = "missing" if kinds[i] < 0 else shapely.GeometryType(int(kinds[i])).name.lower()
        raise InputError(f"geometry: {where} holds a {name} geometry at row {offset + i}; expected points")
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    from pyproj.exceptions import CRSError, ProjError

    try:
        wgs84 = _is_wgs84_lonlat(crs)
        transformer = None if wgs84 else Transformer.from_crs(crs, 4326, always_xy=True)
    except (CRSError, ProjError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"geometry: {where} has a CRS that cannot be read or reprojected ({first})") from None
    if transformer is None:
        lon, lat = x, y
    else:
        lon, lat = transformer.transform(x, y)
        lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"geometry: the point at row {offset + i} of {where} ({x[i]!r}, {y[i]!r}) cannot be "
                         "reprojected to EPSG:4326 (outside the CRS's area?)")
    return lon, lat


def embed_frame(gdf, month=None, *, encoder=None, precision: str = "float32", wrap_lon: bool = False):
    """Embeddings of the points of a GeoDataFrame, as new columns of a copy of it.

    Args:
        gdf: a ``geopandas.GeoDataFrame`` of points in any CRS (it must have one).
        month: 1..12; the name of a column of months; or None for months 3, 6, 9, 12 concatenated.
        encoder: a :class:`~lamina.geo.encoder.ClimateEncoder`; None for the bundled default.
        precision: ``"float32"`` or ``"bfloat16"``.
        wrap_lon: wrap reprojected longitudes outside [-180, 180].

    Returns:
        A copy of ``gdf`` (same index, geometry and CRS) with float32 columns ``emb_000..`` (one month) or
        ``emb_m03_000..`` (four months), as ``lamina geo embed`` writes them.

    Raises:
        InputError: not a GeoDataFrame, no CRS, geometries that are not points, bad months, clashing columns.
    """
    import geopandas as gpd
    import pandas as pd

    from lamina.geo.columns import embedding_columns
    from lamina.geo.encoder import load

    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(f"gdf: expected a geopandas.GeoDataFrame, got {type(gdf).__name__}")
    enc = encoder if encoder is not None else load()
    lon, lat = points_lonlat(np.asarray(gdf.geometry.values), gdf.crs, where="gdf")
    if isinstance(month, str):
        if month not in gdf.columns:
            raise InputError(f"month: column {month!r} not found; columns are {list(gdf.columns)}")
        month = gdf[month].to_numpy()
    emb = enc.embed(lon=lon, lat=lat, month=month, precision=precision, wrap_lon=wrap_lon)
    cols = embedding_columns(enc, month is not None)
    clash = [c for c in cols if c in gdf.columns]
    if clash:
        raise InputError(f"gdf: already has embedding columns ({clash[0]!r}, ...); drop them first")
    out = pd.concat([gdf, pd.DataFrame(emb, index=gdf.index, columns=cols)], axis=1)
    return gpd.GeoDataFrame(out, geometry=gdf.geometry.name, crs=gdf.crs)


def gpkg_layer(path: Path, layer: str | None) -> str:
    """The layer of GeoPackage ``path`` to read: ``layer`` if the file has it; with ``layer=None`` its only layer.

    Raises:
        InputError: a file of several layers and no ``layer`` (the message names them: reading the first one
            silently would embed a part of the file), or a ``layer`` the file does not have.
    """
    import pyogrio

    names = [str(row[0]) for row in _gdal_call(path, pyogrio.list_layers, path)]
    shown = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
    if layer is not None:
        if not isinstance(layer, str) or layer not in names:
            raise InputError(f"layer: {path} has no layer {layer!r}; its layers are {shown}")
        return layer
    if not names:
        raise InputError(f"input: {path} holds no layer")
    if len(names) > 1:
        raise InputError(f"input: {path} holds {len(names)} layers ({shown}); name the one to read with --layer "
                         "(Python: layer=...)")
    return names[0]


class GeoReader:
    """Streams a GeoParquet or GeoPackage file as ``(attribute table, WKB geometries)`` chunks.

    ``layer``: the GeoPackage layer to read (None: the file's only layer; a file of several is refused).
    """

    def __init__(self, path: Path, chunk_rows: int, layer: str | None = None):
        self.path, self.chunk_rows, self.layer = path, chunk_rows, None
        if path.suffix.lower() in GEO_SUFFIXES:
            import pyogrio

            self.layer = gpkg_layer(path, layer)
            info = _gdal_call(path, pyogrio.read_info, path, layer=self.layer)
            self.crs, self.rows = info.get("crs"), int(info.get("features") or 0)
            self.geometry_name = info.get("geometry_name") or "geometry"
            self.crs_json = None
        else:
            import pyarrow.parquet as pq

            if layer is not None:
                raise InputError(f"layer: {path} is a GeoParquet file, which has no layers; --layer is for "
                                 "GeoPackage (.gpkg) input")
            pf = pq.ParquetFile(path)
            try:
                meta = json.loads(pf.schema_arrow.metadata[b"geo"])
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputError(f"geometry: {path}: its 'geo' metadata is not JSON ({exc}); rewrite the file "
                                 "with GeoPandas (gdf.to_parquet)") from None
            cols = meta.get("columns") if isinstance(meta, dict) else None
            if not isinstance(meta, dict) or not isinstance(cols, dict) or not isinstance(
                    meta.get("primary_column", "geometry"), str):
                raise InputError(f"geometry: {path}: its 'geo' metadata is not a GeoParquet description (an object "
                                 "with 'primary_column' and 'columns'); rewrite the file with GeoPandas")
            self.geometry_name = meta.get("primary_column", "geometry")
            col = cols.get(self.geometry_name, {})
            if not isinstance(col, dict):
                raise InputError(f"geometry: {path}: the 'geo' metadata of column {self.geometry_name!r} is not an "
                                 "object")
            if col.get("encoding", "WKB").upper() != "WKB":
                raise InputError(f"geometry: {path} stores geometries as {col.get('encoding')!r}; lamina reads "
                                 "WKB GeoParquet (GeoPandas: gdf.to_parquet(..., geometry_encoding='WKB'))")
            # GeoParquet: no "crs" key means OGC:CRS84 (lon/lat); an explicit null means unknown
            self.crs = col["crs"] if "crs" in col else "OGC:CRS84"
            self.crs_json = col.get("crs")
            self.rows = pf.metadata.num_rows

    def __iter__(self) -> Iterator:
        import pyarrow as pa

        if self.path.suffix.lower() in GEO_SUFFIXES:
            import pyogrio.raw

            with _gdal_call(self.path, pyogrio.raw.open_arrow, self.path, layer=self.layer,
                            batch_size=self.chunk_rows, use_pyarrow=True) as (_, reader):
                for batch in reader:
                    yield self._split(pa.Table.from_batches([batch]))
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=self.chunk_rows):
                yield self._split(pa.Table.from_batches([batch]))

    def _split(self, table):
        if self.geometry_name not in table.schema.names:
            raise InputError(f"geometry: column {self.geometry_name!r} not found in {self.path}")
        i = table.schema.get_field_index(self.geometry_name)
        return table.remove_column(i), table.column(i).to_numpy(zero_copy_only=False)


def _gdal_call(path, fn, *args, **kwargs):
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        return fn(*args, **kwargs)
    except (DataSourceError, DataLayerError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"input: {path} is not a readable GeoPackage ({first})") from None


class GeoWriter:
    """Writes chunks ``(attribute table, WKB points)`` as GeoParquet or GeoPackage, keeping the input CRS."""

    def __init__(self, path: Path, reader: GeoReader, layer: str, provenance: dict | None = None):
        self.path, self.reader, self.layer, self._pq, self._n = path, reader, layer, None, 0
        self.provenance = provenance
        self.gpkg = path.suffix.lower() in GEO_SUFFIXES

    def write(self, table, wkb: np.ndarray) -> None:
        import pyarrow as pa

        name = self.reader.geometry_name
        table = table.append_column(name, pa.array(list(wkb), type=pa.binary()))
        if self.gpkg:
            import pyogrio
            from pyogrio.errors import DataLayerError, DataSourceError

            meta = ({"lamina": json.dumps(self.provenance)} if self.provenance and self._n == 0 else None)
            try:
                pyogrio.write_arrow(table, self.path, layer=self.layer, driver="GPKG", geometry_name=name,
                                    geometry_type="Point", crs=_crs_text(self.reader.crs), append=self._n > 0,
                                    layer_metadata=meta)
            except (DataSourceError, DataLayerError) as exc:
                raise write_failure(self.path, exc) from None
        else:
            import pyarrow.parquet as pq

            meta = {b"geo": self._geo_metadata()}
            if self.provenance:
                meta[b"lamina"] = json.dumps(self.provenance).encode()
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.path, table.schema.with_metadata(meta), compression="zstd")
            self._pq.write_table(table.replace_schema_metadata(meta))
        self._n += table.num_rows

    def _geo_metadata(self) -> bytes:
        from pyproj import CRS

        col = {"encoding": "WKB", "geometry_types": ["Point"]}
        r = self.reader
        if r.crs_json is not None or r.path.suffix.lower() in GEO_SUFFIXES:
            col["crs"] = r.crs_json if r.crs_json is not None else CRS.from_user_input(r.crs).to_json_dict()
        return json.dumps({"version": "1.1.0", "primary_column": r.geometry_name, "columns": {r.geometry_name: col}},
                          separators=(",", ":")).encode()

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()


def _crs_text(crs) -> str:
    from pyproj import CRS

    return CRS.from_user_input(crs).to_wkt()
