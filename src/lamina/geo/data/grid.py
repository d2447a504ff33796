"""Regular longitude/latitude grids and variable descriptions.

A :class:`Grid` maps between degrees and pixel indices of a regular lon/lat raster whose pixels are areas
(GeoTIFF "PixelIsArea"): row ``r`` spans latitudes ``lat_top - r * dlat`` .. ``lat_top - (r + 1) * dlat`` when
rows run north to south (``dlat > 0`` here means the usual top-down order), column ``c`` spans
``lon_left + c * dlon`` .. ``lon_left + (c + 1) * dlon``. Global grids wrap in longitude, so a grid whose columns
start at 0 degrees east (ETOPO, COADS) answers queries in [-180, 180] too.

The same type is the pixel grid of an embedding raster over a bbox (:meth:`Grid.from_bbox`, used by
:mod:`lamina.geo.raster`): square pixels from the bbox's north-west corner, the bbox kept for provenance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from lamina._validation import check_choice
from lamina.errors import InputError

SUPPORTS = {
    "global": "defined everywhere",
    "ocean": "defined over the ocean only (NaN at points whose centre is land in the GLOBE 1 km land mask)",
}
"""Where a variable is defined (:attr:`Variable.support`)."""


@dataclass(frozen=True)
class Variable:
    """What one raster variable is: name, physical units and where it comes from.

    Attributes:
        name: short name, e.g. ``"tas"`` or ``"linke_turbidity"``.
        units: physical units after decoding, e.g. ``"degC"``, ``"m"``, ``"1"`` for dimensionless.
        long_name: human-readable description.
        source: provenance (dataset, version, file).
        licence: licence or terms of use of the source data.
        monthly: True for a 12-month climatology, False for a static field (same value every month).
        transform: normalising transform applied before z-scoring in pretraining (see
            :mod:`lamina.geo.data.transforms`): ``"identity"``, ``"log1p"`` or ``"sqrt"``.
        support: where the variable is defined: ``"global"``, or ``"ocean"`` (marine climatologies such as COADS:
            an encoder's reconstruction is NaN over land, see :data:`SUPPORTS`).
    """

    name: str
    units: str
    long_name: str = ""
    source: str = ""
    licence: str = ""
    monthly: bool = True
    transform: str = "identity"
    support: str = "global"

    def __post_init__(self):
        from lamina.geo.data.transforms import check_transform

        check_transform(self.transform, what=f"{self.name}: transform")
        check_choice(f"{self.name}: support", self.support, sorted(SUPPORTS))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Variable:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


_NOT_NUMBERS = (bool, np.bool_, str, bytes, complex, np.complexfloating)
"""Values ``float()`` would convert silently that are not numbers of degrees."""

MAX_PIXELS_PER_SIDE = 2**31 - 1
"""Most rows or columns of a grid made from a bbox (GDAL's raster dimensions are 32-bit integers)."""


def check_bbox(bbox) -> tuple[float, float, float, float]:
    """Validate ``bbox=(west, south, east, north)`` in degrees; ``west > east`` crosses the antimeridian."""
    try:
        raw = tuple(bbox)
        if any(isinstance(v, _NOT_NUMBERS) for v in raw):  # float(True) is 1.0, float("5") is 5.0: not converted
            raise TypeError
        vals = tuple(float(v) for v in raw)
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


def _pixel_count(span: float, res: float) -> int:
    """Pixels covering ``span`` degrees: the exact ratio when it is whole (to rounding), else rounded up."""
    ratio = span / res
    whole = round(ratio)
    return max(1, whole if abs(ratio - whole) < 1e-6 * max(1.0, ratio) else math.ceil(ratio))


@dataclass(frozen=True)
class Grid:
    """A regular lon/lat grid of ``height x width`` area pixels.

    Attributes:
        lon_left: western edge of column 0, degrees east.
        lat_top: northern edge of row 0, degrees north (the southern edge when ``dlat < 0``).
        dlon: pixel width in degrees (> 0).
        dlat: pixel height in degrees; > 0 when rows run north to south, < 0 when south to north.
        height, width: number of rows and columns.
        bbox: ``(west, south, east, north)`` the grid was made to cover (:meth:`from_bbox`), else None; not part
            of the grid's identity (equality, hash).
    """

    lon_left: float
    lat_top: float
    dlon: float
    dlat: float
    height: int
    width: int
    bbox: tuple[float, float, float, float] | None = field(default=None, repr=False, compare=False)
    _global: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self):
        if self.dlon <= 0 or self.dlat == 0 or self.height < 1 or self.width < 1:
            raise ValueError(f"invalid grid {self}")
        object.__setattr__(self, "_global", abs(self.width * self.dlon - 360.0) < 1e-6 * 360)

    @classmethod
    def from_centres(cls, lon: np.ndarray, lat: np.ndarray) -> Grid:
        """Build a grid from 1-D arrays of pixel-centre coordinates (evenly spaced)."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        dlon = float((lon[-1] - lon[0]) / (lon.size - 1)) if lon.size > 1 else 360.0
        dlat = float((lat[0] - lat[-1]) / (lat.size - 1)) if lat.size > 1 else 180.0
        if abs(lon.size * dlon - 360.0) < 0.5 * dlon:  # global: snap rounding in stored coordinates (ETOPO5)
            dlon = 360.0 / lon.size
        return cls(float(lon[0] - dlon / 2), float(lat[0] + dlat / 2), dlon, dlat, int(lat.size), int(lon.size))

    @classmethod
    def global_grid(cls, resolution_deg: float, *, lon_left: float = -180.0) -> Grid:
        """A global north-up grid of square pixels of ``resolution_deg`` degrees."""
        h = round(180.0 / resolution_deg)
        w = round(360.0 / resolution_deg)
        return cls(lon_left, 90.0, 360.0 / w, 180.0 / h, h, w)

    @classmethod
    def from_bbox(cls, bbox, resolution) -> Grid:
        """The grid of square ``resolution``-degree pixels covering ``bbox`` from its north-west corner.

        ``bbox=(west, south, east, north)`` degrees, ``west > east`` crossing the antimeridian (columns then run
        east past 180). When the bbox is not a whole number of pixels, the last column (row) reaches past east
        (south) by less than one pixel; pixel centres beyond a pole are evaluated at the pole (:attr:`lats`).

        Raises:
            InputError: a bad bbox (see :func:`check_bbox`) or a resolution that is not a finite number > 0.
        """
        w, s, e, n = check_bbox(bbox)
        try:
            if isinstance(resolution, _NOT_NUMBERS):
                raise TypeError
            res = float(resolution)
        except (TypeError, ValueError):
            raise InputError(f"resolution: expected degrees > 0, got {resolution!r}") from None
        if not math.isfinite(res) or res <= 0:
            raise InputError(f"resolution: expected degrees > 0, got {resolution!r}")
        span = e - w if e > w else e - w + 360.0
        across = max(span, n - s) / res  # inf for a subnormal resolution such as 1e-320
        if not across <= MAX_PIXELS_PER_SIDE:
            raise InputError(f"resolution: {res:g} deg gives {across:.3g} pixels across the bbox, more than "
                             f"{MAX_PIXELS_PER_SIDE:,} per side; use a coarser resolution")
        return cls(w, n, res, res, _pixel_count(n - s, res), _pixel_count(span, res), bbox=(w, s, e, n))

    @property
    def is_global(self) -> bool:
        """True if the columns cover all 360 degrees of longitude (queries then wrap)."""
        return self._global

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` degrees: the bbox of :meth:`from_bbox`, else the edges of the pixels."""
        if self.bbox is not None:
            return self.bbox
        lat_end = self.lat_top - self.height * self.dlat
        return (self.lon_left, min(self.lat_top, lat_end), self.lon_left + self.width * self.dlon,
                max(self.lat_top, lat_end))

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL geotransform ``(x0, dx, 0, y0, 0, -dy)`` of the corner of pixel (0, 0) (x0 + width * dx may
        exceed 180 when the columns wrap)."""
        return (self.lon_left, self.dlon, 0.0, self.lat_top, 0.0, -self.dlat)

    @property
    def lons(self) -> np.ndarray:
        """(width,) pixel-centre longitudes, degrees east (as stored: may exceed 180; see :attr:`wrapped_lons`)."""
        return self.lon_left + (np.arange(self.width) + 0.5) * self.dlon

    @property
    def wrapped_lons(self) -> np.ndarray:
        """(width,) pixel-centre longitudes, degrees east, wrapped into [-180, 180)."""
        lon = self.lons
        return np.where(lon >= 180.0, lon - 360.0, np.where(lon < -180.0, lon + 360.0, lon))

    @property
    def lats(self) -> np.ndarray:
        """(height,) pixel-centre latitudes, degrees north, in row order (clipped to the poles)."""
        return np.clip(self.lat_top - (np.arange(self.height) + 0.5) * self.dlat, -90.0, 90.0)

    def points(self, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel centres of rows ``row0:row1`` in row-major order: ``(lon (n,) in [-180, 180), lat (n,))``."""
        lon, lat = np.meshgrid(self.wrapped_lons, self.lats[row0:row1])
        return lon.ravel(), lat.ravel()

    def fractional_index(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous (row, col) positions, with pixel centres at integers; columns wrapped on global grids."""
        col = (np.asarray(lon, dtype=np.float64) - self.lon_left) / self.dlon - 0.5
        if self.is_global:
            col = np.mod(col, self.width)
        row = (self.lat_top - np.asarray(lat, dtype=np.float64)) / self.dlat - 0.5
        return row, col

    def index(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest pixel of each point.

        Returns:
            ``(row, col, inside)``: int64 arrays (clipped into the grid) and a bool mask of the points that fall
            inside the grid's extent.
        """
        row, col = self.fractional_index(lon, lat)
        r = np.floor(row + 0.5).astype(np.int64)
        c = np.floor(col + 0.5).astype(np.int64)
        if self.is_global:
            c %= self.width
        inside = (r >= -1) & (r <= self.height) & (c >= 0) & (c < self.width)
        # points within half a pixel of the top/bottom edge belong to the edge row
        inside &= (row >= -0.5 - 1e-9) & (row <= self.height - 0.5 + 1e-9)
        return np.clip(r, 0, self.height - 1), np.clip(c, 0, self.width - 1), inside

    def centres(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre (lon, lat) of the given (row, col) indices, lon wrapped to [-180, 180)."""
        lon = self.lon_left + (np.asarray(cols) + 0.5) * self.dlon
        lat = self.lat_top - (np.asarray(rows) + 0.5) * self.dlat
        return (lon + 180.0) % 360.0 - 180.0, lat

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("lon_left", "lat_top", "dlon", "dlat", "height", "width")}


GRID_5MIN = Grid(-180.0, 90.0, 1.0 / 12.0, 1.0 / 12.0, 2160, 4320)
"""The global 5-arc-minute grid (rows from 90 N southwards, columns from 180 W) of pvlib's and GLOBE's fields."""

BLOCK_ID_STRIDE = 100_000
"""``block_ids`` = row * BLOCK_ID_STRIDE + column of the cell (columns stay below it for any block size >= 0.004)."""


def block_ids(*, lon, lat, block_deg: float, offset: tuple[float, float] = (0.0, 0.0),
              wrap_lon: bool = False) -> np.ndarray:
    """Id of the ``block_deg`` x ``block_deg`` degree cell holding each point, on a grid shifted by ``offset``.

    The one definition of spatial blocks: the evaluation's spatial block split
    (:class:`lamina.geo.eval.splits.SpatialBlockSplit`) and pretraining's held-out blocks
    (:class:`lamina.geo.data.sampling.SpatialSplit`) both use it. Cell ``(row, col)`` covers latitudes
    ``[row * block_deg - 90 - offset[1], (row + 1) * block_deg - 90 - offset[1])`` and the same for longitudes from
    -180 (row = ``(lat + 90 + offset[1]) // block_deg``, col = ``(lon + 180 + offset[0]) // block_deg``).

    Args:
        lon: (N,) degrees east in [-180, 180]. lat: (N,) degrees north in [-90, 90].
        block_deg: cell size in degrees (> 0).
        offset: (lon, lat) shift of the cell grid in degrees (>= 0), e.g. drawn from a seed.
        wrap_lon: take ``lon + 180 + offset[0]`` modulo 360, so that 180 E falls in the cell of 180 W and columns
            stay in ``[0, 360 / block_deg)``.

    Returns:
        (N,) int64 cell ids (equal ids = same cell): ``row * BLOCK_ID_STRIDE + col``.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    x = lon + 180.0 + offset[0]
    if wrap_lon:
        x = x % 360.0
    col = (x // block_deg).astype(np.int64)
    row = ((lat + 90.0 + offset[1]) // block_deg).astype(np.int64)
    return row * BLOCK_ID_STRIDE + col
