"""Where an encoder keeps ERA5: at coasts, inland and at the 270 cities of ``city-temperature``.

The land points of :mod:`geo_era5_fidelity` split by the land fraction of the 0.25-degree cell around them (GLOBE
mask, :mod:`lamina.geo.data.terrain`): coast (0.2 to 0.8 land) and inland (over 0.99 land); and the cities of the
city-temperature task (many on coasts). For each, the encoder's 12 monthly reconstructions of ERA5 t2m and tp
against the file and the bioclimatic variables derived alike (:func:`lamina.geo.eval.fidelity.era5_fidelity`).
Checkpoints may be folders (e.g. a pretraining run's ``final/``) or ``bundled:NAME``.

    python benchmarks/geo_coast_fidelity.py --checkpoint bundled:default runs/ship4/final [--n 3000] [--results NAME]

Writes benchmarks/results/geo_coast_fidelity.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_results
from lamina.geo.data.terrain import TERRAIN_RESOLUTION, terrain_table
from lamina.geo.encoder import load, resolve_checkpoint
from lamina.geo.eval.fidelity import era5_fidelity, random_land_points
from lamina.geo.eval.tasks.city_temperature import load_city_temperature
from lamina.nn.encodings import grid_shape

ROWS = [("tp_monthly", "r2", "monthly tp R^2"), ("bio12_log", "r2", "annual precipitation (log) R^2"),
        ("t2m_monthly", "rmse", "monthly t2m RMSE, degC"), ("bio01", "rmse", "annual mean temperature RMSE, degC")]


def strata(n: int) -> dict:
    """{name: (lon, lat)}: coast and inland land points (from 20 n uniform land points, seed 0) and the cities."""
    lon, lat = random_land_points(20 * n, seed=0)
    rows, cols = grid_shape(TERRAIN_RESOLUTION)
    table = terrain_table(columns=["land_fraction"]).reshape(rows, cols)
    i = np.round((lat + 90) / TERRAIN_RESOLUTION).astype(int)
    j = np.round((lon + 180) / TERRAIN_RESOLUTION).astype(int) % cols
    frac = (table[i, j] + 1) / 2
    coast, inland = (frac > 0.2) & (frac < 0.8), frac > 0.99
    cities = load_city_temperature()
    return {"coast": (lon[coast][:n], lat[coast][:n]), "inland": (lon[inland][:n], lat[inland][:n]),
            "cities": (np.asarray(cities.lon), np.asarray(cities.lat))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", nargs="+", default=["bundled:default"])
    ap.add_argument("--n", type=int, default=3000, help="points per land stratum")
    ap.add_argument("--results", default="geo_coast_fidelity", help="results file name in benchmarks/results/")
    args = ap.parse_args()
    sets, res, t0 = strata(args.n), {}, time.perf_counter()
    for ck in args.checkpoint:
        enc = load(ck)
        sha = json.loads((resolve_checkpoint(ck) / "config.json").read_text())["sha256"]
        res[ck] = {"sha256": sha, **{name: era5_fidelity(enc, lon=lo, lat=la) for name, (lo, la) in sets.items()}}
        print(ck, {s: {k: round(res[ck][s][k][m], 3) for k, m, _ in ROWS} for s in sets}, flush=True)
    sizes = ", ".join(f"{name} {lo.size:,}" for name, (lo, _) in sets.items())
    md = ["# ERA5 kept by the encoder at coasts, inland and at cities", "",
          f"`python benchmarks/geo_coast_fidelity.py --checkpoint {' '.join(args.checkpoint)} --n {args.n}"
          + ("" if args.results == "geo_coast_fidelity" else f" --results {args.results}") + "`: land points "
          "(uniform on land, seed 0) split by the land fraction of their 0.25-degree cell: coast 0.2-0.8, inland "
          f"> 0.99; and the 270 cities of city-temperature ({sizes} points). The encoder's 12 monthly "
          "reconstructions against the ERA5 file.", "",
          "| measure | stratum | " + " | ".join(args.checkpoint) + " |", "|---|---|" + "---|" * len(args.checkpoint)]
    for key, metric, label in ROWS:
        for name in sets:
            md.append(f"| {label} | {name} | " + " | ".join(f"{res[c][name][key][metric]:.3f}"
                                                            for c in args.checkpoint) + " |")
    write_results(args.results, {"machine": machine(), "n": args.n, "wall_s": round(time.perf_counter() - t0, 1),
                                 "checkpoints": res}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
