"""Input encodings of location and time: direct lon/lat scaling, cyclic month, real spherical harmonics.

All functions take degrees (``lon`` east in [-180, 180], ``lat`` north in [-90, 90]) and months 1..12.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def direct_lon_lat(lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Scale degrees linearly to [-1, 1]: ``(lon / 180, lat / 90)``.

    Shapes:
        ``lon, lat: (N,)`` degrees -> ``(N, 2)``, columns (lon, lat) in that order (Climplicit's "direct").
    """
    return torch.stack([lon / 180.0, lat / 90.0], dim=-1)


def cyclic_month(month: torch.Tensor) -> torch.Tensor:
    """Encode months 1..12 on the unit circle: ``(sin(2 pi m / 12), cos(2 pi m / 12))``.

    Shapes:
        ``month: (N,)`` -> ``(N, 2)``. December (12) and January (1) are neighbours.
    """
    angle = month.to(torch.get_default_dtype() if not month.is_floating_point() else month.dtype) * (
        2.0 * math.pi / 12.0
    )
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)


def _sh_torch(lon: torch.Tensor, lat: torch.Tensor, degree: int) -> torch.Tensor:
    """Real orthonormal spherical harmonics up to ``degree`` by the stable normalised Legendre recurrences.

    The associated Legendre functions are computed already normalised (no factorials, no large intermediate
    values): P(m, m) by the sectoral recurrence in sin(colatitude), P(m+1, m) and then P(l, m) by the three-term
    recurrence in l. Near the poles the sectoral terms underflow gracefully to 0 (their true values are tiny),
    so nothing overflows or turns NaN at any degree.
    """
    dtype = torch.float64
    lon = lon.to(dtype)
    lat = lat.to(dtype)
    x = torch.sin(torch.deg2rad(lat))  # cos(colatitude)
    s = torch.cos(torch.deg2rad(lat)).clamp_min(0.0)  # sin(colatitude) >= 0
    phi = torch.deg2rad(lon)
    L = degree
    # p[(l, m)] for m >= 0, orthonormal on the sphere (includes 1/sqrt(4 pi)), no Condon-Shortley phase.
    out = torch.empty(lon.shape + ((L + 1) ** 2,), dtype=dtype, device=lon.device)
    pmm = torch.full_like(x, 1.0 / math.sqrt(4.0 * math.pi))
    sqrt2 = math.sqrt(2.0)
    for m in range(L + 1):
        if m > 0:
            pmm = math.sqrt((2 * m + 1) / (2 * m)) * s * pmm
        if m == 0:
            cos_m, sin_m = None, None
        else:
            cos_m, sin_m = torch.cos(m * phi), torch.sin(m * phi)
        p_lm2, p_lm1 = None, pmm
        for ell in range(m, L + 1):
            if ell == m:
                p = pmm
            elif ell == m + 1:
                p = math.sqrt(2 * m + 3) * x * pmm
            else:
                a = math.sqrt((4 * ell * ell - 1) / (ell * ell - m * m))
                b = math.sqrt(((ell - 1) ** 2 - m * m) / (4 * (ell - 1) ** 2 - 1))
                p = a * (x * p_lm1 - b * p_lm2)
            if ell > m:
                p_lm2, p_lm1 = p_lm1, p
            base = ell * ell + ell  # index of (ell, 0)
            if m == 0:
                out[..., base] = p
            else:
                out[..., base + m] = sqrt2 * p * cos_m
                out[..., base - m] = sqrt2 * p * sin_m
    return out


def spherical_harmonics(lon, lat, degree: int) -> np.ndarray:
    """Real orthonormal spherical harmonics of all degrees 0..``degree`` at the given points.

    Args:
        lon: (N,) degrees east.
        lat: (N,) degrees north in [-90, 90].
        degree: highest degree L (>= 0); accurate and finite to at least L = 100.

    Returns:
        (N, (L + 1)^2) float64; column ``l * l + l + m`` holds ``Y_l^m`` for ``m = -l..l`` (``m < 0``: the
        ``sin(|m| lon)`` harmonic, ``m > 0``: the ``cos(m lon)`` harmonic), each orthonormal on the unit sphere.
    """
    from lamina._validation import check_lon_lat

    if degree < 0:
        from lamina.errors import InputError

        raise InputError(f"degree: expected an integer >= 0, got {degree}")
    lon_a, lat_a = check_lon_lat(lon, lat, wrap=True)
    return _sh_torch(torch.from_numpy(lon_a), torch.from_numpy(lat_a), int(degree)).numpy()


