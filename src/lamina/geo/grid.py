"""Regular longitude/latitude grids and variable descriptions.

A :class:`Grid` maps between degrees and pixel indices of a regular lon/lat raster whose pixels are areas
(GeoTIFF "PixelIsArea"): row ``r`` spans latitudes ``lat_top - r * dlat`` .. ``lat_top - (r + 1) * dlat`` when
rows run north to south (``dlat > 0`` here means the usual top-down order), column ``c`` spans
``lon_left + c * dlon`` .. ``lon_left + (c + 1) * dlon``. Global grids wrap in longitude, so a grid whose columns
start at 0 degrees east (ETOPO, COADS) answers queries in [-180, 180] too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

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
            :mod:`lamina.geo.transforms`): ``"identity"``, ``"log1p"`` or ``"sqrt"``.
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
        from lamina.geo.transforms import check_transform

        check_transform(self.transform, what=f"{self.name}: transform")
        if self.support not in SUPPORTS:
            raise InputError(f"{self.name}: support: expected one of {sorted(SUPPORTS)}, got {self.support!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Variable:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Grid:
    """A regular lon/lat grid of ``height x width`` area pixels.

    Attributes:
        lon_left: western edge of column 0, degrees east.
        lat_top: northern edge of row 0, degrees north (the southern edge when ``dlat < 0``).
        dlon: pixel width in degrees (> 0).
        dlat: pixel height in degrees; > 0 when rows run north to south, < 0 when south to north.
        height, width: number of rows and columns.
    """

    lon_left: float
    lat_top: float
    dlon: float
    dlat: float
    height: int
    width: int
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

    @property
    def is_global(self) -> bool:
        """True if the columns cover all 360 degrees of longitude (queries then wrap)."""
        return self._global

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def lons(self) -> np.ndarray:
        """(width,) pixel-centre longitudes, degrees east (as stored: may exceed 180)."""
        return self.lon_left + (np.arange(self.width) + 0.5) * self.dlon

    @property
    def lats(self) -> np.ndarray:
        """(height,) pixel-centre latitudes, degrees north, in row order."""
        return self.lat_top - (np.arange(self.height) + 0.5) * self.dlat

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
