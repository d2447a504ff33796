"""Torch building blocks shared by lamina's parts (no I/O): SIREN networks and input encodings."""

from lamina.nn.encodings import (
    DirectLonLat,
    SphericalHarmonics,
    cyclic_month,
    direct_lon_lat,
    spherical_harmonics,
)
from lamina.nn.siren import SIREN, Sine, SineLayer

__all__ = [
    "SIREN",
    "DirectLonLat",
    "Sine",
    "SineLayer",
    "SphericalHarmonics",
    "cyclic_month",
    "direct_lon_lat",
    "spherical_harmonics",
]
