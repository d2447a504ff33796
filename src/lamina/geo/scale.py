"""Scale-out on Dask: embed a points table split into many Parquet partitions on a cluster.

A continent at 1 km is ~10^8 points per month: more than one machine should embed. :func:`embed_partitions` sends
one task per input partition to a ``dask.distributed`` cluster (a :class:`~distributed.LocalCluster` by default,
or an existing scheduler). Each task streams its partition through :func:`lamina.geo.embed.run_table_job` (so
memory per task is set by ``chunk_rows``, not by the partition, and CSV, Parquet, GeoParquet and GeoPackage
partitions all work, with the same row-numbered errors) and writes one output partition of the same name,
atomically. Each worker process loads the encoder once and checks that its weights are the ones the client
asked for (sha256), so a cluster whose nodes hold different checkpoints fails loudly instead of mixing them.

The output folder records its job (``_lamina_job.json``: inputs, arguments, checkpoint sha256) and, for each
finished output partition, the stamp of the input it was computed from (size, modification and status-change
times). Rerunning the same job skips the partitions already written from unchanged inputs, so a run killed
half-way continues, and computes again those whose input was replaced since; another job into the same folder is
refused. A partition that fails stops the job with one line (its file and row); an unexpected error's traceback
goes to ``_lamina_error.log`` in the output folder, named in the message, not to the terminal.

For users who already hold a ``dask.dataframe`` (e.g. from ``dd.read_parquet``), :func:`embed_dask_frame`
adds the embedding columns lazily, partition by partition, with the same once-per-worker encoder.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lamina._dask import bounded_map, dask_client, threads_per_task
from lamina._io import write_json_atomic
from lamina._validation import as_float_array, check_workers
from lamina.errors import InputError, LaminaError

if TYPE_CHECKING:
    from lamina.geo.embed import TableJob

JOB_FILE = "_lamina_job.json"
ERROR_LOG = "_lamina_error.log"
"""Written into the output folder when a partition fails with an unexpected error: the worker's traceback."""
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EMFILE, errno.ENFILE}
PART_SUFFIXES = (".parquet", ".pq", ".csv", ".gpkg")


