"""ClimateEncoder: a residual SIREN that maps (lon, lat, month) to a climate embedding.

The network (Climplicit's "ReSIREN"): inputs ``(lon / 180, lat / 90, sin(2 pi m / 12), cos(2 pi m / 12))`` (or
the 3-D unit vector of the location instead of ``lon / 180, lat / 90``: ``location_encoding="sphere"``),
``num_layers`` sine layers of width ``dim_hidden`` (first layer w0 = 30, H-SIREN ``sinh(2x)``, pre-activation
averaging between hidden layers), a linear layer to the ``dim_embedding``-d embedding, and a linear head that
regresses the z-scored climate variables during pretraining. The head is not part of the embedding.

Reference: Dollinger et al., "Climplicit: Climatic Implicit Embeddings for Global Ecological Tasks", 2025.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lamina._io import load_checkpoint, save_checkpoint
from lamina._process import torch_seed
from lamina._validation import (
    check_bool,
    check_choice,
    check_lon_lat,
    check_memory,
    check_month,
    check_positive_int,
    check_real,
)
from lamina.errors import CheckpointError, InputError
from lamina.geo.columns import EMBED_MONTHS
from lamina.geo.data.grid import Variable
from lamina.geo.data.terrain import TERRAIN_COLUMNS, TERRAIN_RESOLUTION, check_terrain_columns
from lamina.geo.data.transforms import inverse_columns
from lamina.nn import SIREN, FixedLatLonGrid, LatLonGrid, SphericalHarmonics, cyclic_month
from lamina.nn.encodings import check_grid_resolutions, grid_shape

KIND = "geo.ClimateEncoder"


@dataclass
class EncoderConfig:
    """Architecture of a :class:`ClimateEncoder` (the only way hyperparameters reach the network).

    Attributes:
        n_variables: climate variables regressed by the pretraining head.
        dim_hidden: width of the hidden sine layers (paper: 512).
        num_layers: hidden sine layers, the first included (paper: 16).
        dim_embedding: embedding size (paper: 256).
        w0: hidden-layer frequency factor (paper: 1).
        w0_initial: first-layer frequency factor (paper: 30).
        c: SIREN initialisation constant.
        residual: average hidden pre-activations with the previous layer's (ReSIREN).
        hyperbolic_first: H-SIREN first layer ``sin(w0 * sinh(2z))``.
        location_encoding: ``"direct"`` (lon / 180, lat / 90; the paper's, not periodic in longitude),
            ``"sphere"`` (the 3-D unit vector ``(cos lat cos lon, cos lat sin lon, sin lat)``: continuous across
            the antimeridian and at the poles) or ``"spherical_harmonics"``.
        sh_degree: degree of the spherical harmonics when used.
        grid_resolutions: node spacings in degrees of learned multi-resolution latitude-longitude grids whose
            interpolated features join the location input (:class:`~lamina.nn.LatLonGrid`; needs
            ``location_encoding="sphere"``); empty (the default, and every checkpoint before this field): none.
        grid_features: learned values per grid node and level.
        terrain: also read the place's land elevation and land fraction, interpolated from a fixed 0.25-degree
            table stored in the checkpoint (:mod:`lamina.geo.data.terrain`; needs ``location_encoding="sphere"``).
            False (the default, and every checkpoint before this field): location and month only.
        terrain_columns: which terrain values the network reads with ``terrain`` (both by default, in the order
            of :data:`lamina.geo.data.terrain.TERRAIN_COLUMNS`).
        static_variables: head outputs (indices) of static variables (elevation, land fraction, ...): predicted
            from the embedding of the month-free input (month features set to 0), so they cannot vary with the
            month. Empty (checkpoints before this field): every output is read from the month's embedding.
    """

    n_variables: int = 11
    dim_hidden: int = 512
    num_layers: int = 16
    dim_embedding: int = 256
    w0: float = 1.0
    w0_initial: float = 30.0
    c: float = 6.0
    residual: bool = True
    hyperbolic_first: bool = True
    location_encoding: str = "direct"
    sh_degree: int = 10
    grid_resolutions: tuple[float, ...] = ()
    grid_features: int = 2
    terrain: bool = False
    terrain_columns: tuple[str, ...] = TERRAIN_COLUMNS
    static_variables: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("n_variables", "dim_hidden", "num_layers", "dim_embedding"):
            setattr(self, name, check_positive_int(name, getattr(self, name)))
        check_choice("location_encoding", self.location_encoding, LOCATION_ENCODINGS)
        if not isinstance(self.static_variables, list | tuple):
            raise InputError(f"static_variables: expected a list of integer indices, got {self.static_variables!r}")
        self.static_variables = tuple(check_positive_int("static_variables", i, minimum=0,
                                                         maximum=self.n_variables - 1) for i in self.static_variables)
        if len(set(self.static_variables)) != len(self.static_variables):
            raise InputError(f"static_variables: expected distinct indices, got {list(self.static_variables)}")
        for name in ("w0", "w0_initial", "c"):
            check_real(name, getattr(self, name), low=0.0, low_open=True)  # finite, > 0: Infinity gave NaN outputs
        for name in ("residual", "hyperbolic_first"):
            setattr(self, name, check_bool(name, getattr(self, name)))
        self.sh_degree = check_positive_int("sh_degree", self.sh_degree, minimum=0, maximum=100)
        self.grid_features = check_positive_int("grid_features", self.grid_features, maximum=64)
        self.grid_resolutions = check_grid_resolutions(self.grid_resolutions)
        if self.grid_resolutions and self.location_encoding != "sphere":
            raise InputError(f"grid_resolutions: a learned grid needs location_encoding 'sphere', got "
                             f"{self.location_encoding!r}")
        self.terrain = check_bool("terrain", self.terrain)
        self.terrain_columns = check_terrain_columns(self.terrain_columns)
        if self.terrain and self.location_encoding != "sphere":
            raise InputError(f"terrain: terrain inputs need location_encoding 'sphere', got {self.location_encoding!r}")

    @property
    def dim_encoded(self) -> int:
        """Columns of :meth:`ClimateModule.encode_inputs`: the location features and the two month features."""
        return {"direct": 2, "sphere": 3}.get(self.location_encoding, (self.sh_degree + 1) ** 2) + 2

    @property
    def dim_in(self) -> int:
        """Columns the SIREN reads: :attr:`dim_encoded`, the terrain values and the learned grid's features."""
        return self.dim_encoded + self.n_terrain + len(self.grid_resolutions) * self.grid_features

    @property
    def n_terrain(self) -> int:
        """Terrain values the SIREN reads (:attr:`terrain_columns`; 0 without terrain)."""
        return len(self.terrain_columns) if self.terrain else 0

    @property
    def terrain_values(self) -> int:
        """Fixed values in the terrain table (stored as float16; 0 without terrain)."""
        return math.prod(grid_shape(TERRAIN_RESOLUTION)) * self.n_terrain

    @property
    def grid_parameters(self) -> int:
        """Learned values in the grid tables (0 without a grid)."""
        return sum(math.prod(grid_shape(r)) for r in self.grid_resolutions) * self.grid_features

    def to_dict(self) -> dict:
        d = asdict(self)
        d["static_variables"] = list(self.static_variables)
        d["grid_resolutions"] = list(self.grid_resolutions)
        d["terrain_columns"] = list(self.terrain_columns)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        if not isinstance(d, dict):
            raise CheckpointError(f"encoder config: expected a JSON object, got {type(d).__name__}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise CheckpointError(f"encoder config: unknown fields {sorted(unknown)} (written by a newer lamina?)")
        return cls(**d)


LOCATION_ENCODINGS = {
    "direct": "(lon / 180, lat / 90): Climplicit's; jumps from -1 to 1 across the antimeridian",
    "sphere": "(cos lat cos lon, cos lat sin lon, sin lat): continuous on the sphere",
    "spherical_harmonics": "real spherical harmonics up to sh_degree",
}


def lon_lat_of(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3) points on the unit sphere -> (lon, lat) in degrees: the inverse of :func:`unit_vector`.

    Both angles by ``atan2``, accurate to about 1e-5 degrees in float32 also next to the poles (``asin`` of the
    third component loses about 0.01 degree there) and with finite gradients."""
    lon = torch.rad2deg(torch.atan2(v[:, 1], v[:, 0]))
    lat = torch.rad2deg(torch.atan2(v[:, 2], torch.hypot(v[:, 0], v[:, 1])))
    return lon, lat


def unit_vector(lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """(N,) degrees, (N,) degrees -> (N, 3) points on the unit sphere (x towards 0 E, z towards the north pole)."""
    lon_r, lat_r = torch.deg2rad(lon), torch.deg2rad(lat)
    return torch.stack([torch.cos(lat_r) * torch.cos(lon_r), torch.cos(lat_r) * torch.sin(lon_r), torch.sin(lat_r)],
                       dim=-1)


def _mask(n: int, indices) -> torch.Tensor:
    m = torch.zeros(n, dtype=torch.bool)
    m[list(indices)] = True
    return m


class ClimateModule(nn.Module):
    """Torch module: encoded inputs -> (embedding, normalised variables).

    Shapes:
        ``forward(x: (B, dim_encoded)) -> (embedding (B, dim_embedding), prediction (B, n_variables))``.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        h, c = config.dim_hidden, config
        n_params = (c.dim_in + 1) * h + (c.num_layers - 1) * (h + 1) * h + (h + 1) * c.dim_embedding \
            + (c.dim_embedding + 1) * c.n_variables + c.grid_parameters  # a lower estimate, before allocation
        check_memory("config", 4 * n_params + 2 * c.terrain_values,
                     f"a climate encoder of {n_params:.3g} parameters (num_layers {c.num_layers}, "
                     f"dim_hidden {h}, dim_embedding {c.dim_embedding})",
                     hint="use smaller sizes (CLI: --layers, --hidden, --dim, --grid-features, a coarser --grid)")
        self.siren = SIREN(config.dim_in, config.dim_hidden, config.dim_embedding, config.num_layers,
                           w0=config.w0, w0_initial=config.w0_initial, c=config.c, residual=config.residual,
                           hyperbolic_first=config.hyperbolic_first)
        self.head = nn.Linear(config.dim_embedding, config.n_variables)
        self._sh = SphericalHarmonics(config.sh_degree) if config.location_encoding == "spherical_harmonics" else None
        self.grid = LatLonGrid(config.grid_resolutions, config.grid_features) if config.grid_resolutions else None
        self.terrain = FixedLatLonGrid(TERRAIN_RESOLUTION, config.n_terrain) if config.terrain else None
        self.register_buffer("_static", _mask(config.n_variables, config.static_variables), persistent=False)

    def encode_inputs(self, lon: torch.Tensor, lat: torch.Tensor, month: torch.Tensor) -> torch.Tensor:
        """(B,) degrees, degrees, months 1..12 -> (B, dim_encoded) float32 network input (the learned grid's
        features join in :meth:`siren_inputs`)."""
        if self.config.location_encoding == "direct":
            loc = torch.stack([lon / 180.0, lat / 90.0], dim=-1)
        elif self.config.location_encoding == "sphere":
            loc = unit_vector(lon, lat)
        else:
            loc = self._sh(torch.stack([lon, lat], dim=-1))
        return torch.cat([loc, cyclic_month(month)], dim=-1).float()

    @staticmethod
    def month_free(x: torch.Tensor) -> torch.Tensor:
        """The same inputs with the month features (the last two columns) set to 0: the static-variable path."""
        x0 = x.clone()
        x0[:, -2:] = 0.0
        return x0

    def siren_inputs(self, x: torch.Tensor, grid_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encoded inputs ``(B, dim_encoded)`` -> the SIREN's ``(B, dim_in)``: the terrain values and the learned
        grid's features of each location inserted before the two month columns (``x`` itself without either).
        ``grid_keep`` (B,) of 0 / 1 multiplies the learned grid's features (grid dropout during pretraining: 0
        gives the state of a place no sample reached); terrain is known everywhere and always kept."""
        return self._with_grid(x, self._grid_features(x, grid_keep))

    def _grid_features(self, x: torch.Tensor, grid_keep: torch.Tensor | None) -> torch.Tensor | None:
        """(B, terrain + levels * features) terrain values and learned grid features (times ``grid_keep``) at the
        locations of ``x``; None with neither."""
        if self.grid is None and self.terrain is None:
            return None
        lon, lat = lon_lat_of(x[:, :3])
        parts = [] if self.terrain is None else [self.terrain(lon, lat).to(x.dtype)]
        if self.grid is not None:
            g = self.grid(lon, lat).to(x.dtype)
            parts.append(g if grid_keep is None else g * grid_keep.to(g.dtype)[:, None])
        return torch.cat(parts, dim=1)

    @staticmethod
    def _with_grid(x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """``x`` with the location features ``g`` inserted before its two month columns (``x`` itself for None)."""
        return x if g is None else torch.cat([x[:, :-2], g, x[:, -2:]], dim=1)

    def forward(self, x: torch.Tensor, grid_keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, dim_encoded) from :meth:`encode_inputs` -> (embedding (B, dim_embedding), prediction (B, V))."""
        if not self.config.static_variables:
            emb = self.siren(self.siren_inputs(x, grid_keep))  # (B, dim_embedding)
            return emb, self.head(emb)  # (B, n_variables)
        g = self._grid_features(x, grid_keep)  # looked up once: the month-free copy has the same locations
        g2 = None if g is None else torch.cat([g, g])
        both = self.siren(self._with_grid(torch.cat([x, self.month_free(x)]), g2))  # (2B, dim_embedding)
        emb, emb_static = both[: x.shape[0]], both[x.shape[0] :]
        pred = torch.where(self._static, self.head(emb_static), self.head(emb))  # (B, n_variables)
        return emb, pred


class ClimateEncoder:
    """A pretrained climate encoder: embeddings and reconstructions for any (lon, lat, month).

    Use :func:`load` to get the bundled default or a saved checkpoint. Arrays in, NumPy arrays out.

    Args:
        module: the torch network.
        variables: the pretraining variables (names, units, provenance), in head order.
        mean, std: (V,) normalisation of each variable, in physical units after the variable's transform
            (:attr:`Variable.transform`: log1p for precipitation, identity otherwise).
        metadata: provenance, training record, held-out metrics.
    """

    def __init__(self, module: ClimateModule, variables: list[Variable], mean, std, metadata: dict | None = None):
        self.module = module.eval()
        self.variables = list(variables)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if not (len(self.variables) == self.mean.size == self.std.size == module.config.n_variables):
            raise CheckpointError(
                f"encoder: {len(self.variables)} variables, {self.mean.size} means, {self.std.size} stds, but the "
                f"head predicts {module.config.n_variables}"
            )
        self.metadata = dict(metadata or {})

    def __repr__(self) -> str:
        c = self.config
        return (f"ClimateEncoder({c.num_layers}x{c.dim_hidden} -> {c.dim_embedding}, "
                f"{self.n_parameters / 1e6:.2f}M parameters, variables={self.variable_names})")

    @property
    def config(self) -> EncoderConfig:
        return self.module.config

    @property
    def embedding_dim(self) -> int:
        """Size of the per-month embedding (256 by default); ``embed(month=None)`` returns 4x this."""
        return self.config.dim_embedding

    @property
    def variable_names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def _inputs(self, lon, lat, month, wrap_lon) -> torch.Tensor:
        lon, lat = check_lon_lat(lon, lat, wrap=wrap_lon)
        month = check_month(month, n=lon.size)
        return self.module.encode_inputs(torch.from_numpy(lon), torch.from_numpy(lat), torch.from_numpy(month))

    def embed(self, *, lon, lat, month=None, wrap_lon: bool = False, precision: str = "float32",
              chunk: int = 1024) -> np.ndarray:
        """Climate embeddings of points.

        Args:
            lon: (N,) degrees east in [-180, 180] (any value with ``wrap_lon=True``).
            lat: (N,) degrees north in [-90, 90].
            month: a month 1..12, an (N,) array of months, or None for months 3, 6, 9 and 12 concatenated.
            wrap_lon: wrap longitudes into [-180, 180) instead of rejecting them.
            precision: ``"float32"`` or ``"bfloat16"`` (hidden matrix products in bfloat16, ~2x faster on CPUs
                with bf16 support; results differ by rounding).
            chunk: rows processed at once (activations stay in cache).

        Returns:
            ``(N, 256)`` float32 for a month; ``(N, 1024)`` float32 with ``month=None``.
        """
        check_positive_int("chunk", chunk)
        check_choice("precision", precision, ("float32", "bfloat16"))
        dtype = {"float32": None, "bfloat16": torch.bfloat16}[precision]
        if month is None:
            lon_a, lat_a = check_lon_lat(lon, lat, wrap=wrap_lon)
            d = self.embedding_dim
            out = np.empty((lon_a.size, d * len(EMBED_MONTHS)), dtype=np.float32)
            for k, m in enumerate(EMBED_MONTHS):
                out[:, k * d : (k + 1) * d] = self.embed(lon=lon_a, lat=lat_a, month=m, precision=precision,
                                                         chunk=chunk)
            return out
        x = self._inputs(lon, lat, month, wrap_lon)
        out = np.empty((x.shape[0], self.embedding_dim), dtype=np.float32)
        if x.shape[0]:
            x = self._siren_inputs(x)
            self.module.siren.forward_inference(x, chunk=chunk, dtype=dtype, out=torch.from_numpy(out))
        return out

    @torch.no_grad()
    def _siren_inputs(self, x: torch.Tensor, rows: int = 65536) -> torch.Tensor:
        """:meth:`ClimateModule.siren_inputs` of ``x``, ``rows`` at a time (the grid lookup's temporaries stay
        bounded for any number of points); ``x`` itself without a grid."""
        if self.module.grid is None and self.module.terrain is None:
            return x
        out = torch.empty(x.shape[0], self.config.dim_in, dtype=x.dtype)
        for s in range(0, x.shape[0], rows):
            out[s : s + rows] = self.module.siren_inputs(x[s : s + rows])
        return out

    def reconstruct(self, *, lon, lat, month, wrap_lon: bool = False) -> np.ndarray:
        """Pretraining variables predicted at points, in physical units.

        Args:
            lon: (N,) degrees east; lat: (N,) degrees north; month: scalar or (N,) months 1..12.

        Returns:
            ``(N, V)`` float32, columns in the order of :attr:`variables` (see their ``units``). Static variables
            of an encoder with a month-free path (``config.static_variables``) are the same for every month.
            NaN where a variable has no support (:attr:`Variable.support` ``"ocean"``, e.g. COADS, at land
            points; see docs/data.md).
        """
        lon, lat = check_lon_lat(lon, lat, wrap=wrap_lon)
        emb = torch.from_numpy(self.embed(lon=lon, lat=lat, month=month))
        with torch.inference_mode():
            z = self.module.head(emb).double().numpy()  # (N, V)
            static = list(self.config.static_variables)
            if static and lon.size:
                x0 = self.module.month_free(self._inputs(lon, lat, 1, False))
                emb0 = self.module.siren.forward_inference(self._siren_inputs(x0))
                z[:, static] = self.module.head(emb0).double().numpy()[:, static]
        out = self.to_physical(z)
        ocean_only = [j for j, v in enumerate(self.variables) if v.support == "ocean"]
        if ocean_only and lon.size:
            from lamina.geo.data.landmask import is_land

            land = is_land(lon, lat)
            out[np.ix_(land, ocean_only)] = np.nan
        return out

    @property
    def transforms(self) -> list[str]:
        """Normalising transform of each variable (:mod:`lamina.geo.data.transforms`; ``"identity"`` for most)."""
        return [v.transform for v in self.variables]

    def to_physical(self, z: np.ndarray) -> np.ndarray:
        """(N, V) normalised head outputs -> (N, V) float32 physical units: un-z-score, then invert transforms."""
        return inverse_columns(self.transforms, z * self.std + self.mean).astype(np.float32)

    def untrained(self, seed: int = 0) -> ClimateEncoder:
        """An encoder of the same architecture and variables with fresh random SIREN initialisation."""
        with torch_seed(seed):
            module = ClimateModule(replace(self.config))
        if module.terrain is not None:  # terrain is data, not learned: the untrained network reads it too
            module.terrain.load_state_dict(self.module.terrain.state_dict())
        return ClimateEncoder(module, self.variables, self.mean, self.std, {"untrained": True, "seed": seed})

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, extra_metadata: dict | None = None) -> Path:
        """Write the checkpoint directory (``model.safetensors`` + ``config.json``) atomically.

        The metadata is this encoder's (its pretraining provenance included) updated by ``extra_metadata``; a
        derived model with its own provenance (a fine-tuned encoder) builds it with :meth:`checkpoint_metadata`.
        """
        meta = self.checkpoint_metadata({**self.metadata, **(extra_metadata or {})})
        return save_checkpoint(path, self.module.state_dict(), kind=KIND, config=self.config.to_dict(),
                               metadata=meta)

    def checkpoint_metadata(self, provenance: dict) -> dict:
        """``provenance`` with what loading needs added: the variables, their normalisation, the input contract."""
        return {
            **provenance,
            "variables": [v.to_dict() for v in self.variables],
            "normalisation": {"mean": self.mean.tolist(), "std": self.std.tolist()},
            "input_contract": INPUT_CONTRACT,
        }

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> ClimateEncoder:
        tensors, doc = load_checkpoint(path, kind=KIND)
        try:
            config = EncoderConfig.from_dict(doc["config"])
        except (InputError, TypeError) as exc:  # a field of the wrong type or out of range: name the file
            raise CheckpointError(f"checkpoint: {Path(path) / 'config.json'}: {exc}") from None
        meta = doc.get("metadata", {})
        try:
            variables = [Variable.from_dict(v) for v in meta["variables"]]
            mean, std = meta["normalisation"]["mean"], meta["normalisation"]["std"]
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint: {path} lacks variables or normalisation ({exc})") from None
        try:
            stats = np.asarray([mean, std], dtype=np.float64)
        except (TypeError, ValueError):
            stats = np.full(1, np.nan)
        if stats.ndim != 2 or stats.shape[1] != len(variables) or not np.isfinite(stats).all() or (stats[1] <= 0).any():
            raise CheckpointError(f"checkpoint: {path} has invalid normalisation statistics (need finite means and "
                                  f"positive standard deviations for {len(variables)} variables)")
        with torch_seed(None):  # the random initialisation is overwritten: leave the caller's random stream alone
            module = ClimateModule(config)
        try:
            module.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:  # torch lists the problems after a header line: keep the first two
            lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()] or [str(exc)]
            what = "; ".join(ln[:300] for ln in lines[:2]) + (f"; {len(lines) - 2} more" if len(lines) > 2 else "")
            raise CheckpointError(f"checkpoint: {path} does not match its config ({what})") from None
        return cls(module, variables, mean, std, meta)

    def embed_grid(self, *, bbox, resolution: float, month: int | None = None, precision: str = "float32",
                   force: bool = False, chunks: int | None = None):
        """Embeddings over ``bbox=(W, S, E, N)`` degrees at ``resolution`` degrees: an ``xarray.DataArray``
        ``(band, lat, lon)`` float32 in EPSG:4326 with provenance, lazy (Dask) in blocks of ``chunks`` rows when
        given; see :func:`lamina.geo.raster.embed_grid`."""
        from lamina.geo.raster import embed_grid

        return embed_grid(self, bbox=bbox, resolution=resolution, month=month, precision=precision, force=force,
                          chunks=chunks)


