"""Windowed readers of raster layers: in-memory / memory-mapped arrays, HDF5, NetCDF and GeoTIFF.

Every reader exposes the same small interface, so a stack can mix formats and stay out of memory:

- ``grid``: the :class:`~lamina.geo.data.grid.Grid` of its pixels;
- ``n_layers``: 12 for a monthly climatology, 1 for a static field;
- ``read(layer, r0, r1, c0, c1)``: a window, decoded to physical units, float32, NaN where there is no data;
- ``read_points(layer, rows, cols)``: single pixels (the default groups them into blocks and reads windows).

Decoding is ``raw * scale + offset`` after masking ``nodata`` (and values outside ``valid_range``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lamina.errors import InputError
from lamina.geo.data.grid import Grid


class Reader:
    """Base class: decoding and block-wise point reads on top of :meth:`read_raw`."""

    grid: Grid
    n_layers: int

    def __init__(self, *, scale: float = 1.0, offset: float = 0.0, nodata=None, valid_range=None):
        self.scale = float(scale)
        self.offset = float(offset)
        self.nodata = nodata
        self.valid_range = valid_range

    # subclasses implement this: raw values of one layer's window, any dtype
    def read_raw(self, layer: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def decode(self, raw: np.ndarray) -> np.ndarray:
        raw = np.ma.filled(raw, np.nan) if np.ma.isMaskedArray(raw) else raw
        out = raw.astype(np.float32)
        bad = ~np.isfinite(out)
        if self.nodata is not None:
            bad |= raw == self.nodata
        if self.valid_range is not None:
            lo, hi = self.valid_range
            bad |= (out < lo) | (out > hi)
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        if self.offset != 0.0:
            out += np.float32(self.offset)
        out[bad] = np.nan
        return out

    def read(self, layer: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """(r1 - r0, c1 - c0) float32 window of ``layer`` in physical units; NaN = no data."""
        return self.decode(self.read_raw(layer, r0, r1, c0, c1))

    def read_points(self, layer: int, rows: np.ndarray, cols: np.ndarray, *, block: int = 256) -> np.ndarray:
        """(N,) float32 values at integer pixel indices, read block by block (bounded memory)."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        out = np.empty(rows.size, dtype=np.float32)
        if rows.size == 0:
            return out
        key = (rows // block) * (self.grid.width // block + 1) + cols // block
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.diff(key[order])) + 1
        for sel in np.split(order, bounds):
            br, bc = rows[sel[0]] // block * block, cols[sel[0]] // block * block
            r1, c1 = min(br + block, self.grid.height), min(bc + block, self.grid.width)
            win = self.read(layer, int(br), int(r1), int(bc), int(c1))
            out[sel] = win[rows[sel] - br, cols[sel] - bc]
        return out


class ArrayReader(Reader):
    """Layers held in an array-like of shape (layers, height, width): NumPy, np.memmap or an h5py dataset.

    Args:
        data: the array (memory-mapped or HDF5 datasets are read window by window, never whole).
        grid: its grid.
        axes: order of the axes of ``data``: ``"lhw"`` (layers, rows, cols), ``"hwl"``, or ``"hw"`` (one layer).
    """

    def __init__(self, data, grid: Grid, *, axes: str = "lhw", **decode):
        super().__init__(**decode)
        if axes not in ("lhw", "hwl", "hw"):
            raise ValueError(f"axes: expected 'lhw', 'hwl' or 'hw', got {axes!r}")
        self.data, self.grid, self.axes = data, grid, axes
        shape = tuple(data.shape)
        hw = shape[1:] if axes == "lhw" else shape[:2]
        if hw != grid.shape:
            raise InputError(f"data: shape {shape} does not match the grid's {grid.shape} (axes {axes!r})")
        self.n_layers = 1 if axes == "hw" else (shape[0] if axes == "lhw" else shape[2])

    def read_raw(self, layer, r0, r1, c0, c1):
        if self.axes == "lhw":
            return np.asarray(self.data[layer, r0:r1, c0:c1])
        if self.axes == "hwl":
            return np.asarray(self.data[r0:r1, c0:c1, layer])
        return np.asarray(self.data[r0:r1, c0:c1])

    def read_points(self, layer, rows, cols, *, block: int = 256):
        if isinstance(self.data, np.ndarray):  # includes np.memmap: direct gather
            rows = np.asarray(rows, dtype=np.int64)
            cols = np.asarray(cols, dtype=np.int64)
            if self.axes == "lhw":
                raw = self.data[layer][rows, cols]
            elif self.axes == "hwl":
                raw = self.data[rows, cols, layer]
            else:
                raw = self.data[rows, cols]
            return self.decode(raw)
        return super().read_points(layer, rows, cols, block=block)


