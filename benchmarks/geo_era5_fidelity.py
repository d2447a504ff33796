"""How much of ERA5 an encoder keeps at random land points (its training data: in-sample for a checkpoint trained
on every pixel), against the targets of issue 23.

For each checkpoint: 20,000 points uniform on land (GLOBE mask, seed 0), the encoder's 12 monthly reconstructions
of ERA5 t2m and tp against the file, and the bioclimatic variables derived from both alike
(:func:`lamina.geo.eval.fidelity.era5_fidelity`). Writes benchmarks/results/geo_era5_fidelity.{json,md}.

    python benchmarks/geo_era5_fidelity.py [--checkpoint bundled:default ...] [--n 20000] [--results NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_results
from lamina.geo.encoder import load, resolve_checkpoint
from lamina.geo.eval.fidelity import era5_fidelity, random_land_points

ROWS = [("bio01", "rmse", "annual mean temperature (BIO1) RMSE, degC", "<= 1.5"),
        ("bio12_log", "r2", "annual precipitation (BIO12, log) R^2", ">= 0.95"),
        ("t2m_monthly", "rmse", "monthly t2m RMSE, degC", ""),
        ("tp_monthly", "r2", "monthly tp R^2", ""),
        ("bio04", "r2", "temperature seasonality (BIO4) R^2", ""),
        ("bio15", "r2", "precipitation seasonality (BIO15) R^2", ""),
        ("bio17", "r2", "driest quarter precipitation (BIO17) R^2", "")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", nargs="+", default=["bundled:default"])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--results", default="geo_era5_fidelity", help="results file name in benchmarks/results/")
    args = ap.parse_args()
    lon, lat = random_land_points(args.n, seed=0)
    res, t0 = {}, time.perf_counter()
    for ck in args.checkpoint:
        enc = load(ck)
        sha = json.loads((resolve_checkpoint(ck) / "config.json").read_text())["sha256"]
        res[ck] = {"sha256": sha, **era5_fidelity(enc, lon=lon, lat=lat)}
        print(ck, {k: res[ck][k] for k, *_ in ROWS}, flush=True)
    md = ["# ERA5 kept by the encoder at random land points", "",
          f"`python benchmarks/geo_era5_fidelity.py --checkpoint {' '.join(args.checkpoint)} --n {args.n}"
          + ("" if args.results == "geo_era5_fidelity" else f" --results {args.results}") + "`: "
          f"{args.n:,} points uniform on land (seed 0); the encoder's 12 monthly reconstructions against the ERA5 "
          "file, bioclimatic variables derived alike from both.", "",
          "| measure | target | " + " | ".join(args.checkpoint) + " |", "|---|---|" + "---|" * len(args.checkpoint)]
    for key, metric, label, target in ROWS:
        md.append(f"| {label} | {target} | " + " | ".join(f"{res[c][key][metric]:.3f}" for c in args.checkpoint)
                  + " |")
    write_results(args.results, {"machine": machine(), "n": args.n,
                                        "wall_s": round(time.perf_counter() - t0, 1), "checkpoints": res},
                  "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
