"""Batched embedding and reconstruction of arrays, tables (CSV / Parquet / GeoParquet / GeoPackage, streamed in
chunks) and grids.

Tables larger than memory are read and written chunk by chunk (pyarrow's streaming CSV reader and Parquet row
batches), so peak memory is set by ``chunk_rows``, not by the file. Outputs are written to a temporary file
and renamed, so a failure (bad coordinates in row 9,000,000, a full disk, Ctrl-C) leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from lamina._io import atomic_path, write_json_atomic
from lamina._validation import check_bool, check_choice, check_positive_int
from lamina.errors import InputError
from lamina.geo.columns import EMBED_MONTHS, embedding_columns
from lamina.geo.data.grid import Grid
from lamina.geo.encoder import ClimateEncoder
from lamina.geo.points import is_geo_table

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def iter_table(path: Path, chunk_rows: int) -> Iterator:
    """The record batches of a CSV / Parquet table, ``chunk_rows`` rows at a time (the reader of `geo embed`, and of
    `geo finetune` through :mod:`lamina.geo.tables`)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"input: {path} is not a .csv or .parquet file")
    try:
        if suffix == ".csv":
            # ~100 bytes per row of a points table: blocks of about chunk_rows rows
            opts = pacsv.ReadOptions(block_size=max(1 << 20, min(chunk_rows * 100, 1 << 30)))
            with pacsv.open_csv(path, read_options=opts) as reader:
                for chunk in reader:
                    yield _utf8_names(chunk, path)
        else:
            for chunk in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield _utf8_names(chunk, path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the machine's condition (a read error), not the file's content
        raise _unreadable(path, exc) from None


def _utf8_names(chunk, path: Path):
    """``chunk``, once its column names read as UTF-8 text (a header in another encoding is refused, naming the
    file and the byte)."""
    try:
        chunk.schema.names  # noqa: B018 - decoding them is the check
    except UnicodeDecodeError as exc:
        raise InputError(f"input: {path}: a column name is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                         f"position {exc.start}); save the file as UTF-8") from None
    return chunk


def _unreadable(path: Path, exc: BaseException) -> InputError:
    kind = "CSV" if path.suffix.lower() == ".csv" else "Parquet"
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    size = path.stat().st_size if path.exists() else 0
    what = "is empty (0 bytes)" if size == 0 else f"is not a readable {kind} file ({detail})"
    return InputError(f"input: {path} {what}")


def numeric_column(chunk, name: str, src: Path, offset: int) -> np.ndarray:
    """A coordinate or month column as float64, refusing text, booleans and other non-numbers by row."""
    import pyarrow as pa

    col = chunk.column(name)
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return col.to_numpy(zero_copy_only=False).astype(np.float64)
    if pa.types.is_null(t):
        raise InputError(f"column {name!r} of {src} is empty (all values missing) at rows {offset}..")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        out = np.empty(len(col), dtype=np.float64)
        for i, v in enumerate(col.to_pylist()):  # numbers stored as text (e.g. a CSV column with quotes)
            try:
                out[i] = np.nan if v is None else float(v)
            except ValueError:
                raise InputError(f"column {name!r} of {src} holds a non-numeric value {v!r} at row {offset + i}; "
                                 "expected numbers") from None
        return out
    raise InputError(f"column {name!r} of {src} has type {t}; expected numbers")


def table_rows(path: Path) -> int | None:
    """Number of rows of a Parquet file from its footer (None for CSV: unknown without reading it)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            raise _unreadable(path, exc) from None
    return None


PROVENANCE_KEY = "lamina"
"""Key of the provenance in Parquet schema metadata and GeoPackage layer metadata; CSV outputs get a sidecar
``NAME.csv.lamina.json`` with the same JSON."""


def encoder_provenance(encoder: ClimateEncoder) -> dict:
    """``{"lamina_version", "checkpoint_sha256"}``: which encoder made an output (the sha256 as the checkpoint's
    config.json states it)."""
    from lamina import __version__
    from lamina.geo.raster import weights_sha256

    return {"lamina_version": __version__, "checkpoint_sha256": weights_sha256(encoder)}


def table_provenance(encoder: ClimateEncoder, *, what: str, month, month_col, src) -> dict:
    """What made a table of embeddings or reconstructions: :func:`encoder_provenance`, the operation, the month(s)
    and the input file."""
    return {**encoder_provenance(encoder), "what": what,
            "months": (f"column {month_col}" if month_col else
                       ",".join(map(str, EMBED_MONTHS)) if month is None else str(month)),
            "input": str(src), "variables": ",".join(encoder.variable_names) if what == "reconstruct" else "",
            "embedding": "Climplicit climate embedding (Dollinger et al. 2025, arXiv:2504.05089)"}


def csv_sidecar(path: str | os.PathLike) -> Path:
    """The provenance file of a CSV output: ``NAME.csv.lamina.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".lamina.json")