class NetCDFReader(Reader):
    """One variable of a NetCDF file (classic or NetCDF-4), shaped (time, lat, lon) or (lat, lon).

    The grid comes from the 1-D coordinate variables; ``_FillValue`` / ``missing_value`` become NaN. Windows
    are read with netCDF4 slicing, so files larger than memory stay on disk.
    """

    def __init__(self, path: str | os.PathLike, variable: str, *, time_index=None, **decode):
        import netCDF4

        super().__init__(**decode)
        self.path, self.variable = str(path), variable
        with netCDF4.Dataset(self.path) as ds:
            if variable not in ds.variables:
                raise InputError(f"variable: {variable!r} is not in {path} (has {sorted(ds.variables)})")
            var = ds.variables[variable]
            dims = var.dimensions
            if len(dims) not in (2, 3):
                raise InputError(f"{path}:{variable}: expected (time, lat, lon) or (lat, lon), got dims {dims}")
            lat = np.asarray(ds.variables[dims[-2]][:], dtype=np.float64)
            lon = np.asarray(ds.variables[dims[-1]][:], dtype=np.float64)
            self.n_layers = 1 if len(dims) == 2 else var.shape[0]
        self.grid = Grid.from_centres(lon, lat)
        self._local = threading.local()

    def _var(self):
        import netCDF4

        if getattr(self._local, "pid", None) != os.getpid():  # reopen after fork (DataLoader / torchrun)
            self._local.ds = netCDF4.Dataset(self.path)
            self._local.ds.set_auto_mask(True)
            self._local.pid = os.getpid()
        return self._local.ds.variables[self.variable]

    def read_raw(self, layer, r0, r1, c0, c1):
        var = self._var()
        if self.n_layers == 1 and var.ndim == 2:
            return var[r0:r1, c0:c1]
        return var[layer, r0:r1, c0:c1]