class SphericalHarmonics(nn.Module):
    """Module form of :func:`spherical_harmonics`: ``(N, 2) [lon, lat] degrees -> (N, (L+1)^2)`` float32."""

    def __init__(self, degree: int = 10):
        super().__init__()
        self.degree = int(degree)

    @property
    def dim_out(self) -> int:
        return (self.degree + 1) ** 2

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        return _sh_torch(lonlat[..., 0], lonlat[..., 1], self.degree).to(lonlat.dtype)


class DirectLonLat(nn.Module):
    """Module form of :func:`direct_lon_lat`: ``(N, 2) [lon, lat] degrees -> (N, 2)`` in [-1, 1]."""

    dim_out = 2

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        return direct_lon_lat(lonlat[..., 0], lonlat[..., 1])


MAX_GRID_LEVELS = 8


def check_grid_resolutions(value, name: str = "grid_resolutions") -> tuple[float, ...]:
    """Grid node spacings in degrees, checked: 1 to 8 distinct values, each in [0.05, 90] and dividing 180 (so the
    rows reach both poles and the columns close at the antimeridian). Raises InputError naming ``name``."""
    from lamina._validation import check_real
    from lamina.errors import InputError

    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InputError(f"{name}: expected a list of node spacings in degrees, got {value!r}")
    if len(value) > MAX_GRID_LEVELS:
        raise InputError(f"{name}: at most {MAX_GRID_LEVELS} levels, got {len(value)}")
    out = []
    for r in value:
        r = check_real(name, r, low=0.05, high=90.0)
        if abs(180.0 / r - round(180.0 / r)) > 1e-6:
            raise InputError(f"{name}: {r:g} deg does not divide 180 (e.g. 2, 1, 0.5, 0.25)")
        out.append(float(r))
    if len(set(out)) != len(out):
        raise InputError(f"{name}: expected distinct spacings, got {out}")
    return tuple(out)


def grid_shape(resolution: float) -> tuple[int, int]:
    """(rows, columns) of nodes of a :class:`LatLonGrid` level: latitudes -90..90 and longitudes -180..180 - r."""
    return round(180.0 / resolution) + 1, round(360.0 / resolution)