@dataclass(frozen=True)
class TableJob:
    """The settings of one table's embedding or reconstruction (the arguments of :func:`process_table` that are
    not paths), validated once when made: one object for a table, or for every partition of
    :func:`lamina.geo.scale.embed_partitions`.

    Raises:
        InputError: ``what`` or ``precision`` not one of theirs, a reconstruction without a month, ``chunk_rows``
            not an integer >= 1, ``wrap_lon`` or ``keep_columns`` not True or False.
    """

    what: str = "embed"
    lon_col: str = "lon"
    lat_col: str = "lat"
    month_col: str | None = None
    month: int | None = None
    chunk_rows: int = 65_536
    wrap_lon: bool = False
    keep_columns: bool = True
    precision: str = "float32"
    layer: str | None = None

    def __post_init__(self) -> None:
        """Validate the settings (in the order the messages have always come) and normalise numbers and flags."""
        check_choice("what", self.what, ("embed", "reconstruct"))
        if self.what == "reconstruct" and self.month_col is None and self.month is None:
            raise InputError("month: reconstruct needs --month or --month-col (the variables are monthly)")
        check_choice("precision", self.precision, ("float32", "bfloat16"))
        object.__setattr__(self, "chunk_rows", check_positive_int("chunk_rows", self.chunk_rows))
        object.__setattr__(self, "wrap_lon", check_bool("wrap_lon", self.wrap_lon))
        object.__setattr__(self, "keep_columns", check_bool("keep_columns", self.keep_columns))

    def record(self) -> dict:
        """The settings as a job file records them (no ``layer`` key when None: job files of before it match)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["layer"] is None:
            del out["layer"]
        return out


def process_table(encoder: ClimateEncoder, src: str | os.PathLike, dst: str | os.PathLike, *, what: str = "embed",
                  lon_col: str = "lon", lat_col: str = "lat", month_col: str | None = None, month: int | None = None,
                  chunk_rows: int = 65_536, wrap_lon: bool = False, keep_columns: bool = True,
                  precision: str = "float32", progress: bool = True, layer: str | None = None) -> int:
    """Embed (or reconstruct) every row of a CSV / Parquet points table into a new table, streaming.

    Args:
        encoder: the climate encoder.
        src: input ``.csv`` or ``.parquet`` with longitude / latitude columns (degrees), or points with a
            geometry column in any CRS: GeoParquet (``.parquet`` with "geo" metadata) or GeoPackage (``.gpkg``).
        dst: output ``.parquet`` or ``.csv``, written atomically; for a geometry input ``.parquet`` (GeoParquet)
            or ``.gpkg``, keeping the geometry in its CRS.
        what: ``"embed"`` (float32 embedding columns) or ``"reconstruct"`` (one column per variable, physical
            units; needs a month).
        lon_col, lat_col: coordinate column names.
        month_col: column of months 1..12 (overrides ``month``).
        month: one month for all rows; None with no ``month_col`` = months 3, 6, 9, 12 concatenated (embed only).
        chunk_rows: rows per chunk (peak memory ~ chunk_rows x output width x 4 bytes x 3).
        wrap_lon: wrap longitudes outside [-180, 180] instead of rejecting them.
        keep_columns: copy the input columns into the output.
        layer: the layer of a GeoPackage input to read; None for its only layer (a file of several layers is
            refused, naming them).

    Returns:
        The number of rows written.

    Raises:
        InputError: missing columns, invalid coordinates or months (the message gives the row), bad paths.
    """
    job = TableJob(what=what, lon_col=lon_col, lat_col=lat_col, month_col=month_col, month=month,
                   chunk_rows=chunk_rows, wrap_lon=wrap_lon, keep_columns=keep_columns, precision=precision,
                   layer=layer)
    return run_table_job(encoder, src, dst, job, progress=progress)


def run_table_job(encoder: ClimateEncoder, src: str | os.PathLike, dst: str | os.PathLike, job: TableJob, *,
                  progress: bool = True) -> int:
    """:func:`process_table` with its settings given as a :class:`TableJob`; the number of rows written."""
    if not isinstance(job, TableJob):
        raise InputError(f"job: expected a TableJob, got {type(job).__name__}")
    src, dst = Path(src), Path(dst)
    geo = _check_table_paths(src, dst, job.layer)
    prov = table_provenance(encoder, what=job.what, month=job.month, month_col=job.month_col, src=src)
    process = _process_geo if geo else _process_plain
    return process(encoder, src, dst, job, progress=progress, provenance=prov)


def _check_table_paths(src: Path, dst: Path, layer: str | None) -> bool:
    """Refuse a missing input or an output it cannot be written to; whether the input has a geometry column."""
    if not src.is_file():
        raise InputError(f"input: {src} does not exist or is not a file")
    geo = is_geo_table(src)
    if layer is not None and src.suffix.lower() != ".gpkg":
        raise InputError(f"layer: {src} is not a GeoPackage; --layer names a layer of a .gpkg input")
    if geo and dst.suffix.lower() not in (".parquet", ".pq", ".gpkg"):
        raise InputError(f"output: {dst}: points with a geometry column are written as GeoParquet (.parquet) or "
                         "GeoPackage (.gpkg)")
    if not geo and dst.suffix.lower() == ".gpkg":
        raise InputError(f"output: {dst}: a .gpkg output needs an input with point geometries (GeoParquet or "
                         "GeoPackage); write .parquet or .csv")
    if not geo and dst.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"output: {dst} must end in .parquet or .csv (or .gpkg for points with a geometry column)")
    if dst.resolve() == src.resolve():
        raise InputError(f"output: {dst} is the input file; choose another path")
    return geo


def _progress(what: str, progress: bool):
    """The progress bar over the rows of a table (disabled without ``progress``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not progress)


