"""GeoCLIP's released location encoder, as a torch module of ours (a peer for the probe evaluation).

GeoCLIP (Vivanco Cepeda et al., "GeoCLIP: Clip-Inspired Alignment between Locations and Images for Effective
Worldwide Geo-localization", NeurIPS 2023) maps (lat, lon) to a 512-d vector: the Equal Earth projection
(Savric et al. 2018) scaled to about [-1, 1], then three "capsules", one per random-Fourier-feature scale
sigma in {2^0, 2^4, 2^8}: 256 Gaussian frequencies -> (cos, sin) -> 3 ReLU layers of 1024 -> a 512-d head; the
three heads are summed.

The weights ship inside the ``geoclip`` wheel on PyPI (``geoclip/model/weights/location_encoder_weights.pth``).
Importing the ``geoclip`` package itself pulls torchvision and transformers, so lamina never imports it: it only
locates the weight file and loads it into :class:`GeoCLIPLocationEncoder` with ``strict=True``. Install the wheel
without its dependencies, beside lamina's torch::

    pip install --no-deps geoclip==1.3.0

(``pip install geoclip`` with dependencies would bring torchvision, which pins another torch build.)
"""

from __future__ import annotations

import math
import os
from importlib.machinery import PathFinder
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lamina._validation import check_lon_lat
from lamina.errors import InputError

WEIGHTS_RELPATH = Path("model") / "weights" / "location_encoder_weights.pth"
SIGMAS = (2.0**0, 2.0**4, 2.0**8)
INSTALL_HINT = "pip install --no-deps geoclip==1.3.0"

# Equal Earth projection polynomial (Savric, Patterson and Jenny 2018) and GeoCLIP's scaling of its output.
_EE_A1, _EE_A2, _EE_A3, _EE_A4 = 1.340264, -0.081106, 0.000893, 0.003796
_GEOCLIP_SCALE = 66.50336 / 180.0


def equal_earth(*, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Equal Earth projection of degrees on the unit sphere, scaled as GeoCLIP does (about [-1, 1] in x).

    Shapes:
        ``lon, lat: (N,)`` degrees -> ``(N, 2)`` = (x, y).
    """
    sqrt3 = math.sqrt(3.0)
    theta = torch.asin(0.5 * sqrt3 * torch.sin(torch.deg2rad(lat)))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    y = theta * (_EE_A1 + _EE_A2 * t2 + t6 * (_EE_A3 + _EE_A4 * t2))
    dy_dtheta = _EE_A1 + 3 * _EE_A2 * t2 + t6 * (7 * _EE_A3 + 9 * _EE_A4 * t2)
    x = 2.0 * sqrt3 * torch.deg2rad(lon) * torch.cos(theta) / (3.0 * dy_dtheta)
    return torch.stack([x, y], dim=-1) * _GEOCLIP_SCALE


class FourierFeatures(nn.Module):
    """Random Fourier features ``(cos 2 pi B v, sin 2 pi B v)`` with a fixed (loaded) frequency matrix ``b``.

    Shapes:
        ``v: (N, dim_in) -> (N, 2 * n_frequencies)``.
    """

    def __init__(self, dim_in: int = 2, n_frequencies: int = 256, sigma: float = 1.0):
        super().__init__()
        self.b = nn.Parameter(torch.randn(n_frequencies, dim_in) * sigma, requires_grad=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        # Phases reach ~1e4 rad at sigma = 256: computed in float64 so that float32 rounding does not shift them.
        phase = ((2.0 * math.pi) * v.double()) @ self.b.double().t()  # (N, F)
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1).to(self.b.dtype)  # (N, 2F)


class Capsule(nn.Module):
    """One scale: Fourier features -> 3 x (Linear 1024, ReLU) -> Linear 512.

    Parameter names (``capsule.0.b``, ``capsule.1.weight``, ..., ``head.0.weight``) follow the released file.
    """

    def __init__(self, sigma: float, hidden: int = 1024, dim_out: int = 512, n_frequencies: int = 256):
        super().__init__()
        self.capsule = nn.Sequential(
            FourierFeatures(2, n_frequencies, sigma),
            nn.Linear(2 * n_frequencies, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(hidden, dim_out))

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.head(self.capsule(xy))


class GeoCLIPLocationEncoder(nn.Module):
    """GeoCLIP's location encoder: ``(N, 2)`` (lat, lon) degrees -> ``(N, 512)``, the sum over three capsules."""

    def __init__(self, sigmas=SIGMAS):
        super().__init__()
        for i, s in enumerate(sigmas):
            self.add_module(f"LocEnc{i}", Capsule(float(s)))
        self.n_capsules = len(sigmas)

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        ll = latlon.double()  # the projection feeds phases of ~1e4 rad: keep it in float64
        xy = equal_earth(lon=ll[:, 1], lat=ll[:, 0])  # (N, 2) float64
        out = self.LocEnc0(xy)
        for i in range(1, self.n_capsules):
            out = out + getattr(self, f"LocEnc{i}")(xy)
        return out  # (N, 512)


def geoclip_weights_path() -> Path:
    """Path of the location-encoder weights inside the installed ``geoclip`` wheel (the package is not imported).

    Raises:
        InputError: geoclip is not installed, or its wheel has no weight file.
    """
    spec = PathFinder.find_spec("geoclip")  # looks on sys.path only: neither imports nor trusts sys.modules
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"geoclip: the optional GeoCLIP baseline needs the geoclip wheel ({INSTALL_HINT})")
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_RELPATH
    if not path.is_file():
        raise InputError(f"geoclip: {path} is missing; reinstall the wheel ({INSTALL_HINT})")
    return path


def geoclip_available() -> bool:
    """Whether the GeoCLIP weights can be found (without importing geoclip)."""
    try:
        geoclip_weights_path()
    except InputError:
        return False
    return True


class GeoCLIPEncoder:
    """GeoCLIP's pretrained location encoder behind lamina's ``embed(lon=, lat=)`` interface.

    Args:
        weights: path of ``location_encoder_weights.pth``; None finds it in the installed geoclip wheel.
        chunk: points per forward pass.
    """

    embedding_dim = 512

    def __init__(self, weights: str | os.PathLike | None = None, *, chunk: int = 8192):
        path = Path(weights) if weights is not None else geoclip_weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.module = GeoCLIPLocationEncoder()
        self.module.load_state_dict(state, strict=True)
        self.module.eval()
        self.weights_path = path
        self.chunk = int(chunk)

    def embed(self, *, lon, lat, month=None) -> np.ndarray:
        """GeoCLIP embeddings (month is ignored: GeoCLIP has no time input).

        Args:
            lon: (N,) degrees east in [-180, 180]. lat: (N,) degrees north in [-90, 90].

        Returns:
            (N, 512) float32.
        """
        lon, lat = check_lon_lat(lon, lat)
        latlon = torch.from_numpy(np.column_stack([lat, lon]).astype(np.float32))
        out = np.empty((len(lon), self.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(lon), self.chunk):
                out[s : s + self.chunk] = self.module(latlon[s : s + self.chunk]).numpy()
        return out