class LatLonGrid(nn.Module):
    """Learned features on latitude-longitude grids of several resolutions, bilinearly interpolated.

    Level ``k`` holds ``features`` learned values at nodes every ``resolutions[k]`` degrees: longitudes
    ``-180, -180 + r, ..., 180 - r`` (the last cell wraps to -180, so the features are continuous across the
    antimeridian) and latitudes ``-90, -90 + r, ..., 90``. A point's features are the bilinear interpolation of
    the four nodes of its cell, at every level, concatenated. The tables start at zero, so an untrained grid (or
    a node no training sample ever reached) adds nothing; a gradient reaches only the nodes of the cells its
    samples fall in. The multi-resolution input of instant neural graphics primitives (Mueller et al., 2022),
    dense rather than hashed, on the globe.

    Args:
        resolutions: node spacing of each level in degrees, 1 to 8 levels (:func:`check_grid_resolutions`: each in
            [0.05, 90] and dividing 180, e.g. 2, 1, 0.5, 0.25).
        features: learned values per node and level (1 to 64).

    Shapes:
        ``forward(lon: (N,), lat: (N,))`` degrees -> ``(N, len(resolutions) * features)`` in the tables' dtype.
        Near a pole the nodes of the first and last latitude rows differ by longitude (they are not tied), so
        there the features may change with longitude where the place does not.
    """

    def __init__(self, resolutions, features: int = 2):
        from lamina._validation import check_positive_int
        from lamina.errors import InputError

        super().__init__()
        self.resolutions = check_grid_resolutions(resolutions, "resolutions")
        if not self.resolutions:
            raise InputError("resolutions: expected at least one node spacing")
        self.features = check_positive_int("features", features, maximum=64)
        self.shapes = [grid_shape(r) for r in self.resolutions]  # (rows, cols)
        self.tables = nn.ParameterList(
            [nn.Parameter(torch.zeros(rows * cols, self.features)) for rows, cols in self.shapes]
        )

    @property
    def dim_out(self) -> int:
        return len(self.resolutions) * self.features

    def forward(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        return torch.cat([grid_lookup(table, r, lon, lat)
                          for r, table in zip(self.resolutions, self.tables, strict=True)], dim=1)


def grid_lookup(table: torch.Tensor, resolution: float, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of node values on a latitude-longitude grid (:func:`grid_shape` nodes, row-major from
    (-90, -180), columns wrapping at the antimeridian).

    Shapes:
        ``table: (rows * cols, F)``, ``lon, lat: (N,)`` degrees -> ``(N, F)`` in ``table``'s dtype (float32 for a
        float16 table: only the gathered nodes are cast). Positions are computed in float64 (a 0.05-degree cell
        is resolved anywhere on the globe).
    """
    dtype = torch.float32 if table.dtype == torch.float16 else table.dtype
    rows, cols = grid_shape(resolution)
    lon = lon.to(torch.float64)
    lat = lat.to(torch.float64)
    u = (lon + 180.0) / resolution
    v = ((lat + 90.0) / resolution).clamp(0.0, rows - 1.0)
    j0 = torch.floor(u)
    i0 = torch.floor(v).clamp(max=rows - 2.0)
    fu, fv = (u - j0).to(dtype), (v - i0).to(dtype)
    j0 = j0.long() % cols
    j1 = (j0 + 1) % cols
    i0 = i0.long()
    base0, base1 = i0 * cols, (i0 + 1) * cols
    idx = torch.stack([base0 + j0, base0 + j1, base1 + j0, base1 + j1], dim=1)  # (N, 4)
    w = torch.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], dim=1)  # (N, 4)
    return torch.einsum("nk,nkf->nf", w, table[idx].to(dtype))


class FixedLatLonGrid(nn.Module):
    """Fixed (not learned) values on one latitude-longitude grid, bilinearly interpolated: data the network reads
    as input, such as terrain (:mod:`lamina.geo.data.terrain`).

    The values live in a persistent buffer (saved with the state dict, never trained), stored as float16 to keep
    checkpoints small and interpolated in float32. A new instance holds zeros until :meth:`fill` (or
    ``load_state_dict``) gives it its values.

    Args:
        resolution: node spacing in degrees (:func:`check_grid_resolutions`).
        features: values per node (1 to 64).

    Shapes:
        ``forward(lon: (N,), lat: (N,))`` degrees -> ``(N, features)`` float32.
    """

    def __init__(self, resolution: float, features: int):
        from lamina._validation import check_positive_int

        super().__init__()
        (self.resolution,) = check_grid_resolutions([resolution], "resolution")
        self.features = check_positive_int("features", features, maximum=64)
        rows, cols = grid_shape(self.resolution)
        self.register_buffer("table", torch.zeros(rows * cols, self.features, dtype=torch.float16))

    def fill(self, values) -> None:
        """Set the node values from a ``(rows * cols, features)`` array (finite; stored as float16)."""
        from lamina.errors import InputError

        v = torch.as_tensor(np.asarray(values, dtype=np.float32))
        problem = self._problem(v)
        if problem:
            raise InputError(f"values: {problem}")
        with torch.no_grad():
            self.table.copy_(v.to(self.table.dtype))

    def _problem(self, v: torch.Tensor) -> str:
        """Why ``v`` cannot be this grid's table ('' if it can)."""
        if tuple(v.shape) != tuple(self.table.shape):
            return f"expected shape {tuple(self.table.shape)}, got {tuple(v.shape)}"
        if not v.is_floating_point():
            return f"expected floating-point values, got {v.dtype}"
        if not bool(torch.isfinite(v).all()) or float(v.abs().max()) > 6e4:
            return "expected finite values within float16's range"
        return ""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        v = state_dict.get(prefix + "table")
        problem = "" if v is None else self._problem(v)
        if not problem and v is not None and not bool(v.any()):
            problem = "all zeros (a table that was never filled)"
        if problem:
            error_msgs.append(f"{prefix}table: {problem}")
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _apply(self, fn, recurse=True):
        """Device moves apply; dtype casts (``module.to(torch.bfloat16)``) leave the float16 table as it is, so it
        is never rounded to a coarser type and is always interpolated in float32."""
        table = self.table
        super()._apply(fn, recurse)
        self.table = table.to(device=self.table.device)
        return self

    def forward(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        return grid_lookup(self.table, self.resolution, lon, lat)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution:g}, features={self.features}"
