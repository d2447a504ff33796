"""CHELSA v2.1 climatologies from a folder of GeoTIFFs the user downloaded (no package ships them).

File names follow CHELSA's scheme ``CHELSA_<var>_<MM>_<period>_V.2.1.tif`` (monthly) or
``CHELSA_<var>_<period>_V.2.1.tif`` (static, e.g. bioclim). CHELSA stores scaled integers; they are decoded with
the file's own GDAL scale / offset metadata when present, else with :data:`CHELSA_DECODING`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from lamina.errors import InputError
from lamina.geo.data.grid import Variable
from lamina.geo.data.rasters import Field, RasterStack
from lamina.geo.data.readers import MonthlyTiffs, Reader, TiffReader

CHELSA_LICENCE = "CHELSA v2.1 (Karger et al. 2017, 2021), CC BY 4.0; https://chelsa-climate.org"
# CHELSA v2.1 stores scaled integers; (scale, offset, units, long name), physical = raw * scale + offset.
# From the CHELSA v2.1 technical specification; a file's own GDAL scale/offset metadata takes precedence.
CHELSA_DECODING = {
    "tas": (0.1, -273.15, "degC", "mean daily air temperature"),
    "tasmax": (0.1, -273.15, "degC", "mean daily maximum air temperature"),
    "tasmin": (0.1, -273.15, "degC", "mean daily minimum air temperature"),
    "pr": (0.01, 0.0, "kg m-2 month-1", "precipitation amount"),
    "hurs": (0.01, 0.0, "%", "near-surface relative humidity"),
    "clt": (0.01, 0.0, "%", "total cloud cover"),
    "sfcWind": (0.001, 0.0, "m s-1", "near-surface wind speed"),
    "vpd": (0.1, 0.0, "Pa", "vapour pressure deficit"),
    "rsds": (0.001, 0.0, "MJ m-2 d-1", "surface downwelling shortwave radiation"),
    "pet": (0.01, 0.0, "kg m-2 month-1", "potential evapotranspiration (Penman-Monteith)"),
    "cmi": (0.01, 0.0, "kg m-2 month-1", "climate moisture index"),
}

_CHELSA_MONTHLY = re.compile(r"^CHELSA_(?P<var>[A-Za-z0-9]+)_(?P<month>\d{2})_(?P<period>\d{4}-\d{4})_V\.?[\d.]+\.tif$")
_CHELSA_STATIC = re.compile(r"^CHELSA_(?P<var>[A-Za-z0-9]+)_(?P<period>\d{4}-\d{4})_V\.?[\d.]+\.tif$")


def _chelsa_reader(path: Path, scale: float, offset: float) -> TiffReader:
    probe = TiffReader(path)
    if probe.scale != 1.0 or probe.offset != 0.0:  # the file says how to decode itself
        return probe
    return TiffReader(path, scale=scale, offset=offset)


def chelsa_stack(folder: str | os.PathLike, variables: Sequence[str] | None = None) -> RasterStack:
    """A stack from a folder of CHELSA v2.1 climatology GeoTIFFs, decoded to physical units.

    Args:
        folder: directory holding ``CHELSA_<var>_<MM>_<period>_V.2.1.tif`` (12 per monthly variable) and / or
            ``CHELSA_<var>_<period>_V.2.1.tif`` (static) files; other files are ignored.
        variables: the variables to use, in order (None: every variable found, sorted by name).

    Raises:
        InputError: not a directory, no CHELSA file in it, a requested variable missing, or months missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder: {folder} is not a directory")
    monthly: dict[str, dict[int, Path]] = {}
    static: dict[str, Path] = {}
    for path in sorted(folder.glob("*.tif")):
        m = _CHELSA_MONTHLY.match(path.name)
        if m:
            monthly.setdefault(m["var"], {})[int(m["month"])] = path
            continue
        m = _CHELSA_STATIC.match(path.name)
        if m:
            static[m["var"]] = path
    found = sorted(set(monthly) | set(static))
    if not found:
        raise InputError(f"folder: no CHELSA GeoTIFFs (CHELSA_<var>_<MM>_<period>_V.2.1.tif) in {folder}")
    wanted = list(variables) if variables else found
    fields = []
    for var in wanted:
        if var not in monthly and var not in static:
            raise InputError(f"variables: {var!r} not found in {folder}; found {found}")
        scale, offset, unit, long_name = CHELSA_DECODING.get(var, (1.0, 0.0, "", var))
        if var in monthly:
            months = sorted(monthly[var])
            if months != list(range(1, 13)):
                raise InputError(f"{var}: expected months 01..12 in {folder}, found {months}")
            readers = [_chelsa_reader(monthly[var][mo], scale, offset) for mo in months]
            reader: Reader = MonthlyTiffs(readers)
            src = str(monthly[var][1]).replace("_01_", "_MM_")
        else:
            reader = _chelsa_reader(static[var], scale, offset)
            src = str(static[var])
        var_desc = Variable(var, unit, long_name, source=f"CHELSA v2.1: {src}", licence=CHELSA_LICENCE,
                            monthly=var in monthly)
        fields.append(Field(var_desc, reader))
    return RasterStack(fields, name="chelsa", description=f"CHELSA v2.1 climatologies from {folder}")