def _process_plain(encoder, src: Path, dst: Path, job: TableJob, *, progress: bool, provenance: dict) -> int:
    """:func:`run_table_job` for a CSV / Parquet table with coordinate columns, chunk by chunk."""
    total = table_rows(src)
    out_is_csv = dst.suffix.lower() == ".csv"
    n_done = 0
    writer = None
    bar = _progress(job.what, progress)
    with bar, atomic_path(dst) as tmp:
        task = bar.add_task(job.what, total=total)
        try:
            for chunk in iter_table(src, job.chunk_rows):
                table = _plain_chunk(encoder, chunk, src, job, n_done)
                if writer is None:
                    writer, table = _open_writer(tmp, table, out_is_csv, provenance)
                elif not out_is_csv:
                    table = table.replace_schema_metadata(writer.schema.metadata)
                writer.write_table(table)
                n_done += chunk.num_rows
                bar.update(task, completed=n_done)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise InputError(f"input: {src} has no rows")
        if out_is_csv:  # CSV has no metadata: a sidecar, written before the table appears
            write_json_atomic(csv_sidecar(dst), provenance)
    return n_done


def _plain_chunk(encoder, chunk, src: Path, job: TableJob, offset: int):
    """The output table of one chunk of a CSV / Parquet table: the input columns (if kept), then the results."""
    import pyarrow as pa

    names = chunk.schema.names
    for col in (job.lon_col, job.lat_col) + ((job.month_col,) if job.month_col else ()):
        if col not in names:
            raise InputError(f"column {col!r} not found in {src}; columns are {names} "
                             "(choose with --lon-col / --lat-col / --month-col)")
    lon = numeric_column(chunk, job.lon_col, src, offset)
    lat = numeric_column(chunk, job.lat_col, src, offset)
    mo = numeric_column(chunk, job.month_col, src, offset) if job.month_col else job.month
    table = _computed_table(encoder, job, lon, lat, mo, offset)
    if job.keep_columns:
        base = pa.Table.from_batches([chunk]) if isinstance(chunk, pa.RecordBatch) else chunk
        _check_no_clash(base.schema.names, table.column_names, src)
        for j, name in enumerate(base.schema.names):
            table = table.add_column(j, name, base.column(j))
    return table


