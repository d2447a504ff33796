"""Which normalising transform suits ERA5 precipitation: raw, log1p or sqrt (skewness and reconstruction error).

Samples ``--n`` random (point, month) pairs uniformly on the sphere (area-weighted) and reads ERA5 precipitation
(mm/month, bilinear). For each transform it reports:

- the skewness of the transformed values (all points, land only);
- the reconstruction error in physical units of a smooth regressor fitted by least squares *in the transformed
  space* and mapped back: ridge regression on real spherical harmonics of degree ``--degree`` times the first two
  month harmonics, trained outside and evaluated inside spatially held-out 10-degree blocks (lamina's
  SpatialSplit). Errors are RMSE / MAE in mm/month, R^2, and the median relative error where the truth is dry
  (< 30 mm/month) or wet (>= 30 mm/month), over all points and over land.

The regressor stands in for the encoder's head (both minimise squared error in the normalised space), so the
comparison isolates the transform. Writes benchmarks/results/geo_era5_transform.{json,md}.

    python benchmarks/geo_era5_transform.py [--n 120000] [--degree 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_results
from lamina.geo.data.landmask import is_land
from lamina.geo.data.sampling import SpatialSplit
from lamina.geo.data.sources.era5 import era5
from lamina.geo.data.transforms import TRANSFORMS
from lamina.nn.encodings import spherical_harmonics


def skewness(x: np.ndarray) -> float:
    d = x - x.mean()
    return float(np.mean(d**3) / np.mean(d**2) ** 1.5)


def features(lon, lat, month, degree: int) -> np.ndarray:
    sh = spherical_harmonics(lon, lat, degree)  # (N, (L+1)^2)
    a = 2 * np.pi * month / 12.0
    season = np.stack([np.ones_like(a), np.sin(a), np.cos(a), np.sin(2 * a), np.cos(2 * a)], axis=1)  # (N, 5)
    return (sh[:, :, None] * season[:, None, :]).reshape(len(lon), -1)


def metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    err = pred - truth
    dry, wet = truth < 30.0, truth >= 30.0
    rel = np.abs(err) / np.maximum(truth, 1.0)
    return {"rmse_mm": float(np.sqrt(np.mean(err**2))), "mae_mm": float(np.mean(np.abs(err))),
            "r2": float(1 - np.mean(err**2) / truth.var()),
            "median_rel_err_dry": float(np.median(rel[dry])), "median_rel_err_wet": float(np.median(rel[wet])),
            "n": int(truth.size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=120_000)
    ap.add_argument("--degree", type=int, default=16)
    ap.add_argument("--ridge", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    lon = rng.uniform(-180.0, 180.0, args.n)
    lat = np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0, args.n)))  # uniform on the sphere
    month = rng.integers(1, 13, args.n)
    tp = era5("era5_tp").values_at(lon, lat, month).astype(np.float64)
    land = is_land(lon, lat)
    val = SpatialSplit(10.0, 0.2, args.seed).is_validation(lon, lat)
    x = features(lon, lat, month, args.degree)
    xtr, xva = x[~val], x[val]
    gram = xtr.T @ xtr + args.ridge * len(xtr) * np.eye(x.shape[1])
    results = {"n": args.n, "degree": args.degree, "n_features": int(x.shape[1]), "n_heldout": int(val.sum()),
               "machine": machine(), "transforms": {}}
    for name, (fwd, inv) in TRANSFORMS.items():
        y = fwd(tp)
        mu, sd = y[~val].mean(), y[~val].std()
        coef = np.linalg.solve(gram, xtr.T @ ((y[~val] - mu) / sd))
        pred = inv(xva @ coef * sd + mu)
        truth = tp[val]
        lv = land[val]
        results["transforms"][name] = {
            "skewness_all": skewness(y), "skewness_land": skewness(y[land]),
            "heldout_all": metrics(pred, truth), "heldout_land": metrics(pred[lv], truth[lv]),
            "heldout_ocean": metrics(pred[~lv], truth[~lv]),
        }
    rows = ["| transform | skew (all) | skew (land) | RMSE all | RMSE land | MAE land | R^2 land | "
            "median rel. err. dry land | median rel. err. wet land |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["transforms"].items():
        a, la = r["heldout_all"], r["heldout_land"]
        rows.append(f"| {name} | {r['skewness_all']:.2f} | {r['skewness_land']:.2f} | {a['rmse_mm']:.1f} | "
                    f"{la['rmse_mm']:.1f} | {la['mae_mm']:.1f} | {la['r2']:.3f} | {la['median_rel_err_dry']:.2f} | "
                    f"{la['median_rel_err_wet']:.2f} |")
    md = (f"# ERA5 precipitation: normalising transform\n\n{args.n} random (point, month) samples, uniform on the "
          f"sphere; ridge on spherical harmonics (degree {args.degree}) x month harmonics fitted in each transformed "
          f"space, errors in mm/month on {int(val.sum())} samples in held-out 10-degree blocks "
          "(`python benchmarks/geo_era5_transform.py`).\n\n" + "\n".join(rows) + "\n")
    write_results("geo_era5_transform", results, md)
    print(md)


if __name__ == "__main__":
    main()