class TiffReader(Reader):
    """A single-band GeoTIFF in geographic coordinates (lon / lat degrees, e.g. EPSG:4326), read window by window.

    Only the strips or tiles that intersect a window are read and decoded (tifffile does the decompression), so
    a 30-arc-second CHELSA layer (43200 x 20880 pixels) never has to fit in memory. The grid comes from the
    ModelPixelScale / ModelTiepoint tags, ``nodata`` from GDAL_NODATA unless given, and scale / offset from the
    GDAL metadata when the file carries them (explicit arguments win).

    A raster registered as PixelIsPoint (GTRasterTypeGeoKey = 2: the tiepoint is a pixel's centre) is read on the
    grid of pixels centred there. Refused with an :class:`~lamina.errors.InputError` naming the file: a projected
    or geocentric CRS (reproject to lon / lat first, e.g. ``gdalwarp -t_srs EPSG:4326``), coordinates outside the
    range of degrees, a non-positive or non-finite pixel size, and GDAL_NODATA / scale / offset tags that are not
    numbers (they would otherwise be ignored and the no-data value read as data).
    """

    def __init__(self, path: str | os.PathLike, **decode):
        import tifffile

        self.path = Path(path)
        with tifffile.TiffFile(self.path) as tif:
            page = tif.pages[0]
            tags = page.tags
            if page.samplesperpixel != 1 or page.shaped[0] != 1:
                raise InputError(f"{path}: expected a single-band GeoTIFF, got shape {page.shape}")
            if "ModelPixelScaleTag" not in tags or "ModelTiepointTag" not in tags:
                raise InputError(f"{path}: no GeoTIFF georeferencing (ModelPixelScale / ModelTiepoint tags)")
            keys = _geokeys(tags)
            _check_geographic(path, keys)
            sx, sy = (float(v) for v in tags["ModelPixelScaleTag"].value[:2])
            if not (np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy != 0):
                raise InputError(f"{path}: invalid ModelPixelScale ({sx}, {sy}); expected finite sizes, x > 0")
            tp = tags["ModelTiepointTag"].value
            i0, j0, x0, y0 = (float(v) for v in (tp[0], tp[1], tp[3], tp[4]))
            if keys.get(_GT_RASTER_TYPE) == _PIXEL_IS_POINT:  # the tiepoint is the centre of pixel (i0, j0)
                i0, j0 = i0 + 0.5, j0 + 0.5
            self.grid = Grid(x0 - i0 * sx, y0 + j0 * sy, sx, sy, page.imagelength, page.imagewidth)
            _check_degrees(path, self.grid)
            if "nodata" not in decode:
                decode["nodata"] = _gdal_nodata(tags, path)
            if "scale" not in decode or "offset" not in decode:
                meta = _gdal_metadata(tags, path)
                decode.setdefault("scale", meta.get("scale", 1.0))
                decode.setdefault("offset", meta.get("offset", 0.0))
            self._tiled = page.is_tiled
            self._seg_h = page.tilelength if page.is_tiled else page.rowsperstrip
            self._seg_w = page.tilewidth if page.is_tiled else page.imagewidth
            self.dtype = page.dtype
        super().__init__(**decode)
        self.n_layers = 1
        self._local = threading.local()

    def _page(self):
        import tifffile

        if getattr(self._local, "pid", None) != os.getpid():
            self._local.tif = tifffile.TiffFile(self.path)
            self._local.pid = os.getpid()
        return self._local.tif

    def read_raw(self, layer, r0, r1, c0, c1):
        tif = self._page()
        page = tif.pages[0]
        fh = tif.filehandle
        out = np.zeros((r1 - r0, c1 - c0), dtype=self.dtype)
        seg_cols = -(-self.grid.width // self._seg_w)
        for sr in range(r0 // self._seg_h, (r1 - 1) // self._seg_h + 1):
            for sc in range(c0 // self._seg_w, (c1 - 1) // self._seg_w + 1):
                idx = sr * seg_cols + sc if self._tiled else sr
                nbytes = page.databytecounts[idx]
                if nbytes == 0:  # sparse file: segment never written
                    continue
                fh.seek(page.dataoffsets[idx])
                seg, _, _ = page.decode(fh.read(nbytes), idx)
                seg = seg.reshape(seg.shape[-3], seg.shape[-2])  # (seg_h, seg_w)
                top, left = sr * self._seg_h, sc * self._seg_w
                rr0, rr1 = max(r0, top), min(r1, top + seg.shape[0], self.grid.height)
                cc0, cc1 = max(c0, left), min(c1, left + seg.shape[1], self.grid.width)
                out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = seg[rr0 - top : rr1 - top, cc0 - left : cc1 - left]
        return out


# GeoTIFF keys (OGC GeoTIFF 1.1): model type 1 = projected, 2 = geographic, 3 = geocentric; raster type
# 1 = PixelIsArea, 2 = PixelIsPoint; ProjectedCRSGeoKey names a projected CRS.
_GT_MODEL_TYPE, _GT_RASTER_TYPE, _GEOGRAPHIC_TYPE, _PROJECTED_TYPE = 1024, 1025, 2048, 3072
_MODEL_PROJECTED, _MODEL_GEOGRAPHIC, _MODEL_GEOCENTRIC = 1, 2, 3
_PIXEL_IS_POINT = 2


def _geokeys(tags) -> dict[int, int]:
    """The short-valued keys of the GeoKeyDirectory tag (empty without it)."""
    if "GeoKeyDirectoryTag" not in tags:
        return {}
    v = [int(x) for x in tags["GeoKeyDirectoryTag"].value]
    n = v[3] if len(v) >= 4 else 0
    return {v[4 + 4 * k]: v[7 + 4 * k] for k in range(n) if 7 + 4 * k < len(v) and v[5 + 4 * k] == 0}


def _check_geographic(path, keys: dict[int, int]) -> None:
    model = keys.get(_GT_MODEL_TYPE)
    if model == _MODEL_PROJECTED or (_PROJECTED_TYPE in keys and model != _MODEL_GEOGRAPHIC):
        code = keys.get(_PROJECTED_TYPE)
        crs = f" (EPSG:{code})" if code and code != 32767 else ""
        raise InputError(f"{path}: projected CRS{crs}; lamina reads lon / lat rasters only: reproject it to "
                         "EPSG:4326 first (e.g. gdalwarp -t_srs EPSG:4326)")  # fmt: skip
    if model == _MODEL_GEOCENTRIC:
        raise InputError(f"{path}: geocentric CRS; lamina reads lon / lat rasters only (reproject to EPSG:4326)")


def _check_degrees(path, grid: Grid) -> None:
    """Refuse a grid whose extent is not in degrees (e.g. metres of a projected CRS without GeoKeys)."""
    lon_right = grid.lon_left + grid.width * grid.dlon
    lats = (grid.lat_top, grid.lat_top - grid.height * grid.dlat)
    slack_lat, slack_lon = abs(grid.dlat), grid.dlon  # PixelIsPoint grids reach half a pixel beyond the poles
    if grid.lon_left < -360.0 - slack_lon or lon_right > 360.0 + slack_lon or max(map(abs, lats)) > 90 + slack_lat:
        raise InputError(f"{path}: extent lon [{grid.lon_left:g}, {lon_right:g}], lat [{min(lats):g}, {max(lats):g}] "
                         "is not in degrees; is the CRS projected? (reproject to EPSG:4326)")  # fmt: skip


def _gdal_nodata(tags, path):
    if "GDAL_NODATA" not in tags:
        return None
    text = str(tags["GDAL_NODATA"].value).strip().strip("\x00").strip()
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{path}: GDAL_NODATA tag {text!r} is not a number; fix the tag or pass nodata=") from None


def _gdal_metadata(tags, path) -> dict:
    """Scale and offset from the GDAL_METADATA XML tag, if present (finite numbers, else InputError)."""
    import re

    if "GDAL_METADATA" not in tags:
        return {}
    xml = str(tags["GDAL_METADATA"].value)
    out = {}
    for key in ("scale", "offset"):
        m = re.search(rf'<Item name="{key}"[^>]*role="{key}"[^>]*>([^<]*)</Item>', xml, flags=re.IGNORECASE)
        if m is None:
            m = re.search(rf'<Item name="{key}"[^>]*>([^<]*)</Item>', xml, flags=re.IGNORECASE)
        if m is not None:
            try:
                value = float(m.group(1))
            except ValueError:
                value = float("nan")
            if not np.isfinite(value):
                raise InputError(f"{path}: GDAL metadata {key} {m.group(1)!r} is not a finite number; fix the tag "
                                 f"or pass {key}=")  # fmt: skip
            out[key] = value
    return out


class MonthlyTiffs(Reader):
    """Twelve single-band readers on one grid, seen as one 12-layer reader."""

    def __init__(self, readers: Sequence[Reader]):
        super().__init__()
        grids = {r.grid for r in readers}
        if len(grids) != 1:
            raise InputError(f"monthly files do not share one grid: {sorted(map(str, grids))}")
        self.readers = list(readers)
        self.grid = readers[0].grid
        self.n_layers = len(readers)

    def read_raw(self, layer, r0, r1, c0, c1):
        return self.readers[layer].read_raw(0, r0, r1, c0, c1)

    def read(self, layer, r0, r1, c0, c1):
        return self.readers[layer].read(0, r0, r1, c0, c1)

    def read_points(self, layer, rows, cols, *, block: int = 256):
        return self.readers[layer].read_points(0, rows, cols, block=block)
