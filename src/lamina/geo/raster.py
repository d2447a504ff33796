"""Embedding rasters over a bounding box: the pixel grid, an ``xarray.DataArray`` API and provenance.

A raster is a regular grid in EPSG:4326 (degrees) whose pixels are areas; a pixel's value is the embedding at its
centre, so it equals ``encoder.embed(lon=..., lat=...)`` at the coordinates the DataArray records. Row 0 is the
northern edge (the GeoTIFF convention). A bbox with ``west > east`` crosses the antimeridian: longitudes run east
from ``west`` and wrap at 180 to -180.

Writing files (GeoTIFF / COG, tile by tile, resumable) lives in :mod:`lamina.geo.raster_file`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lamina.errors import InputError
from lamina.geo.columns import EMBED_MONTHS

if TYPE_CHECKING:
    from lamina.geo.encoder import ClimateEncoder

CRS = "EPSG:4326"
MAX_VALUES = 2_000_000_000
"""Largest output (pixels x bands) made without ``force=True``: 8 GB as float32."""


def check_bbox(bbox) -> tuple[float, float, float, float]:
    """Validate ``bbox=(west, south, east, north)`` in degrees; ``west > east`` crosses the antimeridian."""
    try:
        vals = tuple(float(v) for v in bbox)
    except (TypeError, ValueError):
        raise InputError(f"bbox: expected four numbers (west, south, east, north) in degrees, got {bbox!r}") from None
    if len(vals) != 4:
        raise InputError(f"bbox: expected four numbers (west, south, east, north), got {len(vals)}")
    w, s, e, n = vals
    if not all(math.isfinite(v) for v in vals):
        raise InputError(f"bbox: values must be finite numbers, got {vals}")
    for name, v in (("west", w), ("east", e)):
        if not -180.0 <= v <= 180.0:
            raise InputError(f"bbox: {name} must lie in [-180, 180], got {v:g}")
    for name, v in (("south", s), ("north", n)):
        if not -90.0 <= v <= 90.0:
            raise InputError(f"bbox: {name} must lie in [-90, 90], got {v:g}")
    if s >= n:
        raise InputError(f"bbox: south must be < north, got south={s:g}, north={n:g}")
    if w == e or (w, e) == (180.0, -180.0):
        raise InputError(f"bbox: west ({w:g}) and east ({e:g}) are the same meridian; use west > east to cross the "
                         "antimeridian")
    return w, s, e, n


def _count(span: float, res: float) -> int:
    """Pixels covering ``span`` degrees: the exact ratio when it is whole (to rounding), else rounded up."""
    ratio = span / res
    whole = round(ratio)
    return max(1, whole if abs(ratio - whole) < 1e-6 * max(1.0, ratio) else math.ceil(ratio))


@dataclass(frozen=True)
class RasterGrid:
    """Pixel grid of a bbox at ``resolution`` degrees (square pixels, row 0 at the north edge).

    The grid starts at the north-west corner; when the bbox is not a whole number of pixels, the last column
    (row) reaches past east (south) by less than one pixel. Pixel centres beyond a pole are evaluated at the pole.
    """

    west: float
    south: float
    east: float
    north: float
    resolution: float
    width: int
    height: int

    @classmethod
    def from_bbox(cls, bbox, resolution) -> RasterGrid:
        w, s, e, n = check_bbox(bbox)
        try:
            res = float(resolution)
        except (TypeError, ValueError):
            raise InputError(f"resolution: expected degrees > 0, got {resolution!r}") from None
        if not math.isfinite(res) or res <= 0:
            raise InputError(f"resolution: expected degrees > 0, got {resolution!r}")
        span = e - w if e > w else e - w + 360.0
        return cls(w, s, e, n, res, _count(span, res), _count(n - s, res))

    @property
    def crosses_antimeridian(self) -> bool:
        return self.west > self.east

    @property
    def lons(self) -> np.ndarray:
        """(W,) pixel-centre longitudes, degrees east, wrapped into [-180, 180)."""
        lon = self.west + (np.arange(self.width) + 0.5) * self.resolution
        return np.where(lon >= 180.0, lon - 360.0, lon)

    @property
    def lats(self) -> np.ndarray:
        """(H,) pixel-centre latitudes, degrees north, north to south (clipped to the poles)."""
        return np.clip(self.north - (np.arange(self.height) + 0.5) * self.resolution, -90.0, 90.0)

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL geotransform ``(x0, dx, 0, y0, 0, -dy)`` of the north-west corner (x0 may exceed 180 when wrapping)."""
        return (self.west, self.resolution, 0.0, self.north, 0.0, -self.resolution)

    def points(self, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel centres of rows ``row0:row1`` in row-major order: ``(lon (n,), lat (n,))``."""
        lon, lat = np.meshgrid(self.lons, self.lats[row0:row1])
        return lon.ravel(), lat.ravel()

    def check_size(self, bands: int, *, force: bool, limit: int = MAX_VALUES) -> int:
        """Raise unless ``height x width x bands <= limit`` (or ``force``); return the number of values."""
        n = self.height * self.width * bands
        if n > limit and not force:
            raise InputError(f"resolution: {self.resolution:g} deg gives {self.height} x {self.width} pixels x {bands} "
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


def provenance(encoder: ClimateEncoder, grid: RasterGrid, months: tuple[int, ...]) -> dict:
    """Attributes every embedding raster carries (JSON-friendly scalars and strings)."""
    from lamina import __version__

    return {
        "crs": CRS,
        "months": ",".join(str(m) for m in months),
        "checkpoint_sha256": weights_sha256(encoder),
        "lamina_version": __version__,
        "bbox": ",".join(f"{v:g}" for v in (grid.west, grid.south, grid.east, grid.north)),
        "resolution_deg": grid.resolution,
        "embedding": "Climplicit climate embedding at pixel centres (Dollinger et al. 2025, arXiv:2504.05089)",
    }


def band_names(encoder: ClimateEncoder, months: tuple[int, ...]) -> list[str]:
    """Band names, as the columns of ``lamina geo embed`` tables: ``emb_000..`` or ``emb_m03_000..``."""
    d = encoder.embedding_dim
    if len(months) == 1:
        return [f"emb_{i:03d}" for i in range(d)]
    return [f"emb_m{m:02d}_{i:03d}" for m in months for i in range(d)]


def embed_rows(encoder: ClimateEncoder, grid: RasterGrid, row0: int, row1: int, months: tuple[int, ...], *,
               precision: str = "float32") -> np.ndarray:
    """Embeddings of rows ``row0:row1``: ``(bands, row1 - row0, width)`` float32."""
    lon, lat = grid.points(row0, row1)
    month = None if len(months) > 1 else months[0]
    emb = encoder.embed(lon=lon, lat=lat, month=month, precision=precision)  # (n, bands)
    return np.ascontiguousarray(emb.T.reshape(-1, row1 - row0, grid.width))


def spatial_ref_attrs(grid: RasterGrid) -> dict:
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


def grid_dataarray(data, grid: RasterGrid, names: list[str], attrs: dict):
    """Wrap ``data`` (bands, H, W) (NumPy or Dask) as the embedding ``DataArray`` of ``grid``, CRS attached."""
    import xarray as xr

    coords = {
        "band": ("band", np.arange(1, len(names) + 1)),
        "band_name": ("band", np.asarray(names)),
        "lat": ("lat", grid.lats, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        "lon": ("lon", grid.lons, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
        "spatial_ref": ((), np.int64(0), spatial_ref_attrs(grid)),
    }
    return xr.DataArray(data, dims=("band", "lat", "lon"), coords=coords, name="embedding",
                        attrs={**attrs, "grid_mapping": "spatial_ref"})


def _dask_rows(encoder: ClimateEncoder, grid: RasterGrid, months, rows: int, bands: int, precision: str, sha256: str):
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
    grid = RasterGrid.from_bbox(bbox, resolution)
    months = months_of(month)
    names = band_names(encoder, months)
    if precision not in ("float32", "bfloat16"):
        raise InputError(f"precision: expected 'float32' or 'bfloat16', got {precision!r}")
    attrs = provenance(encoder, grid, months)
    if chunks is not None:
        if isinstance(chunks, bool) or not isinstance(chunks, int | np.integer) or chunks < 1:
            raise InputError(f"chunks: expected rows per chunk (an integer >= 1) or None, got {chunks!r}")
        data = _dask_rows(encoder, grid, months, int(chunks), len(names), precision, attrs["checkpoint_sha256"])
        return grid_dataarray(data, grid, names, attrs)  # the weights hashed once, for provenance and the graph
    grid.check_size(len(names), force=force, limit=max_values)
    data = np.empty((len(names), grid.height, grid.width), dtype=np.float32)
    step = max(1, (1 << 24) // (grid.width * len(names)))  # ~16 M values (64 MB) per call: bounded temporaries
    for r0 in range(0, grid.height, step):
        r1 = min(grid.height, r0 + step)
        data[:, r0:r1] = embed_rows(encoder, grid, r0, r1, months, precision=precision)
    return grid_dataarray(data, grid, names, attrs)
