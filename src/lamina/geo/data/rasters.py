"""Raster stacks: climate variables of (month, lat, lon) on regular lon/lat grids, read window by window.

A :class:`RasterStack` is a list of :class:`Field` s, one per variable, each with its own grid and reader
(GeoTIFF, NetCDF, HDF5, NumPy / memory-mapped arrays), so that fields of different resolutions can be combined
without regridding. It answers point queries (:meth:`RasterStack.values_at`), computes per-variable
normalisation statistics in one streaming pass (:meth:`RasterStack.statistics`), and feeds the pretraining
sampler (:mod:`lamina.geo.data.sampling`), which reads windows and never the whole stack.

CHELSA climatologies: :func:`lamina.geo.data.sources.chelsa.chelsa_stack`
takes a folder of CHELSA v2.1 GeoTIFFs named as CHELSA distributes them (``CHELSA_tas_01_1981-2010_V.2.1.tif`` ...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lamina._validation import check_choice, check_lon_lat, check_month
from lamina.errors import InputError
from lamina.geo.data.grid import Grid, Variable
from lamina.geo.data.readers import MonthlyTiffs, Reader, TiffReader


@dataclass
class Field:
    """One variable: its description, its reader (12 monthly layers or 1 static), and point interpolation.

    Attributes:
        variable: name, units, provenance.
        reader: where the values come from.
        interpolation: ``"nearest"`` or ``"bilinear"`` for point queries (bilinear suits coarse grids).
    """

    variable: Variable
    reader: Reader
    interpolation: str = "nearest"

    def __post_init__(self):
        check_choice("interpolation", self.interpolation, ("nearest", "bilinear"))
        if self.reader.n_layers not in (1, 12):
            n = self.reader.n_layers
            raise InputError(f"{self.variable.name}: expected 12 monthly layers or 1 static, got {n}")

    @property
    def grid(self) -> Grid:
        return self.reader.grid

    @property
    def monthly(self) -> bool:
        return self.reader.n_layers == 12

    def layer(self, month: np.ndarray) -> np.ndarray:
        """Layer index of each month (1..12): ``month - 1``, or 0 for a static field."""
        month = np.asarray(month)
        return month - 1 if self.monthly else np.zeros_like(month)

    def raw_array(self) -> np.ndarray:
        """(layers, height, width) values as the source stores them (native dtype, not decoded). Loads the
        whole field: meant for the small offline fields (storage benchmarks), not for 30-arc-second stacks."""
        g, r = self.grid, self.reader
        return np.stack([np.asarray(r.read_raw(k, 0, g.height, 0, g.width)) for k in range(r.n_layers)])

    def values_at(self, lon: np.ndarray, lat: np.ndarray, month: np.ndarray) -> np.ndarray:
        """(N,) float32 values at the points (degrees, months 1..12); NaN outside the grid or where no data."""
        out = np.full(lon.shape, np.nan, dtype=np.float32)
        layers = self.layer(month)
        for layer in np.unique(layers):
            sel = np.flatnonzero(layers == layer)
            if self.interpolation == "nearest":
                r, c, inside = self.grid.index(lon[sel], lat[sel])
                vals = self.reader.read_points(int(layer), r, c)
                vals[~inside] = np.nan
            else:
                vals = self._bilinear(int(layer), lon[sel], lat[sel])
            out[sel] = vals
        return out

    def _bilinear(self, layer: int, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        g = self.grid
        row, col = g.fractional_index(lon, lat)
        row = np.clip(row, 0.0, g.height - 1.0)  # beyond the outermost centres: nearest row
        r0 = np.floor(row).astype(np.int64)
        c0 = np.floor(col).astype(np.int64)
        fr = (row - r0).astype(np.float32)
        fc = (col - c0).astype(np.float32)
        r1 = np.minimum(r0 + 1, g.height - 1)
        if g.is_global:
            c0 %= g.width
            c1 = (c0 + 1) % g.width
        else:
            fc = np.where((c0 < 0) | (c0 >= g.width - 1), np.round(fc), fc)
            c0 = np.clip(c0, 0, g.width - 1)
            c1 = np.clip(c0 + 1, 0, g.width - 1)
        acc = np.zeros(lon.shape, dtype=np.float32)
        wsum = np.zeros(lon.shape, dtype=np.float32)
        for rr, cc, w in ((r0, c0, (1 - fr) * (1 - fc)), (r0, c1, (1 - fr) * fc), (r1, c0, fr * (1 - fc)),
                          (r1, c1, fr * fc)):
            v = self.reader.read_points(layer, rr, cc)
            ok = np.isfinite(v) & (w > 0)
            acc[ok] += w[ok] * v[ok]
            wsum[ok] += w[ok]
        out = np.full(lon.shape, np.nan, dtype=np.float32)
        good = wsum > 1e-6
        out[good] = acc[good] / wsum[good]  # missing neighbours: renormalise over the valid ones
        if not g.is_global:
            _, _, inside = g.index(lon, lat)
            out[~inside] = np.nan
        return out


@dataclass
class Statistics:
    """Per-variable statistics in physical units over valid pixels (and months)."""

    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray

    def to_dict(self) -> dict:
        return {k: np.asarray(getattr(self, k)).tolist() for k in ("mean", "std", "count", "minimum", "maximum")}


class RasterStack:
    """Climate variables as a list of fields, each on its own regular lon/lat grid.

    Args:
        fields: one per variable (names must be unique).
        name: short name of the stack (stored in checkpoints as provenance).
        description: free text (sources, licences).
    """

    def __init__(self, fields: Sequence[Field], *, name: str = "stack", description: str = ""):
        if not fields:
            raise InputError("fields: a stack needs at least one variable")
        names = [f.variable.name for f in fields]
        if len(set(names)) != len(names):
            raise InputError(f"fields: variable names must be unique, got {names}")
        self.fields = list(fields)
        self.name = name
        self.description = description

    def __repr__(self) -> str:
        return f"RasterStack({self.name!r}, variables={self.names})"

    @property
    def variables(self) -> list[Variable]:
        return [f.variable for f in self.fields]

    @property
    def names(self) -> list[str]:
        return [f.variable.name for f in self.fields]

    @property
    def reference_grid(self) -> Grid:
        """The finest grid of the stack: the pretraining sampler draws pixels on it."""
        return min((f.grid for f in self.fields), key=lambda g: g.dlon * abs(g.dlat))

    def select(self, names: Sequence[str]) -> RasterStack:
        """A stack with only the named variables, in that order."""
        by_name = {f.variable.name: f for f in self.fields}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise InputError(f"variables: unknown {missing}; this stack has {self.names}")
        return RasterStack([by_name[n] for n in names], name=self.name, description=self.description)

    def values_at(self, *, lon, lat, month, wrap_lon: bool = False) -> np.ndarray:
        """Values of every variable at points.

        Args:
            lon: (N,) degrees east in [-180, 180].
            lat: (N,) degrees north in [-90, 90].
            month: scalar or (N,) months 1..12 (ignored by static fields).

        Returns:
            (N, V) float32 in each variable's physical units; NaN where a field has no data.
        """
        lon, lat = check_lon_lat(lon, lat, wrap=wrap_lon)
        month = check_month(month, n=lon.size)
        return np.stack([f.values_at(lon, lat, month) for f in self.fields], axis=1) if lon.size else np.empty(
            (0, len(self.fields)), dtype=np.float32
        )

    def statistics(self, *, land_only: bool = False, block_rows: int = 256, stride: int = 1) -> Statistics:
        """Per-variable mean, std, count, min and max over all valid pixels of all layers, in one streaming pass.

        Memory stays bounded by one block of ``block_rows`` rows; ``stride > 1`` reads every ``stride``-th row and
        column only (for stacks of many GB). With ``land_only`` pixels whose centre is not land are skipped.
        Sums are accumulated in float64 per block and merged with Chan's parallel formula. Statistics are those of
        each variable after its normalising transform (:attr:`Variable.transform`, identity for most).
        """
        from lamina.geo.data.landmask import is_land
        from lamina.geo.data.transforms import forward

        n_var = len(self.fields)
        mean = np.zeros(n_var)
        m2 = np.zeros(n_var)
        count = np.zeros(n_var)
        vmin = np.full(n_var, np.inf)
        vmax = np.full(n_var, -np.inf)
        for i, f in enumerate(self.fields):
            g = f.grid
            cols = np.arange(0, g.width, stride)
            for r0 in range(0, g.height, block_rows * stride):
                rows = np.arange(r0, min(r0 + block_rows * stride, g.height), stride)
                mask = None
                if land_only:
                    lon, lat = g.centres(*np.meshgrid(rows, cols, indexing="ij"))
                    mask = is_land(lon.ravel(), np.clip(lat.ravel(), -90, 90)).reshape(rows.size, cols.size)
                for layer in range(f.reader.n_layers):
                    block = f.reader.read(layer, int(rows[0]), int(rows[-1]) + 1, 0, g.width)[::stride, ::stride]
                    vals = block[mask] if mask is not None else block.ravel()
                    vals = forward(f.variable.transform, vals[np.isfinite(vals)].astype(np.float64))
                    if vals.size == 0:
                        continue
                    n_b, mean_b = vals.size, vals.mean()
                    m2_b = ((vals - mean_b) ** 2).sum()
                    delta = mean_b - mean[i]
                    tot = count[i] + n_b
                    mean[i] += delta * n_b / tot
                    m2[i] += m2_b + delta**2 * count[i] * n_b / tot
                    count[i] = tot
                    vmin[i] = min(vmin[i], vals.min())
                    vmax[i] = max(vmax[i], vals.max())
        empty = [self.names[i] for i in np.flatnonzero(count == 0)]
        if empty:
            raise InputError(f"variables {empty} have no valid pixels" + (" on land" if land_only else ""))
        std = np.sqrt(m2 / np.maximum(count - 1, 1))
        return Statistics(mean, np.where(std > 0, std, 1.0), count, vmin, vmax)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_geotiffs(cls, files: dict[str, dict[int, str | os.PathLike] | str | os.PathLike], *,
                      units: dict[str, str] | None = None, name: str = "geotiffs", **decode) -> RasterStack:
        """A stack from GeoTIFFs: ``{variable: {month: path}}`` (12 months) or ``{variable: path}`` (static)."""
        units = units or {}
        fields = []
        for var, spec in files.items():
            if isinstance(spec, dict):
                months = sorted(spec)
                if months != list(range(1, 13)):
                    raise InputError(f"{var}: expected GeoTIFFs for months 1..12, got months {months}")
                reader = MonthlyTiffs([TiffReader(spec[m], **decode) for m in months])
            else:
                reader = TiffReader(spec, **decode)
            fields.append(Field(Variable(var, units.get(var, ""), source=str(spec)), reader))
        return cls(fields, name=name)
