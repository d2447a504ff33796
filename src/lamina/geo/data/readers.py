"""Windowed readers of raster layers: in-memory / memory-mapped arrays, HDF5, NetCDF and GeoTIFF.

Every reader exposes the same small interface, so a stack can mix formats and stay out of memory:

- ``grid``: the :class:`~lamina.geo.data.grid.Grid` of its pixels;
- ``n_layers``: 12 for a monthly climatology, 1 for a static field;
- ``read(layer, r0, r1, c0, c1)``: a window, decoded to physical units, float32, NaN where there is no data;
- ``read_points(layer, rows, cols)``: single pixels (the default groups them into blocks and reads windows).

Decoding is ``raw * scale + offset`` after masking ``nodata`` (and values outside ``valid_range``).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import warnings
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

    rasterio (GDAL) reads the file: the grid comes from its geotransform, ``nodata`` from its no-data value unless
    given, and scale / offset from its band metadata when it carries them (explicit arguments win). Only the
    blocks that intersect a window are read and decoded, so a 30-arc-second CHELSA layer (43200 x 20880 pixels)
    never has to fit in memory. A raster registered as PixelIsPoint (``AREA_OR_POINT=Point``: the tiepoint is a
    pixel's centre) is read on the grid of pixels centred there, as GDAL places it.

    Refused with an :class:`~lamina.errors.InputError` naming the file: more than one band; no geotransform, or a
    rotated one; a projected, geocentric or other non-geographic CRS (reproject to lon / lat first, e.g.
    ``gdalwarp -t_srs EPSG:4326``); coordinates outside the range of degrees; a non-positive or non-finite pixel
    size; and GDAL_NODATA / scale / offset tags that are not (finite) numbers (GDAL would read such a text as 0,
    and the no-data value as data).
    """

    def __init__(self, path: str | os.PathLike, **decode):
        self.path = Path(path)
        with _open_geotiff(self.path) as src:
            if src.count != 1:
                raise InputError(f"{path}: expected a single-band GeoTIFF, got {src.count} bands")
            _check_geographic(path, src.crs)
            self.grid = _tiff_grid(path, src.transform, src.height, src.width)
            _check_degrees(path, self.grid)
            _check_decoding_text(path, nodata="nodata" not in decode,
                                 scale_offset="scale" not in decode or "offset" not in decode)
            decode.setdefault("nodata", src.nodata)
            for key, value in (("scale", src.scales[0]), ("offset", src.offsets[0])):
                if key not in decode and not math.isfinite(value):  # e.g. from a .aux.xml next to the file
                    raise InputError(f"{path}: GDAL metadata {key} {value!r} is not a finite number; pass {key}=")
                decode.setdefault(key, value)
            self.dtype = np.dtype(src.dtypes[0])
        super().__init__(**decode)
        self.n_layers = 1
        self._local = threading.local()

    def _dataset(self):
        """This thread's open dataset (GDAL handles are neither thread-safe nor inherited across a fork)."""
        import rasterio

        if getattr(self._local, "pid", None) != os.getpid():
            self._local.src = rasterio.open(self.path)
            self._local.pid = os.getpid()
        return self._local.src

    def read_raw(self, layer, r0, r1, c0, c1):
        from rasterio.windows import Window

        return self._dataset().read(1, window=Window(c0, r0, c1 - c0, r1 - r0))