def _open_writer(tmp: Path, table, out_is_csv: bool, provenance: dict):
    """The writer of a CSV / Parquet output for ``table``'s schema, and ``table`` (Parquet: with the provenance)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if out_is_csv:
        return pacsv.CSVWriter(tmp, table.schema), table
    meta = {PROVENANCE_KEY.encode(): json.dumps(provenance).encode()}
    writer = pq.ParquetWriter(tmp, table.schema.with_metadata(meta), compression="zstd")
    return writer, table.replace_schema_metadata(meta)


def _computed_table(encoder, job: TableJob, lon, lat, month, offset: int):
    """The embeddings (or reconstructed variables) of one chunk as a table; an error names the row."""
    import pyarrow as pa

    try:
        out, cols = _compute(encoder, job.what, lon, lat, month, job.wrap_lon, job.precision)
    except InputError as exc:
        raise InputError(_with_row(str(exc), offset)) from None
    return pa.Table.from_arrays([pa.array(out[:, j]) for j in range(out.shape[1])], names=cols)


def _process_geo(encoder, src: Path, dst: Path, job: TableJob, *, progress: bool, provenance: dict) -> int:
    """:func:`run_table_job` for GeoParquet / GeoPackage points: reprojected to lon / lat, geometry kept."""
    from lamina.geo.points import GEO_SUFFIXES, GeoReader, GeoWriter

    reader = GeoReader(src, job.chunk_rows, layer=job.layer)
    if reader.crs is None:
        raise InputError(f"geometry: {src} has no CRS; set one (GeoPandas: gdf.set_crs('EPSG:4326'))")
    n_done = 0
    bar = _progress(job.what, progress)
    with bar, atomic_path(dst) as tmp:
        task = bar.add_task(job.what, total=reader.rows)
        if dst.suffix.lower() in GEO_SUFFIXES:
            tmp.unlink()  # GDAL creates the GeoPackage itself
        writer = GeoWriter(tmp, reader, layer=dst.stem, provenance=provenance)
        try:
            for attrs, wkb in reader:
                writer.write(_geo_chunk(encoder, attrs, wkb, reader, src, job, n_done), wkb)
                n_done += attrs.num_rows
                bar.update(task, completed=n_done)
        finally:
            writer.close()
        if n_done == 0:
            raise InputError(f"input: {src} has no rows")
    return n_done


def _geo_chunk(encoder, attrs, wkb, reader, src: Path, job: TableJob, offset: int):
    """The output table of one chunk of points with geometries (the geometry column is the writer's)."""
    from lamina.geo.points import geometries_from_wkb, points_lonlat

    if job.month_col and job.month_col not in attrs.schema.names:
        raise InputError(f"column {job.month_col!r} not found in {src}; columns are {attrs.schema.names}")
    geoms = geometries_from_wkb(wkb, where=str(src), offset=offset)
    lon, lat = points_lonlat(geoms, reader.crs, where=str(src), offset=offset)
    mo = numeric_column(attrs, job.month_col, src, offset) if job.month_col else job.month
    table = _computed_table(encoder, job, lon, lat, mo, offset)
    if job.keep_columns:
        _check_no_clash([*attrs.schema.names, reader.geometry_name], table.column_names, src)
        for j, name in enumerate(attrs.schema.names):
            table = table.add_column(j, name, attrs.column(j))
    return table


def _check_no_clash(inputs, outputs, src) -> None:
    """Refuse input columns named like output columns (the file would hold two columns of one name)."""
    clash = sorted(set(inputs) & set(outputs))
    if clash:
        raise InputError(f"column {clash[0]!r} of {src} has the name of an output column; rename it, or leave the "
                         "input columns out (--no-keep-columns)")


def _with_row(msg: str, offset: int) -> str:
    import re

    m = re.search(r"at index (\d+)", msg)
    if m:
        return msg.replace(m.group(0), f"at row {offset + int(m.group(1))}")
    return msg


def _compute(encoder, what, lon, lat, month, wrap_lon, precision):
    if what == "embed":
        out = encoder.embed(lon=lon, lat=lat, month=month, wrap_lon=wrap_lon, precision=precision)
        return out, embedding_columns(encoder, month is not None)
    out = encoder.reconstruct(lon=lon, lat=lat, month=month, wrap_lon=wrap_lon)
    return out, [f"{v.name}" for v in encoder.variables]


def grid_points(resolution_deg: float) -> tuple[Grid, np.ndarray, np.ndarray]:
    """Pixel centres of a global grid: ``(grid, lon (H*W,), lat (H*W,))`` in row-major order."""
    if not 0.01 <= resolution_deg <= 30:
        raise InputError(f"resolution: expected degrees in [0.01, 30], got {resolution_deg}")
    grid = Grid.global_grid(resolution_deg)
    lon, lat = np.meshgrid(grid.lons, grid.lats)
    return grid, lon.ravel(), lat.ravel()


def embed_grid(encoder: ClimateEncoder, *, resolution_deg: float = 1.0, month: int | None = 6,
               precision: str = "float32") -> tuple[Grid, np.ndarray]:
    """Embeddings on a global grid: ``(grid, (H, W, D) float32)``."""
    grid, lon, lat = grid_points(resolution_deg)
    emb = encoder.embed(lon=lon, lat=lat, month=month, precision=precision)
    return grid, emb.reshape(grid.height, grid.width, -1)
