"""Torch building blocks shared by lamina's parts (no I/O): SIREN networks, input encodings and learned grids."""

from lamina.nn.encodings import (
    DirectLonLat,
    FixedLatLonGrid,
    LatLonGrid,
    SphericalHarmonics,
    cyclic_month,
    direct_lon_lat,
    spherical_harmonics,
)
from lamina.nn.siren import SIREN, Sine, SineLayer

__all__ = [
    "SIREN",
    "DirectLonLat",
    "FixedLatLonGrid",
    "LatLonGrid",
    "Sine",
    "SineLayer",
    "SphericalHarmonics",
    "cyclic_month",
    "direct_lon_lat",
    "spherical_harmonics",
]