@contextlib.contextmanager
def _open_geotiff(path: Path):
    """The file open with rasterio; an unreadable file is an InputError naming it. GDAL places PixelIsPoint
    rasters on their pixel centres here even where ``GTIFF_POINT_GEO_IGNORE`` is set."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with rasterio.Env(GTIFF_POINT_GEO_IGNORE=False), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # refused below, in words
            src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{path}: not a readable GeoTIFF ({exc})") from None
    with src:
        yield src


def _tiff_grid(path, transform, height: int, width: int) -> Grid:
    """The lon / lat grid of a north-up (or south-up) geotransform."""
    if transform.is_identity:
        raise InputError(f"{path}: no GeoTIFF georeferencing (a geotransform from ModelPixelScale / ModelTiepoint "
                         "or ModelTransformation tags)")
    if transform.b != 0 or transform.d != 0:
        raise InputError(f"{path}: rotated or sheared geotransform {tuple(transform)[:6]}; lamina reads north-up "
                         "lon / lat grids (warp it, e.g. gdalwarp -t_srs EPSG:4326)")
    sx, sy = transform.a, -transform.e
    if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy != 0):
        raise InputError(f"{path}: invalid pixel size ({sx}, {sy}); expected finite sizes, x > 0")
    return Grid(transform.c, transform.f, sx, sy, height, width)


def _check_geographic(path, crs) -> None:
    """Refuse a CRS that is not geographic (lon / lat); a file without one is judged by its extent."""
    if crs is None or crs.is_geographic:
        return
    if crs.is_projected:
        code = crs.to_epsg()
        crs_name = f" (EPSG:{code})" if code else ""
        raise InputError(f"{path}: projected CRS{crs_name}; lamina reads lon / lat rasters only: reproject it to "
                         "EPSG:4326 first (e.g. gdalwarp -t_srs EPSG:4326)")  # fmt: skip
    from pyproj import CRS as ProjCRS

    kind = "geocentric" if ProjCRS.from_wkt(crs.to_wkt()).is_geocentric else "non-geographic"
    raise InputError(f"{path}: {kind} CRS; lamina reads lon / lat rasters only (reproject to EPSG:4326)")


def _check_degrees(path, grid: Grid) -> None:
    """Refuse a grid whose extent is not in degrees (e.g. metres of a projected CRS without GeoKeys)."""
    lon_right = grid.lon_left + grid.width * grid.dlon
    lats = (grid.lat_top, grid.lat_top - grid.height * grid.dlat)
    slack_lat, slack_lon = abs(grid.dlat), grid.dlon  # PixelIsPoint grids reach half a pixel beyond the poles
    if grid.lon_left < -360.0 - slack_lon or lon_right > 360.0 + slack_lon or max(map(abs, lats)) > 90 + slack_lat:
        raise InputError(f"{path}: extent lon [{grid.lon_left:g}, {lon_right:g}], lat [{min(lats):g}, {max(lats):g}] "
                         "is not in degrees; is the CRS projected? (reproject to EPSG:4326)")  # fmt: skip


def _check_decoding_text(path, *, nodata: bool, scale_offset: bool) -> None:
    """Refuse a GDAL_NODATA tag, or a scale / offset item of the GDAL_METADATA tag, whose text is not a finite number.

    GDAL converts these texts with C's ``atof``, to which ``"none"`` or ``"abc"`` is 0: a broken tag would
    silently make 0 the no-data value (and the real one data) or the scale. Only their text is read here
    (tifffile reads the two tags; GDAL decodes everything else).
    """
    if not (nodata or scale_offset):
        return
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            nodata_text, meta_text = (None if (tag := tif.pages[0].tags.get(name)) is None else str(tag.value)
                                      for name in ("GDAL_NODATA", "GDAL_METADATA"))
    except tifffile.TiffFileError:  # another format GDAL reads: no TIFF tags to check
        return
    if nodata and nodata_text is not None:
        text = nodata_text.strip().strip("\x00").strip()
        try:
            float(text)
        except ValueError:
            raise InputError(f"{path}: GDAL_NODATA tag {text!r} is not a number; fix the tag or pass nodata=") from None
    if scale_offset and meta_text is not None:
        for key, text in _scale_offset_items(meta_text).items():
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise InputError(f"{path}: GDAL metadata {key} {text!r} is not a finite number; fix the tag "
                                 f"or pass {key}=")  # fmt: skip


def _scale_offset_items(xml: str) -> dict[str, str]:
    """Text of the items of a GDAL_METADATA document that GDAL reads as the scale and the offset (by role)."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(xml.strip().strip("\x00"))
    except ElementTree.ParseError:  # GDAL ignores a document it cannot parse
        return {}
    roles = ("scale", "offset")
    return {item.get("role").lower(): item.text or "" for item in root.iter("Item")
            if (item.get("role") or "").lower() in roles}


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
