"""Embedding rasters over a bounding box: the pixel grid, an ``xarray.DataArray`` API and provenance.

A raster is a regular grid in EPSG:4326 (degrees) whose pixels are areas; a pixel's value is the embedding at its
centre, so it equals ``encoder.embed(lon=..., lat=...)`` at the coordinates the DataArray records. Row 0 is the
northern edge (the GeoTIFF convention). A bbox with ``west > east`` crosses the antimeridian: longitudes run east
from ``west`` and wrap at 180 to -180.

Writing files (GeoTIFF / COG, tile by tile, resumable) lives in :mod:`lamina.geo.raster_file`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from lamina._validation import check_choice, check_memory, check_positive_int
from lamina.errors import InputError
from lamina.geo.columns import EMBED_MONTHS
from lamina.geo.data.grid import Grid, check_bbox  # noqa: F401 - check_bbox: public here before grid.py had it

if TYPE_CHECKING:
    from lamina.geo.encoder import ClimateEncoder

CRS = "EPSG:4326"
MAX_VALUES = 2_000_000_000
"""Largest output (pixels x bands) made without ``force=True``: 8 GB as float32."""


RasterGrid = Grid
"""The pixel grid of a raster: :class:`lamina.geo.data.grid.Grid` (the one grid type; this name is kept)."""


def check_size(grid: Grid, bands: int, *, force: bool, limit: int = MAX_VALUES) -> int:
    """Raise unless ``height x width x bands <= limit`` (or ``force``); return the number of values."""
    n = grid.height * grid.width * bands
    if n > limit and not force:
        raise InputError(f"resolution: {grid.dlon:g} deg gives {grid.height} x {grid.width} pixels x {bands} "
                         f"bands = {n:.3g} values, above the limit of {limit:.3g}; use a coarser resolution, a "
                         "smaller bbox, or force=True (CLI: --force)")
    return n


def months_of(month) -> tuple[int, ...]:
    """The months whose embeddings make up the bands: ``(month,)`` or 3, 6, 9, 12 for None."""
    if month is None:
        return EMBED_MONTHS
    if isinstance(month, bool) or not isinstance(month, int | np.integer) or not 1 <= month <= 12:
        raise InputError(f"month: expected an integer in 1..12 or None, got {month!r}")
    return (int(month),)


def weights_sha256(encoder: ClimateEncoder) -> str:
    """sha256 of the encoder's weights as a checkpoint stores them (equals ``sha256`` in its config.json)."""
    from safetensors.numpy import save

    state = encoder.module.state_dict()
    arrays = {k: np.ascontiguousarray(state[k].detach().cpu().numpy()) for k in sorted(state)}
    return hashlib.sha256(save(arrays)).hexdigest()


def provenance(encoder: ClimateEncoder, grid: Grid, months: tuple[int, ...]) -> dict:
    """Attributes every embedding raster carries (JSON-friendly scalars and strings)."""
    from lamina import __version__

    return {
        "crs": CRS,
        "months": ",".join(str(m) for m in months),
        "checkpoint_sha256": weights_sha256(encoder),
        "lamina_version": __version__,
        "bbox": ",".join(f"{v:g}" for v in grid.bounds),
        "resolution_deg": grid.dlon,
        "embedding": "Climplicit climate embedding at pixel centres (Dollinger et al. 2025, arXiv:2504.05089)",
    }


def band_names(encoder: ClimateEncoder, months: tuple[int, ...]) -> list[str]:
    """Band names, as the columns of ``lamina geo embed`` tables: ``emb_000..`` or ``emb_m03_000..``."""
    d = encoder.embedding_dim
    if len(months) == 1:
        return [f"emb_{i:03d}" for i in range(d)]
    return [f"emb_m{m:02d}_{i:03d}" for m in months for i in range(d)]


def block_bytes(grid: Grid, rows: int, bands: int) -> int:
    """Least memory of computing ``rows`` rows of ``grid`` at once (:func:`embed_rows`): the grid's axes, the
    pixel centres (float64 lon / lat and their raveled copies) and the (pixels, bands) float32 embeddings with
    their transposed copy."""
    pixels = min(rows, grid.height) * grid.width
    return 8 * (grid.width + grid.height) + pixels * (4 * 8 + 2 * 4 * bands)


def embed_rows(encoder: ClimateEncoder, grid: Grid, row0: int, row1: int, months: tuple[int, ...], *,
               precision: str = "float32") -> np.ndarray:
    """Embeddings of rows ``row0:row1``: ``(bands, row1 - row0, width)`` float32."""
    lon, lat = grid.points(row0, row1)
    month = None if len(months) > 1 else months[0]
    emb = encoder.embed(lon=lon, lat=lat, month=month, precision=precision)  # (n, bands)
    return np.ascontiguousarray(emb.T.reshape(-1, row1 - row0, grid.width))


