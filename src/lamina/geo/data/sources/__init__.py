"""The real global fields that installed packages ship, and user-supplied CHELSA GeoTIFFs.

See :mod:`lamina.geo.data.sources.registry` for the table of offline sources.
"""

from lamina.geo.data.sources.registry import (
    CHELSA_DECODING,
    CHELSA_LICENCE,
    DEFAULT_VARIABLES,
    SOURCES,
    coads,
    etopo5,
    globe_land_fraction,
    linke_turbidity,
    load_default_stack,
    load_stack,
    navy_winds,
    pvlib_altitude,
)

__all__ = [
    "CHELSA_DECODING",
    "CHELSA_LICENCE",
    "DEFAULT_VARIABLES",
    "SOURCES",
    "coads",
    "etopo5",
    "globe_land_fraction",
    "linke_turbidity",
    "load_default_stack",
    "load_stack",
    "navy_winds",
    "pvlib_altitude",
]
