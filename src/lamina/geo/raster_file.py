"""Embedding rasters as files: a tiled Cloud-Optimized GeoTIFF or a Zarr store, row block by row block, resumable.

The raster is computed in blocks of rows (memory set by ``block_rows x width x bands``, never the whole raster).
Each finished block is saved in a work folder next to the output, ``.{name}.~lamina-work/``, so a run that is
killed continues from its finished blocks when started again with the same arguments (other arguments, or another
checkpoint, start over). When every block is done, the blocks are assembled, a row of tiles at a time, into a tiled
GeoTIFF and copied into a COG with overviews (GDAL's COG driver; for many bands or without that driver, internal
overviews and a copy that puts them first, band-interleaved) at a temporary name, renamed onto the
output, and the work folder is removed: the output appears complete or not at all. GDAL's block cache is bounded
for the call (``GDAL_CACHEMAX``, about 1.5 rows of tiles), not left at GDAL's 5% of the machine's memory. A
``.zarr`` output is written the same way, the blocks streamed through xarray into a store at a temporary name that
then replaces the output folder as a whole; ``xarray.open_zarr`` gives back the DataArray of
:func:`lamina.geo.raster.embed_grid` (coordinates, CRS, provenance).

``pca=K`` fits a PCA (scikit-learn) on the embeddings of a seeded random sample of the grid's pixel centres and
writes K bands; the PCA is stored in the file's metadata (``pca_components`` (K, D), ``pca_mean`` (D,),
``pca_explained_variance`` (K,) as JSON), so ``embedding ~= bands @ components + mean``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lamina._io import atomic_path, write_failure, write_json_atomic
from lamina._process import single_threaded
from lamina._validation import check_choice, check_memory, check_seed
from lamina.errors import InputError
from lamina.geo.data.grid import Grid
from lamina.geo.encoder import ClimateEncoder
from lamina.geo.raster import band_names, block_bytes, check_size, embed_rows, months_of, provenance

RASTER_SUFFIXES = (".tif", ".tiff", ".zarr")
DTYPES = ("float32", "float16")
WORK_MARK = "~lamina-work"
COG_MAX_BANDS = 16
"""Rasters with more bands are written band-interleaved (see :func:`_to_cog`)."""
BLOCK_VALUES = 1 << 24
"""Embedding values computed per row block by default (64 MB as float32)."""


def work_dir(path: str | os.PathLike) -> Path:
    """The sidecar folder holding finished row blocks of an unfinished raster: ``.{name}.~lamina-work``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{WORK_MARK}")


def check_raster_output(path: str | os.PathLike) -> Path:
    """Raise unless ``path`` names a raster lamina can write (.tif / .tiff, or a .zarr store)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RASTER_SUFFIXES:
        raise InputError(f"output: {path} must end in .tif or .tiff (a Cloud-Optimized GeoTIFF) or .zarr")
    if suffix == ".zarr":
        try:
            import zarr  # noqa: F401
        except ModuleNotFoundError:
            raise InputError(f"output: {path}: writing Zarr needs the 'zarr' package (pip install 'lamina[geo]'); "
                             "or write a GeoTIFF (.tif)") from None
        if path.exists() and not (path / ".zgroup").is_file() and not (path / "zarr.json").is_file():
            raise InputError(f"output: {path} exists and is not a Zarr store; choose a new path")
    elif path.is_dir():
        raise InputError(f"output: {path} is a folder")
    return path


def has_cog_driver() -> bool:
    """Whether rasterio's GDAL has the COG driver (GDAL >= 3.1)."""
    import rasterio

    with rasterio.Env() as env:
        return "COG" in env.drivers()