INPUT_CONTRACT = {
    "lon": "degrees east in [-180, 180], keyword argument lon=",
    "lat": "degrees north in [-90, 90], keyword argument lat=",
    "month": "1..12 (January = 1); None -> embeddings of months 3, 6, 9, 12 concatenated",
    "network_input": "(location features, sin(2 pi month / 12), cos(2 pi month / 12)); location features by "
                     "config.location_encoding: direct (lon / 180, lat / 90), sphere (cos lat cos lon, "
                     "cos lat sin lon, sin lat), followed with config.terrain by the place's land elevation / 4 "
                     "km and 2 x land fraction - 1 (a fixed 0.25-degree table in the checkpoint), then with "
                     "config.grid_resolutions by the learned grids' features interpolated at the location",
    "embedding": "SIREN output before the pretraining head",
    "paper": "Dollinger et al. 2025, Climplicit, arXiv:2504.05089",
}


BUNDLED = {
    "default": "the bundled default: 12 fields including ERA5 2 m temperature and precipitation, sphere input, a "
               "learned multi-resolution grid (2, 1, 0.5, 0.25 deg) and each place's land elevation (ETOPO5, 0.25 "
               "deg) as input, month-free static path, 70% land samples, trained on every pixel: elevv1 and a warm "
               "restart of 8,000 steps from it with ERA5 t2m and tp weighing 4 in the loss (73.7 M samples in all; "
               "recipe chosen on held-out blocks, see metadata['selection'])",
    "elevwarmv1": "the default of round 7 (Dec 2026): the same warm restart of elevv1 with every field weighing 1 "
                  "in the loss",
    "elevv1": "the first elevation-input default (Dec 2026): the same recipe, 10,000 steps from the seed (41 M "
              "samples), before the warm restart",
    "gridv1": "the first grid default (Dec 2026): the same 12 fields, sphere input and learned multi-resolution grid "
              "(2, 1, 0.5, 0.25 deg), month-free static path, 70% land samples, every pixel, 41 M samples; no "
              "elevation input",
    "land70v2": "the second land70 default (Dec 2026): land70v1 and a warm restart of 8,000 steps from it (73.7 M "
                "samples in all)",
    "land70v1": "the first land70 default (Dec 2026): the same recipe, 10,000 steps from the seed (41 M samples)",
    "era5v1": "the first ERA5 default (first ERA5 default, Dec 2026): the same fields and network, pixel-uniform "
              "samples, 10% of 10-degree blocks held out, 25.6 M samples",
    "offline10": "the default before that: 10 fields without ERA5, direct lon/lat input",
}
"""Checkpoints shipped inside the package, by name (``load("bundled:NAME")``, ``--checkpoint bundled:NAME``)."""
BUNDLED_PREFIX = "bundled:"


