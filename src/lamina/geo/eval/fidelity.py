"""How much of the ERA5 climatology an encoder keeps: its reconstructions against the file, at given points.

For every point the encoder reconstructs ERA5 2 m temperature and precipitation for all 12 months; from those the
bioclimatic variables are derived exactly as from the file (:func:`~lamina.geo.data.sources.bioclim
.bioclim_from_monthly`), so encoders with and without BIO targets are compared alike. Scores are RMSE and R^2
(1 - MSE / variance of the truth over the points) in physical units; annual precipitation also on a log scale
(``log1p``), since it spans four orders of magnitude.
"""

from __future__ import annotations

import numpy as np

from lamina._validation import check_lon_lat
from lamina.errors import InputError

REPORTED_BIO = ("bio01", "bio04", "bio10", "bio11", "bio12", "bio15", "bio16", "bio17")


def scores(pred, truth) -> dict:
    """``{"rmse", "r2", "n"}`` over the entries where both are finite."""
    pred, truth = np.asarray(pred, np.float64).ravel(), np.asarray(truth, np.float64).ravel()
    ok = np.isfinite(pred) & np.isfinite(truth)
    if ok.sum() < 2:
        return {"rmse": None, "r2": None, "n": int(ok.sum())}
    err = pred[ok] - truth[ok]
    var = truth[ok].var()
    return {"rmse": float(np.sqrt(np.mean(err**2))), "r2": float(1 - np.mean(err**2) / var) if var > 0 else None,
            "n": int(ok.sum())}


def era5_fidelity(encoder, *, lon, lat, batch: int = 65536) -> dict:
    """An encoder's ERA5 reconstruction against the file at points.

    Args:
        encoder: a :class:`~lamina.geo.encoder.ClimateEncoder` pretrained with ``era5_t2m`` and ``era5_tp``.
        lon, lat: (N,) degrees.
        batch: points reconstructed per call.

    Returns:
        ``{"t2m_monthly", "tp_monthly", "<bio>" for each of REPORTED_BIO, "bio12_log"}``, each ``{"rmse", "r2",
        "n"}`` (monthly scores pool the 12 months of every point).

    Raises:
        InputError: the encoder does not reconstruct ERA5 temperature and precipitation.
    """
    from lamina.geo.data.sources.bioclim import bioclim_from_monthly
    from lamina.geo.data.sources.era5 import era5

    lon, lat = check_lon_lat(lon, lat)
    names = list(encoder.variable_names)
    if "era5_t2m" not in names or "era5_tp" not in names:
        raise InputError(f"encoder: reconstructs {names}, not era5_t2m and era5_tp")
    it, ip = names.index("era5_t2m"), names.index("era5_tp")
    t_hat, p_hat = np.empty((12, lon.size)), np.empty((12, lon.size))
    t_true, p_true = np.empty((12, lon.size)), np.empty((12, lon.size))
    for m in range(1, 13):
        for s in range(0, lon.size, batch):
            rec = encoder.reconstruct(lon=lon[s : s + batch], lat=lat[s : s + batch], month=m)
            t_hat[m - 1, s : s + batch], p_hat[m - 1, s : s + batch] = rec[:, it], rec[:, ip]
        month = np.full(lon.size, m)
        t_true[m - 1] = era5("era5_t2m").values_at(lon, lat, month)
        p_true[m - 1] = era5("era5_tp").values_at(lon, lat, month)
    out = {"t2m_monthly": scores(t_hat, t_true), "tp_monthly": scores(p_hat, p_true)}
    bio_hat, bio_true = bioclim_from_monthly(t_hat, p_hat), bioclim_from_monthly(t_true, p_true)
    for v in REPORTED_BIO:
        out[v] = scores(bio_hat[v], bio_true[v])
    out["bio12_log"] = scores(np.log1p(bio_hat["bio12"]), np.log1p(bio_true["bio12"]))
    return out


def random_land_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform on the sphere's land (GLOBE mask, Antarctica included): (lon, lat) degrees."""
    from lamina.geo.data.landmask import is_land

    rng = np.random.default_rng(seed)
    lons, lats, have = [], [], 0
    while have < n:
        lon = rng.uniform(-180.0, 180.0, 4 * n)
        lat = np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0, 4 * n)))  # uniform on the sphere
        keep = is_land(lon, lat)
        lons.append(lon[keep]), lats.append(lat[keep])
        have += int(keep.sum())
    return np.concatenate(lons)[:n], np.concatenate(lats)[:n]