def _fit_pca(encoder, grid: Grid, months, k: int, n_sample: int, seed: int, precision: str) -> dict:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    n_pix = grid.height * grid.width
    idx = np.sort(rng.choice(n_pix, size=min(n_sample, n_pix), replace=False))  # O(sample) for large grids
    rows, cols = np.divmod(idx, grid.width)
    month = None if len(months) > 1 else months[0]
    emb = encoder.embed(lon=grid.wrapped_lons[cols], lat=grid.lats[rows], month=month, precision=precision)
    with single_threaded():  # a (D, D) eigenproblem: BLAS threads only contend on a busy machine
        pca = PCA(n_components=k, svd_solver="covariance_eigh", random_state=seed).fit(emb)
    return {"components": pca.components_.astype(np.float64), "mean": pca.mean_.astype(np.float64),
            "explained_variance": pca.explained_variance_, "explained_variance_ratio": pca.explained_variance_ratio_,
            "n_sample": np.asarray(idx.size)}


@contextlib.contextmanager
def _disk_full_named(output: Path, work: Path) -> Iterator[None]:
    """Report a full disk while a raster is written as ``OSError(ENOSPC)`` naming the user's output, not the work
    folder's files: NumPy says "Not enough free space to write N bytes" with no errno, and GDAL only "Write
    error at scanline 0" (see :func:`lamina._io.write_failure`). The blocks already computed stay in the work
    folder (a partial assembled GeoTIFF is removed), so freeing space and rerunning the command resumes."""
    import errno

    from rasterio.errors import RasterioError

    try:
        yield
    except (OSError, RasterioError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None and exc.errno != errno.ENOSPC:
            raise
        (work / "assembled.tif").unlink(missing_ok=True)
        if isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "free space" in str(exc)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(output)) from None
        raise write_failure(output, exc) from None


@contextlib.contextmanager
def _user_path_named(output: Path, work: Path) -> Iterator[None]:
    """An ``OSError`` about the hidden work folder (or a file in it) names the user's output instead, so the message
    reads ``x.tif: Permission denied``, not ``.x.tif.~lamina-work: Permission denied``; a file in the way of the
    work folder is named as such."""
    try:
        yield
    except OSError as exc:
        name = exc.filename
        if exc.errno is None or not isinstance(name, str | os.PathLike):
            raise
        where, top = os.path.abspath(name), os.path.abspath(work)
        if where != top and not where.startswith(top + os.sep):
            raise
        if where == top and isinstance(exc, FileExistsError | NotADirectoryError) and work.exists() \
                and not work.is_dir():
            raise InputError(f"output: {output}: the file {work} is in the way of the folder where lamina keeps "
                             "the finished row blocks; remove it") from None
        raise type(exc)(exc.errno, exc.strerror, str(output)) from None


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr)
        fh.flush()
        os.fsync(fh.fileno())


def _save_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