def bundled_checkpoint_path(name: str = "default") -> Path:
    """Directory of a checkpoint shipped inside the installed package (see :data:`BUNDLED`)."""
    if name not in BUNDLED:
        raise CheckpointError(f"checkpoint: no bundled checkpoint {name!r}; bundled are {', '.join(BUNDLED)}")
    return Path(str(resources.files("lamina.geo").joinpath("pretrained", name)))


def default_checkpoint_path() -> Path:
    """Directory of the bundled default checkpoint (inside the installed package)."""
    return bundled_checkpoint_path("default")


def resolve_checkpoint(path: str | Path | None) -> Path:
    """A checkpoint directory from a path, ``"bundled:NAME"``, or None (the bundled default)."""
    if path is None:
        return default_checkpoint_path()
    if not isinstance(path, str | os.PathLike):
        raise CheckpointError(f"checkpoint: expected a path to a checkpoint directory or 'bundled:NAME', got "
                              f"{type(path).__name__} {path!r}")
    text = os.fspath(path)
    if isinstance(text, str) and text.startswith(BUNDLED_PREFIX):
        return bundled_checkpoint_path(text[len(BUNDLED_PREFIX):])
    return Path(path)


def load(path: str | Path | None = None) -> ClimateEncoder:
    """Load a climate encoder, offline.

    Args:
        path: a checkpoint directory written by :meth:`ClimateEncoder.save` or ``lamina geo pretrain``;
            ``"bundled:NAME"`` for a checkpoint shipped with lamina (:data:`BUNDLED`, e.g. ``"bundled:elevv1"``,
            the previous default, kept for comparison); None for the bundled default.

    Raises:
        CheckpointError: missing, corrupt, foreign or mismatched checkpoint files, or an unknown bundled name.
    """
    return ClimateEncoder.from_checkpoint(resolve_checkpoint(path))
