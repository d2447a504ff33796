"""The climate encoder as a torch module: ``(B, 2)`` lon/lat in degrees -> ``(B, D)`` embeddings, differentiable.

:class:`LocationEncoder` is what a PyTorch pipeline puts in front of its own head (a classifier, a regression, a
contrastive image tower): it runs on the input's device and dtype, passes gradients to its weights (fine-tuning)
and to its input coordinates, and holds exactly the weights of the :class:`~lamina.geo.encoder.ClimateEncoder` it
wraps (shared, not copied). ``lamina.geo.load()`` keeps returning the NumPy-facing encoder.

    import torch, lamina.geo
    loc = lamina.geo.LocationEncoder.from_pretrained()             # bundled default, offline
    x = torch.tensor([[8.55, 47.37], [-70.0, -15.0]])              # (B, 2): lon, lat in degrees
    loc(x, month=torch.tensor([6, 6]))                             # (2, 256)
    loc(x)                                                         # (2, 1024): months 3, 6, 9, 12 concatenated
    model = torch.nn.Sequential(loc, torch.nn.Linear(loc.dim_out, 10))   # a classifier on top
"""

from __future__ import annotations

import os

import torch
from torch import nn

from lamina.errors import InputError
from lamina.geo.encoder import EMBED_MONTHS, ClimateEncoder, load


class LocationEncoder(nn.Module):
    """``forward(lonlat, month=None)``: climate embeddings of locations, as a differentiable torch module.

    Args:
        encoder: the :class:`~lamina.geo.encoder.ClimateEncoder` whose network this module wraps (its weights are
            shared: training this module trains that encoder).
        month: the default month when ``forward`` gets none: ``None`` (months 3, 6, 9, 12 concatenated, as the
            paper's embedding) or 1..12.

    Input contract (also in ``encoder.metadata["input_contract"]``): ``lonlat`` (B, 2) floating point, column 0
    longitude in degrees east in [-180, 180], column 1 latitude in degrees north in [-90, 90]; ``month`` (B,)
    integers 1..12, or None. Output (B, dim_out) on the input's device and in its dtype.
    """

    def __init__(self, encoder: ClimateEncoder, *, month: int | None = None):
        super().__init__()
        if not isinstance(encoder, ClimateEncoder):
            raise InputError(f"encoder: expected a ClimateEncoder (lamina.geo.load()), got {type(encoder).__name__}")
        if month is not None and (isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12):
            raise InputError(f"month: expected None or an integer 1..12, got {month!r}")
        self.net = encoder.module
        self.month = month
        self.metadata = dict(encoder.metadata)

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike | None = None, *, month: int | None = None
                        ) -> LocationEncoder:
        """The module of a checkpoint: ``None`` (the bundled default), ``"bundled:NAME"`` or a folder."""
        return cls(load(checkpoint), month=month)

    @property
    def embedding_dim(self) -> int:
        """Size of one month's embedding."""
        return self.net.config.dim_embedding

    @property
    def dim_out(self) -> int:
        """Size of the output with the default month: ``embedding_dim``, or 4x that without a month."""
        return self.embedding_dim * (len(EMBED_MONTHS) if self.month is None else 1)

    def _check(self, lonlat: torch.Tensor, month) -> torch.Tensor | None:
        if not isinstance(lonlat, torch.Tensor) or lonlat.ndim != 2 or lonlat.shape[1] != 2:
            shape = tuple(lonlat.shape) if isinstance(lonlat, torch.Tensor) else type(lonlat).__name__
            raise InputError(f"lonlat: expected a (B, 2) tensor of (lon, lat) degrees, got {shape}")
        if not lonlat.is_floating_point():
            raise InputError(f"lonlat: expected a floating-point tensor, got {lonlat.dtype}")
        with torch.no_grad():
            lon, lat = lonlat[:, 0], lonlat[:, 1]
            if not bool(torch.isfinite(lonlat).all()):
                raise InputError("lonlat: holds NaN or infinite values")
            if bool((lon.abs() > 180).any()) or bool((lat.abs() > 90).any()):
                raise InputError("lonlat: longitude must lie in [-180, 180] and latitude in [-90, 90] degrees "
                                 "(column 0 is longitude, column 1 latitude)")
        month = self.month if month is None else month
        if month is None:
            return None
        m = torch.as_tensor(month, device=lonlat.device)
        if m.ndim == 0:
            m = m.expand(lonlat.shape[0])
        if m.shape != (lonlat.shape[0],) or m.is_floating_point() or m.dtype == torch.bool:
            raise InputError(f"month: expected integers 1..12 of shape ({lonlat.shape[0]},), got "
                             f"{tuple(m.shape)} {m.dtype}")
        if bool(((m < 1) | (m > 12)).any()):
            raise InputError("month: expected values in 1..12")
        return m

    def _embed(self, lon: torch.Tensor, lat: torch.Tensor, month: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        x = self.net.encode_inputs(lon.double(), lat.double(), month)  # (B, dim_encoded)
        first = next(self.net.siren.parameters())
        x = self.net.siren_inputs(x.to(device=first.device))  # (B, dim_in): the grid looked up in float32
        return self.net.siren(x.to(first.dtype)).to(dtype)  # (B, embedding_dim)

    def forward(self, lonlat: torch.Tensor, month: torch.Tensor | int | None = None) -> torch.Tensor:
        """``lonlat`` (B, 2) degrees, ``month`` (B,) 1..12 or None -> (B, D) in ``lonlat``'s dtype and device."""
        m = self._check(lonlat, month)
        lon, lat = lonlat[:, 0], lonlat[:, 1]
        if m is not None:
            return self._embed(lon, lat, m, lonlat.dtype)
        parts = [self._embed(lon, lat, torch.full_like(lon, k, dtype=torch.int64), lonlat.dtype) for k in EMBED_MONTHS]
        return torch.cat(parts, dim=-1)  # (B, 4 * embedding_dim)