def spatial_ref_attrs(grid: Grid) -> dict:
    """CF / rioxarray-style grid-mapping attributes of EPSG:4326 (read by rioxarray, GDAL and QGIS)."""
    from pyproj import CRS as ProjCRS

    wkt = ProjCRS.from_epsg(4326).to_wkt()
    return {
        "crs_wkt": wkt,
        "spatial_ref": wkt,
        "grid_mapping_name": "latitude_longitude",
        "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563,
        "longitude_of_prime_meridian": 0.0,
        "GeoTransform": " ".join(f"{v!r}" for v in grid.transform),
    }


def grid_dataarray(data, grid: Grid, names: list[str], attrs: dict):
    """Wrap ``data`` (bands, H, W) (NumPy or Dask) as the embedding ``DataArray`` of ``grid``, CRS attached."""
    import xarray as xr

    coords = {
        "band": ("band", np.arange(1, len(names) + 1)),
        "band_name": ("band", np.asarray(names)),
        "lat": ("lat", grid.lats, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        "lon": ("lon", grid.wrapped_lons, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
        "spatial_ref": ((), np.int64(0), spatial_ref_attrs(grid)),
    }
    return xr.DataArray(data, dims=("band", "lat", "lon"), coords=coords, name="embedding",
                        attrs={**attrs, "grid_mapping": "spatial_ref"})


def _dask_rows(encoder: ClimateEncoder, grid: Grid, months, rows: int, bands: int, precision: str, sha256: str):
    """A Dask array (bands, H, W) whose chunks are ``rows`` rows, each computed by :func:`embed_rows` on demand.

    The encoder enters the graph once, as one key, so a distributed scheduler ships it once per worker.
    """
    import dask
    import dask.array as da

    enc = dask.delayed(encoder, name=f"lamina-encoder-{sha256}", pure=True)
    parts = []
    for r0 in range(0, grid.height, rows):
        r1 = min(grid.height, r0 + rows)
        block = dask.delayed(embed_rows, pure=True)(enc, grid, r0, r1, months, precision=precision)
        parts.append(da.from_delayed(block, shape=(bands, r1 - r0, grid.width), dtype=np.float32))
    return da.concatenate(parts, axis=1)


def embed_grid(encoder: ClimateEncoder, *, bbox, resolution: float, month: int | None = None,
               precision: str = "float32", force: bool = False, max_values: int = MAX_VALUES,
               chunks: int | None = None):
    """Embeddings on a regular lon/lat grid over a bbox, as an ``xarray.DataArray``.

    Args:
        encoder: the climate encoder.
        bbox: ``(west, south, east, north)`` degrees; ``west > east`` crosses the antimeridian.
        resolution: pixel size in degrees (> 0).
        month: 1..12, or None for months 3, 6, 9, 12 concatenated (4 x the bands), as in ``encoder.embed``.
        precision: ``"float32"`` or ``"bfloat16"``.
        force: allow more than ``max_values`` values (pixels x bands).
        chunks: None computes the array now, in memory; an integer returns a lazy Dask-backed array in blocks of
            that many rows (all bands and columns per block), computed on ``.compute()`` / ``.to_zarr()`` by
            whichever Dask scheduler is active (threads by default, a ``dask.distributed`` client if one exists).
            The size limit does not apply to a lazy array.

    Returns:
        ``DataArray`` float32 with dims ``(band, lat, lon)``: ``band`` 1..B (names in the ``band_name``
        coordinate), ``lat`` (H,) pixel centres north to south, ``lon`` (W,) pixel centres in [-180, 180), a
        ``spatial_ref`` coordinate (CRS and geotransform) and attributes ``crs``, ``months``,
        ``checkpoint_sha256``, ``lamina_version``.

    Raises:
        InputError: a bad bbox, resolution, month or chunks, or an in-memory output above ``max_values`` without
            ``force``.
    """
    grid = Grid.from_bbox(bbox, resolution)
    months = months_of(month)
    names = band_names(encoder, months)
    check_choice("precision", precision, ("float32", "bfloat16"))
    attrs = provenance(encoder, grid, months)
    if chunks is not None:
        if isinstance(chunks, bool) or not isinstance(chunks, int | np.integer) or chunks < 1:
            raise InputError(f"chunks: expected rows per chunk (an integer >= 1) or None, got {chunks!r}")
        data = _dask_rows(encoder, grid, months, int(chunks), len(names), precision, attrs["checkpoint_sha256"])
        return grid_dataarray(data, grid, names, attrs)  # the weights hashed once, for provenance and the graph
    check_size(grid, len(names), force=force, limit=check_positive_int("max_values", max_values))
    step = max(1, (1 << 24) // (grid.width * len(names)))  # ~16 M values (64 MB) per call: bounded temporaries
    check_memory("resolution", 4 * len(names) * grid.height * grid.width + block_bytes(grid, step, len(names)),
                 f"an in-memory raster of {grid.height:,} x {grid.width:,} pixels x {len(names)} bands",
                 hint="use a coarser resolution, a smaller bbox, or chunks=ROWS (a lazy Dask array)")
    data = np.empty((len(names), grid.height, grid.width), dtype=np.float32)
    for r0 in range(0, grid.height, step):
        r1 = min(grid.height, r0 + step)
        data[:, r0:r1] = embed_rows(encoder, grid, r0, r1, months, precision=precision)
    return grid_dataarray(data, grid, names, attrs)