@contextlib.contextmanager
def _work_lock(folder: Path, output: Path) -> Iterator[None]:
    """Hold an exclusive lock on the work folder (released by the OS if the process dies)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"output: {output} is being written by another running process") from None
        yield
    finally:
        os.close(fd)


def _start_work(folder: Path, job: dict) -> bool:
    """Reuse the (locked) work folder; True when it holds blocks of this very job (a resume), else empty it."""
    job_file = folder / "job.json"
    try:
        if json.loads(job_file.read_text()) == job:
            return True
    except (OSError, ValueError):
        pass
    for entry in folder.iterdir():  # blocks of other arguments, or of a run that never wrote its job
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    write_json_atomic(job_file, job)
    return False


def _json_floats(arr) -> str:
    return json.dumps(np.asarray(arr, dtype=np.float64).round(9).tolist())


def write_raster(encoder: ClimateEncoder, path: str | os.PathLike, *, bbox, resolution: float,
                 month: int | None = None, pca: int | None = None, dtype: str = "float32", force: bool = False,
                 block_rows: int | None = None, pca_sample: int = 20_000, seed: int = 0, precision: str = "float32",
                 progress: bool = True) -> dict:
    """Write an embedding raster over ``bbox`` as a Cloud-Optimized GeoTIFF, tile by tile and resumable.

    Args:
        encoder: the climate encoder.
        path: output ``.tif`` / ``.tiff`` (COG) or ``.zarr`` (a Zarr store, replaced as a whole if it exists).
        bbox: ``(west, south, east, north)`` degrees; ``west > east`` crosses the antimeridian.
        resolution: pixel size in degrees (> 0).
        month: 1..12, or None for months 3, 6, 9, 12 concatenated.
        pca: write this many PCA bands instead of the embedding (1..embedding bands); None for all bands.
        dtype: ``"float32"`` or ``"float16"`` band values.
        force: allow an output above :data:`lamina.geo.raster.MAX_VALUES` values.
        block_rows: rows computed at once (default: ~16 M embedding values per block).
        pca_sample: pixels sampled (seeded) to fit the PCA.
        seed: seed of the PCA sample.
        precision: ``"float32"`` or ``"bfloat16"`` network precision.

    Returns:
        A summary: ``{"path", "height", "width", "bands", "blocks", "resumed_blocks", "driver"}`` (driver
        ``"COG"``, ``"GTiff"`` or ``"Zarr"``).

    Raises:
        InputError: bad bbox, resolution, month, dtype, pca or output path, or an output above the size limit
            without ``force``. Nothing is written then.
    """
    path = check_raster_output(path)
    grid = Grid.from_bbox(bbox, resolution)
    months = months_of(month)
    names = band_names(encoder, months)
    seed = _check_options(grid, names, pca=pca, dtype=dtype, precision=precision, block_rows=block_rows,
                          pca_sample=pca_sample, seed=seed)  # before any work folder is made
    out_names = [f"pca_{i:02d}" for i in range(pca)] if pca else names
    check_size(grid, len(out_names), force=force)
    rows = block_rows or max(1, min(grid.height, BLOCK_VALUES // (grid.width * len(names))))
    _check_memory(path, grid, rows, len(names), len(out_names), pca=bool(pca), user_rows=block_rows is not None)
    attrs = provenance(encoder, grid, months)
    job = {"grid": [*grid.bounds, grid.dlon, grid.width, grid.height],
           "months": list(months), "pca": pca, "pca_sample": pca_sample, "seed": seed, "dtype": dtype,
           "precision": precision, "block_rows": rows, "checkpoint_sha256": attrs["checkpoint_sha256"],
           "lamina_version": attrs["lamina_version"]}

    folder = work_dir(path)
    with _user_path_named(path, folder), _work_lock(folder, path):
        resumed = _start_work(folder, job)
        fit = _pca_of_job(folder, encoder, grid, months, pca, pca_sample, seed, precision) if pca else None
        blocks = {r0: folder / f"rows-{r0:07d}.npy" for r0 in range(0, grid.height, rows)}
        done = [r0 for r0, f in blocks.items() if f.is_file()]
        _compute_blocks(encoder, grid, months, blocks, done, rows, fit, dtype=dtype, precision=precision,
                        output=path, progress=progress)
        block_files = list(blocks.values())
        if path.suffix.lower() == ".zarr":
            _write_zarr(path, grid, block_files, out_names, attrs, fit, seed, names)
            driver = "Zarr"
        else:
            driver = _write_cog(path, folder, grid, block_files, out_names, attrs, fit, seed, names, dtype=dtype)
        shutil.rmtree(folder, ignore_errors=True)
    return {"path": str(path), "height": grid.height, "width": grid.width, "bands": len(out_names),
            "blocks": len(blocks), "resumed_blocks": len(done) if resumed else 0, "driver": driver}


def _check_memory(path: Path, grid: Grid, rows: int, bands: int, out_bands: int, *, pca: bool,
                  user_rows: bool) -> None:
    """Refuse, before any work folder is made, a raster whose row block (or, for a GeoTIFF, whose row of tiles
    while it is assembled) cannot fit in the memory available."""
    rows = min(rows, grid.height)
    block = block_bytes(grid, rows, bands) + (8 * rows * grid.width * bands if pca else 0)
    strip = 4 * out_bands * min(512, grid.height) * grid.width if path.suffix.lower() != ".zarr" else 0
    if block >= strip:
        check_memory("block_rows" if user_rows else "resolution", block,
                     f"a block of {rows:,} rows x {grid.width:,} pixels x {bands} bands",
                     hint="use fewer --block-rows" if user_rows and rows > 1 else
                     "use a coarser resolution or a smaller bbox")
    else:
        check_memory("resolution", strip, f"assembling the GeoTIFF a row of tiles at a time "
                     f"({min(512, grid.height):,} rows x {grid.width:,} pixels x {out_bands} bands)",
                     hint="use a coarser resolution or a smaller bbox")


def _check_options(grid: Grid, names: list[str], *, pca, dtype, precision, block_rows, pca_sample, seed) -> int:
    """Refuse bad options of :func:`write_raster` (naming the argument); return the checked seed."""
    check_choice("dtype", dtype, DTYPES)
    if pca is not None and (isinstance(pca, bool) or not isinstance(pca, int | np.integer)
                            or not 1 <= pca <= len(names)):
        raise InputError(f"pca: expected an integer in 1..{len(names)} (the embedding bands), got {pca!r}")
    check_choice("precision", precision, ("float32", "bfloat16"))
    if block_rows is not None and (isinstance(block_rows, bool) or not isinstance(block_rows, int)
                                   or block_rows < 1):
        raise InputError(f"block_rows: expected an integer >= 1, got {block_rows!r}")
    if not isinstance(pca_sample, int) or pca_sample < 2:
        raise InputError(f"pca_sample: expected an integer >= 2, got {pca_sample!r}")
    seed = check_seed("seed", seed)
    if pca and grid.height * grid.width < pca:
        raise InputError(f"pca: {pca} components need at least {pca} pixels; the grid has "
                         f"{grid.height * grid.width}")
    return seed


def _compute_blocks(encoder, grid: Grid, months, blocks: dict[int, Path], done: list[int], rows: int,
                    fit: dict | None, *, dtype: str, precision: str, output: Path, progress: bool) -> None:
    """Embed (and project on the PCA ``fit``) every row block not ``done``, saving each into the work folder as
    soon as it is computed (a killed run resumes from the saved ones)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    folder = work_dir(output)
    bar = Progress(TextColumn("[bold]raster"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                   TimeElapsedColumn(), disable=not progress)
    with bar:
        task = bar.add_task("raster", total=grid.height, completed=sum(min(rows, grid.height - r0) for r0 in done))
        for r0, block_file in blocks.items():
            if r0 in done:
                continue
            r1 = min(grid.height, r0 + rows)
            block = embed_rows(encoder, grid, r0, r1, months, precision=precision)  # (D, r, W)
            if fit is not None:
                flat = block.reshape(block.shape[0], -1).T.astype(np.float64)  # (r * W, D)
                block = ((flat - fit["mean"]) @ fit["components"].T).T.reshape(-1, r1 - r0, grid.width)
            block = block.astype(dtype)
            if not np.isfinite(block).all():
                shutil.rmtree(folder, ignore_errors=True)  # the same arguments would overflow again
                raise InputError(f"dtype: values of rows {r0}..{r1 - 1} overflow {dtype}; use --dtype float32")
            with _disk_full_named(output, folder):
                _save_npy(block_file, block)
            bar.update(task, advance=r1 - r0)


def _write_cog(path: Path, folder: Path, grid: Grid, block_files: list[Path], out_names: list[str], attrs: dict,
               fit: dict | None, seed: int, names: list[str], *, dtype: str) -> str:
    """Assemble the finished blocks into a Cloud-Optimized GeoTIFF at ``path`` (atomically); return the driver
    used, ``"COG"`` or ``"GTiff"`` (a COG layout written by the classic driver, see :func:`_to_cog`)."""
    import rasterio

    tags = {k: str(v) for k, v in attrs.items()}
    tags["band_names"] = ",".join(out_names)
    if fit is not None:
        tags.update(_pca_tags(fit, names, seed))
    cog = len(out_names) <= COG_MAX_BANDS and has_cog_driver()
    tile = min(512, max(128, 16 * -(-max(grid.width, grid.height) // 16)))  # small rasters: small tiles
    assembled = folder / "assembled.tif"
    with rasterio.Env(GDAL_CACHEMAX=_gdal_cache_bytes(grid, len(out_names), tile)), \
            _disk_full_named(path, folder):  # scoped cache, restored after
        _assemble(assembled, grid, block_files, out_names, tags, dtype=dtype, tile=tile)
        with atomic_path(path) as tmp:
            _to_cog(assembled, tmp, cog=cog, half=dtype == "float16", tile=tile)
    return "COG" if cog else "GTiff"


def _pca_of_job(folder: Path, encoder, grid, months, k, n_sample, seed, precision) -> dict:
    """The PCA of this job: fitted once, then kept in the work folder so a resumed run projects alike."""
    pca_file = folder / "pca.npz"
    if pca_file.is_file():
        with np.load(pca_file) as z:
            return {key: z[key] for key in z.files}
    fit = _fit_pca(encoder, grid, months, k, n_sample, seed, precision)
    _save_npz(pca_file, fit)
    return fit


def _pca_tags(fit: dict, names: list[str], seed: int) -> dict:
    return {"pca_input_bands": ",".join(names), "pca_components": _json_floats(fit["components"]),
            "pca_mean": _json_floats(fit["mean"]), "pca_explained_variance": _json_floats(fit["explained_variance"]),
            "pca_explained_variance_ratio": _json_floats(fit["explained_variance_ratio"]),
            "pca_n_sample": str(int(fit["n_sample"])), "pca_seed": str(seed),
            "pca_inverse": "embedding ~= bands @ pca_components + pca_mean"}


def _gdal_cache_bytes(grid: Grid, bands: int, tile: int) -> int:
    """GDAL's block cache for writing this raster: one row of tiles of every band (float32) and a margin.

    GDAL's default is 5% of the machine's memory, which grows with the machine and, for a global 0.05-degree raster
    of 16 bands, took the COG copy near 2 GB resident on a 24 GB machine. Far too small a cache makes GDAL flush
    half-filled compressed tiles and write them again, which multiplies the temporary file and the time.
    """
    row_of_tiles = tile * (-(-grid.width // tile)) * tile * bands * 4
    return int(min(1024, max(64, 1.5 * row_of_tiles / 2**20 + 32))) << 20  # rasterio takes bytes


def _assemble(dst_path: Path, grid: Grid, block_files: list[Path], names: list[str], tags: dict, *,
              dtype: str, tile: int) -> None:
    """Write the finished row blocks into a tiled band-interleaved GeoTIFF, one whole row of tiles at a time (so
    that every tile is compressed and written once)."""
    import rasterio
    from rasterio.windows import Window

    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": len(names),
               "dtype": "float32", "crs": "EPSG:4326", "transform": rasterio.Affine(*_affine(grid)),
               "tiled": True, "blockxsize": tile, "blockysize": tile, "compress": "deflate", "interleave": "band",
               "nodata": float("nan"),  # stated for GIS tools; every pixel holds a finite value
               "BIGTIFF": "IF_SAFER", **({"NBITS": 16} if dtype == "float16" else {})}  # GDAL < 3.11: half floats
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.update_tags(**tags)
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
        # a block is mapped only while it is copied: mapped pages that were read count in resident memory
        heights = [np.load(f, mmap_mode="r").shape[1] for f in block_files]
        starts = np.cumsum([0] + heights)
        for t0 in range(0, grid.height, tile):
            t1 = min(grid.height, t0 + tile)
            strip = np.empty((len(names), t1 - t0, grid.width), dtype=np.float32)  # one row of tiles
            for f, s0, h in zip(block_files, starts[:-1], heights, strict=True):
                a, b = max(t0, s0), min(t1, s0 + h)
                if a < b:
                    part = np.load(f, mmap_mode="r")  # (bands, rows, W)
                    strip[:, a - t0 : b - t0] = part[:, a - s0 : b - s0]
                    del part
            dst.write(strip, window=Window(0, t0, grid.width, t1 - t0))


def _write_zarr(dst: Path, grid: Grid, block_files: list[Path], names: list[str], attrs: dict,
                fit: dict | None, seed: int, input_names: list[str]) -> None:
    """Stream the finished row blocks (memory-mapped) into a Zarr store that replaces ``dst`` as a whole."""
    import dask
    import dask.array as da

    from lamina._io import atomic_dir
    from lamina.geo.raster import grid_dataarray

    parts = [np.load(f, mmap_mode="r") for f in block_files]  # (bands, rows, W) each, in the block dtype
    cols = min(grid.width, 1024)
    data = da.concatenate([da.from_array(p, chunks=(len(names), p.shape[1], cols), asarray=True) for p in parts],
                          axis=1)
    zattrs = dict(attrs)
    if fit is not None:
        zattrs.update({"pca_input_bands": input_names, "pca_components": np.round(fit["components"], 9).tolist(),
                       "pca_mean": np.round(fit["mean"], 9).tolist(),
                       "pca_explained_variance": np.asarray(fit["explained_variance"], np.float64).tolist(),
                       "pca_explained_variance_ratio": np.asarray(fit["explained_variance_ratio"],
                                                                  np.float64).tolist(),
                       "pca_n_sample": int(fit["n_sample"]), "pca_seed": seed,
                       "pca_inverse": "embedding ~= bands @ pca_components + pca_mean"})
    arr = grid_dataarray(data, grid, names, zattrs)
    with atomic_dir(dst, suffix=".zarr") as tmp, dask.config.set(scheduler="synchronous"):  # one block in RAM
        arr.to_dataset().to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)


def _affine(grid: Grid) -> tuple[float, ...]:
    x0, dx, _, y0, _, dy = grid.transform
    return (dx, 0.0, x0, 0.0, dy, y0)


def _to_cog(src: Path, dst: Path, *, cog: bool, half: bool, tile: int) -> None:
    """Copy a tiled GeoTIFF into a Cloud-Optimized GeoTIFF with overviews (through GDAL's block cache, which the
    caller bounds with ``GDAL_CACHEMAX``).

    GDAL's COG driver (3.10) writes pixel-interleaved tiles only, whose size grows with the band count (256 bands x
    512 x 512 x 4 bytes = 256 MB per tile), so many bands go the classic way: band-interleaved tiles, internal
    overviews, and a copy with ``COPY_SRC_OVERVIEWS`` that puts overviews and tile indexes first (a COG layout).
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.shutil import copy as gdal_copy

    # half floats: NBITS=16; full floats: the floating-point predictor, which lets DEFLATE compress smooth bands
    # (benchmarks/geo_geotiff_predictor.py: the Alps at 0.01 degrees, 600 x 300 x 256, 195 MB without it, 90 MB
    # with it, still a COG); both stay lossless for what is stored
    nbits = {"NBITS": 16} if half else {"PREDICTOR": 3}
    if cog:
        gdal_copy(src, dst, driver="COG", **nbits, COMPRESS="DEFLATE", BLOCKSIZE=tile, OVERVIEWS="AUTO",
                  RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER")
        return
    with rasterio.open(src, "r+") as ds:  # internal overviews, then a copy that puts them first
        factors = []  # halve until one tile holds the smallest level, as the COG driver's OVERVIEWS=AUTO
        while -(-max(ds.width, ds.height) // (factors[-1] if factors else 1)) > tile:
            factors.append(2 * (factors[-1] if factors else 1))
        if factors:
            ds.build_overviews(factors, Resampling.average)
    gdal_copy(src, dst, driver="GTiff", TILED="YES", BLOCKXSIZE=tile, BLOCKYSIZE=tile, COMPRESS="DEFLATE",
              INTERLEAVE="BAND",
              COPY_SRC_OVERVIEWS="YES", BIGTIFF="IF_SAFER", **nbits)
