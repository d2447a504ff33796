"""Where fields come from: the real global fields that installed packages ship, and CHELSA GeoTIFFs.

One module per source family, and a registry:

- :mod:`~lamina.geo.data.sources.pvlib`: Linke turbidity and altitude shipped with pvlib.
- :mod:`~lamina.geo.data.sources.ferret`: NOAA ETOPO5, COADS and FNOC winds from Debian's ferret-datasets.
- :mod:`~lamina.geo.data.sources.globe`: land fraction from the GLOBE land mask (global-land-mask).
- :mod:`~lamina.geo.data.sources.chelsa`: CHELSA v2.1 climatologies from a folder of GeoTIFFs.
- :mod:`~lamina.geo.data.sources.registry`: the table of offline variables (:data:`SOURCES`), the default stack
  and :func:`parse_stack_spec`.
"""

from lamina.geo.data.sources.chelsa import CHELSA_DECODING, CHELSA_LICENCE, chelsa_stack
from lamina.geo.data.sources.ferret import coads, etopo5, navy_winds
from lamina.geo.data.sources.globe import globe_land_fraction
from lamina.geo.data.sources.pvlib import linke_turbidity, pvlib_altitude
from lamina.geo.data.sources.registry import (
    BUNDLED_VARIABLES,
    DEFAULT_VARIABLES,
    SOURCES,
    STACK_SPEC_HELP,
    load_default_stack,
    load_stack,
    parse_stack_spec,
    sources_table,
    training_stack_spec,
)

__all__ = [
    "BUNDLED_VARIABLES",
    "CHELSA_DECODING",
    "CHELSA_LICENCE",
    "DEFAULT_VARIABLES",
    "SOURCES",
    "STACK_SPEC_HELP",
    "chelsa_stack",
    "coads",
    "etopo5",
    "globe_land_fraction",
    "linke_turbidity",
    "load_default_stack",
    "load_stack",
    "navy_winds",
    "parse_stack_spec",
    "pvlib_altitude",
    "sources_table",
    "training_stack_spec",
]