def is_partitioned(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names many partitions: an existing folder, or a glob pattern (``*``, ``?``, ``[``)."""
    text = str(spec)
    return Path(text).is_dir() or any(ch in text for ch in "*?[")


def partition_files(spec: str | os.PathLike) -> list[Path]:
    """The partition files of a folder (its ``.parquet`` / ``.pq`` / ``.csv`` / ``.gpkg`` files) or a glob, sorted.

    Raises:
        InputError: no partition matches, or two partitions share a file name (their outputs would collide).
    """
    text = str(spec)
    if Path(text).is_dir():
        files = [p for p in Path(text).iterdir() if p.suffix.lower() in PART_SUFFIXES and p.is_file()
                 and not p.name.startswith((".", "_"))]
    else:
        files = [Path(p) for p in glob.glob(text) if Path(p).is_file()]
    files = sorted(files)
    if not files:
        raise InputError(f"input: {text} matches no .parquet, .csv or .gpkg partition")
    bad = [p for p in files if p.suffix.lower() not in PART_SUFFIXES]
    if bad:
        raise InputError(f"input: {bad[0]} is not a .parquet, .csv or .gpkg partition")
    names = [p.name for p in files]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"input: partitions share the file name {dup[0]!r}; their outputs would collide")
    return files


@lru_cache(maxsize=2)
def _worker_encoder(checkpoint: str | None, sha256: str):
    """The encoder of this process, loaded once per (checkpoint, weights) and checked against ``sha256``."""
    from lamina.geo.encoder import load
    from lamina.geo.raster import weights_sha256

    enc = load(checkpoint)
    found = weights_sha256(enc)
    if found != sha256:
        where = "the bundled default" if checkpoint is None else checkpoint
        raise InputError(f"checkpoint: {where} on this worker has weights {found[:12]}.., the client's have "
                         f"{sha256[:12]}..; give every node the same checkpoint")
    return enc


def _embed_part(src: str, dst: str, checkpoint: str | None, sha256: str, threads: int | None, job: TableJob) -> int:
    """One task: stream partition ``src`` into ``dst`` (atomic) with this worker's encoder; rows written."""
    from lamina._process import torch_threads
    from lamina.geo.embed import run_table_job

    enc = _worker_encoder(checkpoint, sha256)
    with torch_threads(threads_per_task(threads)):
        return run_table_job(enc, src, dst, job, progress=False)


def _output_name(src: Path, out_suffix: str | None) -> str:
    if out_suffix is None:
        return src.name
    return src.with_suffix(out_suffix).name


def _embed_pair(pair: tuple[Path, Path], ckpt, sha, threads, job: TableJob) -> int | Exception:
    """One task: a partition ``(input, output)`` (the paths as strings on the worker); rows written.

    A failure is returned, not raised, so that the worker does not log it with its traceback ("Compute Failed",
    on the terminal of a local cluster): the client raises it as one line, the traceback (of an unexpected
    error) written to a log file that the message names.
    """
    import traceback

    try:
        return _embed_part(str(pair[0]), str(pair[1]), ckpt, sha, threads, job)
    except Exception as exc:  # every failure goes back to the client
        exc.lamina_traceback = traceback.format_exc()
        return exc


def _raise_failure(exc: Exception, src: Path, dst: Path) -> None:
    """Raise a partition's failure on the client: lamina's own errors and machine conditions as they are (one
    line on the command line); anything else as one line naming the log file that holds the worker's traceback."""
    if isinstance(exc, LaminaError | FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError) \
            or (isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS):
        raise exc
    log = dst / ERROR_LOG
    with contextlib.suppress(OSError):
        log.write_text(f"partition {src}:\n{getattr(exc, 'lamina_traceback', '') or repr(exc)}\n")
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    where = f"the worker's traceback is in {log}" if log.is_file() else "no log could be written"
    raise LaminaError(f"input: partition {src} failed on a worker ({type(exc).__name__}: {first}); {where}")


def embed_partitions(src: str | os.PathLike, dst: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
                     what: str = "embed", month: int | None = None, month_col: str | None = None,
                     lon_col: str = "lon", lat_col: str = "lat", wrap_lon: bool = False, keep_columns: bool = True,
                     precision: str = "float32", chunk_rows: int = 65_536, output_format: str | None = None,
                     scheduler: str | None = None, workers: int = 2, progress: bool = True,
                     layer: str | None = None) -> dict:
    """Embed (or reconstruct) every partition of a partitioned points table on a Dask cluster.

    Args:
        src: a folder of partitions (``.parquet`` / ``.pq`` / ``.csv`` / ``.gpkg``) or a glob pattern of files.
        dst: output folder; one output partition per input partition, same name (suffix set by
            ``output_format``).
        checkpoint: encoder checkpoint folder, readable at the same path on every worker; None for the bundled
            default.
        what, month, month_col, lon_col, lat_col, wrap_lon, keep_columns, precision, chunk_rows: as in
            :func:`lamina.geo.embed.process_table`.
        output_format: None keeps each partition's format; ``"parquet"`` or ``"csv"`` converts.
        scheduler: address of a running ``dask.distributed`` scheduler (``tcp://host:8786``); None starts a local
            cluster of ``workers`` processes on loopback for this call.
        workers: processes of the local cluster (ignored with ``scheduler``).
        progress: show a progress bar over partitions.
        layer: the layer to read from every GeoPackage partition (None: each file's only layer).

    Returns:
        ``{"partitions", "skipped", "rows", "output"}``: partitions in the job, partitions already written by an
        earlier run of the same job from inputs that have not changed since (same size, modification and
        status-change times; an output whose input changed is computed again, with a warning), rows written now,
        and the output folder.

    Raises:
        InputError: bad arguments, no partition, an output folder of another job, an unreachable scheduler, or
            the first failing partition's error (naming its file and row).
    """
    from lamina.geo.embed import TableJob

    files = partition_files(src)
    dst = _check_output(dst, output_format)
    job = TableJob(what=what, lon_col=lon_col, lat_col=lat_col, month_col=month_col, month=month,
                   chunk_rows=chunk_rows, wrap_lon=wrap_lon, keep_columns=keep_columns, precision=precision,
                   layer=layer)
    workers = check_workers("workers", workers)  # capped once here; the local cluster gets the capped count
    if scheduler is not None and not isinstance(scheduler, str):
        raise InputError(f"scheduler: expected an address such as tcp://host:8786, got {scheduler!r}")
    resolved = [p.resolve() for p in files]
    if dst.resolve() in {p.parent for p in resolved}:
        raise InputError(f"output: {dst} holds input partitions; choose another folder")
    ckpt, sha = _client_checkpoint(checkpoint)
    record = {"inputs": [str(p) for p in resolved], "checkpoint_sha256": sha, "output_format": output_format,
              **job.record()}
    folder, pending = _open_job_folder(dst, files, None if output_format is None else f".{output_format}", record)
    rows = 0
    if pending:
        folder.save()  # forget outputs of changed inputs at once
        try:
            rows = _compute_partitions(folder, pending, job, (ckpt, sha), scheduler=scheduler, workers=workers,
                                       progress=progress)
        except BaseException:  # also Ctrl-C
            folder.abandon()
            raise
    folder.save(complete=True)
    with contextlib.suppress(OSError):
        (dst / ERROR_LOG).unlink(missing_ok=True)  # the log of an earlier failed run of this job
    return {"partitions": len(files), "skipped": len(files) - len(pending), "rows": rows, "output": str(dst)}


def _check_output(dst: str | os.PathLike, output_format: str | None) -> Path:
    """The output folder as a Path; refuses a file (or a file's name) and an unknown output format."""
    dst = Path(dst)
    if dst.suffix.lower() in PART_SUFFIXES:
        raise InputError(f"output: {dst}: a partitioned input is written to a folder of partitions; give a folder")
    if dst.exists() and not dst.is_dir():
        raise InputError(f"output: {dst} exists and is not a folder")
    if output_format not in (None, "parquet", "csv"):
        raise InputError(f"output_format: expected None, 'parquet' or 'csv', got {output_format!r}")
    return dst


def _client_checkpoint(checkpoint: str | os.PathLike | None) -> tuple[str | None, str]:
    """``(checkpoint folder for the workers, sha256 of its weights)``: loaded here, so a bad path fails first."""
    from lamina.geo.encoder import load, resolve_checkpoint
    from lamina.geo.raster import weights_sha256

    ckpt = None if checkpoint is None else str(resolve_checkpoint(checkpoint).resolve())
    return ckpt, weights_sha256(load(ckpt))


@dataclass
class _JobFolder:
    """The output folder of :func:`embed_partitions` and what its job file records."""

    path: Path
    record: dict  # the job: inputs, checkpoint sha256, output format and the TableJob's settings
    stamps: dict[str, list[int]]  # output partition name -> the stamp of its input, taken before any is read
    done: dict[str, list[int]]  # the same for the output partitions finished from unchanged inputs
    existed: bool  # the folder existed before this call
    fresh: bool  # it did not exist, or was empty

    def save(self, **extra) -> None:
        """Write the job file: the job, the partitions done, and ``extra`` (``complete=True``)."""
        write_json_atomic(self.path / JOB_FILE, {**self.record, "done": self.done, **extra})

    def abandon(self) -> None:
        """After a failure: remove the folder if this call made it and left it empty, else record what is done."""
        if self.fresh and self.path.is_dir() and [q.name for q in self.path.iterdir()] == [JOB_FILE]:
            (self.path / JOB_FILE).unlink()
            if not self.existed:
                self.path.rmdir()
        elif self.path.is_dir():  # the partitions finished so far count as done on the next run
            with contextlib.suppress(OSError):
                self.save()


def _open_job_folder(dst: Path, files: list[Path], out_suffix: str | None,
                     record: dict) -> tuple[_JobFolder, list[tuple[Path, Path]]]:
    """Start (or resume) the job ``record`` in ``dst``; the folder and the (input, output) pairs still to do."""
    pairs = [(p, dst / _output_name(p, out_suffix)) for p in files]
    outputs = [q.name for _, q in pairs]
    clash = sorted({n for n in outputs if outputs.count(n) > 1})
    if clash:  # e.g. a.parquet and a.csv, both written as a.csv
        both = [str(p.name) for p, q in pairs if q.name == clash[0]]
        raise InputError(f"input: partitions {' and '.join(both)} would both be written as {clash[0]!r}; rename one "
                         "or keep the input format")
    existed = dst.exists()
    fresh = not existed or not any(dst.iterdir())
    stamps = {q.name: _stamp(p) for p, q in pairs}  # taken before any partition is read
    recorded = _start_job(dst, record)
    done = {q.name: stamps[q.name] for _, q in pairs if q.is_file() and recorded.get(q.name) == stamps[q.name]}
    changed = [p for p, q in pairs if q.is_file() and q.name in recorded and q.name not in done]
    if changed:
        logging.getLogger("lamina").warning("%d input partition(s) changed since their output was written (first: "
                                            "%s): computed again", len(changed), changed[0])
    pending = [(p, q) for p, q in pairs if q.name not in done]
    return _JobFolder(dst, record, stamps, done, existed, fresh), pending


def _compute_partitions(folder: _JobFolder, pending: list[tuple[Path, Path]], job: TableJob,
                        weights: tuple[str | None, str], *, scheduler: str | None, workers: int,
                        progress: bool) -> int:
    """Compute ``pending`` on the cluster (``weights``: checkpoint, sha256), recording each in ``folder``; rows."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    rows = 0
    with dask_client(scheduler or "local", workers, extra="geo") as client:
        local = scheduler is None
        threads = max(1, (os.cpu_count() or 1) // workers) if local else None
        bar = Progress(TextColumn(f"[bold]{job.what}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("partitions"), TimeElapsedColumn(), disable=not progress)
        with bar:
            total = len(folder.record["inputs"])
            task = bar.add_task(job.what, total=total, completed=total - len(pending))
            jobs = bounded_map(client, _embed_pair, pending, *weights, threads, job, ordered=False,
                               key=lambda pq: f"lamina-embed-{pq[1].name}")
            saved = time.monotonic()
            with contextlib.closing(jobs):  # on a failure, cancelled while the client is still open
                for (p, q), n in jobs:
                    if isinstance(n, Exception):  # the first failure stops the job, with its own message
                        _raise_failure(n, p, folder.path)
                    rows += n
                    folder.done[q.name] = folder.stamps[q.name]
                    if time.monotonic() - saved > 2.0:  # record finished partitions now and then
                        folder.save()
                        saved = time.monotonic()
                    bar.advance(task)
    return rows


def _stamp(path: Path) -> list[int]:
    """What identifies a partition's content without reading it: size, modification and status-change times (ns).

    A file replaced or rewritten between two runs has another stamp (the status-change time changes even when the
    modification time is copied back, as ``cp -p`` or ``touch -r`` do), so its output is computed again.
    """
    st = path.stat()
    return [int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns)]


def _start_job(dst: Path, job: dict) -> dict[str, list[int]]:
    """Create or reuse the output folder of ``job``; output partition name -> the stamp (:func:`_stamp`) of the
    input it was computed from, for the partitions an earlier run of the job finished (a job file of an older
    lamina records none: every partition is computed again)."""
    import json

    job_file = dst / JOB_FILE
    if dst.is_dir() and any(dst.iterdir()):
        try:
            earlier = json.loads(job_file.read_text())
        except (OSError, ValueError):
            raise InputError(f"output: {dst} is a folder that holds other files; choose a new or empty folder") \
                from None
        if not isinstance(earlier, dict):
            raise InputError(f"output: {dst / JOB_FILE} is not a job file of lamina; choose a new or empty folder")
        earlier.pop("complete", None)
        recorded = earlier.pop("done", None)
        if earlier != job:
            raise InputError(f"output: {dst} holds the output of another job (other inputs, arguments or "
                             "checkpoint); choose a new folder")
        return {k: v for k, v in recorded.items() if isinstance(v, list)} if isinstance(recorded, dict) else {}
    dst.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job_file, job)
    return {}


def _embed_pandas(df, *, checkpoint, sha256, month, month_col, lon_col, lat_col, wrap_lon, precision, columns):
    """Embedding columns of one pandas partition (float32), in the partition's index."""
    import pandas as pd

    enc = _worker_encoder(checkpoint, sha256)
    if len(df) == 0:
        return pd.DataFrame({c: np.zeros(0, np.float32) for c in columns}, index=df.index)
    for col in (lon_col, lat_col) + ((month_col,) if month_col else ()):
        if col not in df.columns:
            raise InputError(f"column {col!r} not found; columns are {list(df.columns)}")
    lon = as_float_array(lon_col, df[lon_col].to_numpy(), allow_nan=True)  # booleans and text refused, not cast
    lat = as_float_array(lat_col, df[lat_col].to_numpy(), allow_nan=True)
    mo = as_float_array(month_col, df[month_col].to_numpy(), allow_nan=True) if month_col else month
    with _threads_scope():
        emb = enc.embed(lon=lon, lat=lat, month=mo, wrap_lon=wrap_lon, precision=precision)
    return pd.DataFrame(emb, columns=columns, index=df.index)


def _threads_scope():
    from lamina._process import torch_threads

    return torch_threads(threads_per_task())


def embed_dask_frame(ddf, *, month: int | None = None, month_col: str | None = None, lon_col: str = "lon",
                     lat_col: str = "lat", checkpoint: str | os.PathLike | None = None, wrap_lon: bool = False,
                     precision: str = "float32"):
    """A lazy ``dask.dataframe`` holding ``ddf``'s columns plus the embedding columns (``emb_000``.. float32).

    Each partition is embedded where it lives, with the worker's encoder loaded once per process. Nothing is
    computed until the frame is (``.compute()``, ``.to_parquet(...)``).

    Args:
        ddf: a ``dask.dataframe.DataFrame`` with longitude / latitude columns (degrees).
        month, month_col: one month for all rows, or a column of months; neither = months 3, 6, 9, 12 concatenated.
        lon_col, lat_col, wrap_lon, precision: as in :meth:`ClimateEncoder.embed`.
        checkpoint: encoder checkpoint folder readable on every worker; None for the bundled default.

    Raises:
        InputError: missing columns, or coordinate / month columns of booleans, text or dates (checked on the
            frame's schema, before anything runs; booleans are refused, never read as 0 and 1), or a bad
            checkpoint.
    """
    from lamina.geo.columns import embedding_columns
    from lamina.geo.encoder import load, resolve_checkpoint
    from lamina.geo.raster import months_of, weights_sha256

    if not hasattr(ddf, "map_partitions") or not hasattr(ddf, "columns"):
        raise InputError(f"ddf: expected a dask.dataframe.DataFrame, got {type(ddf).__name__}")
    for col in (lon_col, lat_col) + ((month_col,) if month_col else ()):
        if col not in ddf.columns:
            raise InputError(f"column {col!r} not found; columns are {list(ddf.columns)}")
        kind = getattr(ddf._meta[col].dtype, "kind", "O")
        if kind not in "iufO":  # booleans, text, dates: refused on the schema, before anything runs
            raise InputError(f"column {col!r}: expected numbers, got dtype {ddf._meta[col].dtype}")
    if month is not None:
        months_of(month)
    ckpt = None if checkpoint is None else str(resolve_checkpoint(checkpoint).resolve())
    enc = load(ckpt)
    columns = embedding_columns(enc, month is not None or month_col is not None)
    clash = sorted(set(columns) & set(ddf.columns))
    if clash:
        raise InputError(f"ddf: already has embedding columns ({clash[0]}, ...)")
    import pandas as pd

    empty = pd.DataFrame({c: np.zeros(0, np.float32) for c in columns}, index=ddf._meta.index)
    meta = pd.concat([ddf._meta, empty], axis=1)
    return ddf.map_partitions(
        lambda df, **kw: df.join(_embed_pandas(df, **kw)), meta=meta, checkpoint=ckpt, sha256=weights_sha256(enc),
        month=month, month_col=month_col, lon_col=lon_col, lat_col=lat_col, wrap_lon=wrap_lon, precision=precision,
        columns=columns)
