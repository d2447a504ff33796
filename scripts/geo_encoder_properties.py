"""Antimeridian continuity, month-invariance of static variables and support masks of an encoder checkpoint.

    python scripts/geo_encoder_properties.py CHECKPOINT_DIR   # or "default" for the bundled one
"""
import json
import sys

import numpy as np

import lamina.geo

path = None if sys.argv[1] == "default" else sys.argv[1]
enc = lamina.geo.load(path)
lats = np.linspace(-80, 80, 33)
def pair(a, b, m=6):
    ea = enc.embed(lon=np.full(lats.size, a), lat=lats, month=m)
    eb = enc.embed(lon=np.full(lats.size, b), lat=lats, month=m)
    return np.linalg.norm(ea - eb, axis=1)
across = float(np.median(pair(179.99, -179.99)))
else_ = [float(np.median(pair(l - 0.01, l + 0.01))) for l in range(-135, 136, 45)]
norms = np.linalg.norm(enc.embed(lon=np.zeros(lats.size), lat=lats, month=6), axis=1)
rng = np.random.default_rng(0)
lon, lat = rng.uniform(-180, 180, 2000), rng.uniform(-60, 80, 2000)
rec = np.stack([enc.reconstruct(lon=lon, lat=lat, month=m) for m in range(1, 13)])
names = enc.variable_names
out = {"embedding_distance_lon179.99_vs_-179.99_median": across, "distance_0.02deg_elsewhere_median_per_lon": else_,
       "embedding_norm_median": float(np.median(norms))}
for v in ("elevation", "land_fraction"):
    j = names.index(v)
    spread = np.nanmax(rec[:, :, j], 0) - np.nanmin(rec[:, :, j], 0)
    out[f"{v}_month_spread_median"] = float(np.median(spread))
    out[f"{v}_month_spread_max"] = float(spread.max())
    out[f"{v}_month_spread_max_over_std"] = float(spread.max() / np.nanstd(rec[0, :, j]))
r = enc.reconstruct(lon=[106.9, -78.5], lat=[47.9, -0.2], month=1)
out["ulaanbaatar_quito_jan_air_temperature"] = r[:, names.index("air_temperature")].tolist()
if "era5_t2m" in names:
    out["ulaanbaatar_quito_jan_era5_t2m"] = r[:, names.index("era5_t2m")].tolist()
    out["mumbai_jul_era5_tp"] = float(enc.reconstruct(lon=[72.88], lat=[19.08], month=7)[0, names.index("era5_tp")])
e180 = enc.reconstruct(lon=[180.0, -180.0], lat=[60.0, 60.0], month=1)[:, names.index("elevation")]
out["elevation_60N_at_180_and_-180"] = e180.tolist()
hm = enc.metadata.get("heldout_metrics", {}).get("per_variable", {})
out["heldout"] = {k: {"rmse": v["rmse"], "r2": v["r2"]} for k, v in hm.items()}
out["training"] = {k: enc.metadata.get("training", {}).get(k)
                   for k in ("stopped", "steps", "samples_seen", "elapsed_s", "best_step")}
print(json.dumps(out, indent=1))
