"""Choose the pretraining recipe of the bundled climate encoder on held-out 10-degree blocks.

Each candidate recipe is one ``lamina geo pretrain`` run (seed 0, the same held-out blocks for all: 10% of the
10-degree blocks); the runs go side by side, one torch thread each, so each gets the same share of the machine.
Every run is resumable: rerunning the script continues unfinished runs and reuses finished ones.

Each finished run is then measured on the same held-out samples (pixel-uniform in the held-out blocks, split by
the GLOBE land mask): ERA5 2 m temperature and precipitation per month on land and sea, and the bioclimatic
variables BIO1 / BIO12 / BIO4 / BIO15 on held-out land, computed from the encoder's 12 monthly reconstructions
(so that recipes with and without BIO targets are compared alike) against the same variables computed from the
ERA5 file (:mod:`lamina.geo.data.sources.bioclim`).

    python scripts/geo_recipe_selection.py --runs runs/selection [--steps 500 --batch-size 4096] [--only NAME ...]
        [--results NAME]

Writes benchmarks/results/geo_recipe_selection.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

BASE = {"--layers": "8", "--hidden": "256", "--dim": "256", "--lr": "1e-3", "--schedule": "cosine",
        "--static-path": None, "--seed": "0"}  # option -> value (None: a flag)
ERA12 = ("linke_turbidity,elevation,land_fraction,wind_u,wind_v,air_temperature,sst,specific_humidity,"
         "sea_level_pressure,wind_speed,era5_t2m,era5_tp")
BIO = "bio01,bio04,bio10,bio11,bio12,bio13,bio14,bio15,bio16,bio17,bio18,bio19"
# the options every grid candidate shares (land70-grid), and with the land elevation as input (land70-grid-elev)
GRID = ["--location-encoding", "sphere", "--land-share", "0.7", "--grid", "2,1,0.5,0.25", "--grid-features", "2",
        "--grid-dropout", "0.25"]
GRID_ELEV = [*GRID, "--terrain", "--terrain-columns", "elevation"]
CANDIDATES = {
    # name: (stack, extra options, what changes against "sphere")
    "sphere": (ERA12, ["--location-encoding", "sphere"], "the bundled default's recipe (unit vector input)"),
    "sh20": (ERA12, ["--location-encoding", "spherical_harmonics", "--sh-degree", "20"],
             "spherical harmonics to degree 20 (441 inputs) feeding the SIREN"),
    "land70": (ERA12, ["--location-encoding", "sphere", "--land-share", "0.7"], "70% of every batch from land"),
    "bio": (ERA12 + "," + BIO, ["--location-encoding", "sphere"], "12 bioclimatic variables as extra static targets"),
    "land70-sh20": (ERA12, ["--location-encoding", "spherical_harmonics", "--sh-degree", "20", "--land-share", "0.7"],
                    "land70 + sh20"),
    "land70-bio": (ERA12 + "," + BIO, ["--location-encoding", "sphere", "--land-share", "0.7"], "land70 + bio"),
    "land70-w60": (ERA12, ["--location-encoding", "sphere", "--land-share", "0.7", "--w0-initial", "60"],
                   "land70 + first-layer frequency w0 60 (default 30)"),
    "land70-w120": (ERA12, ["--location-encoding", "sphere", "--land-share", "0.7", "--w0-initial", "120"],
                    "land70 + first-layer frequency w0 120"),
    "land70-h512": (ERA12, ["--location-encoding", "sphere", "--land-share", "0.7", "--hidden", "512"],
                    "land70 + hidden width 512 (default 256): capacity"),
    "land70-grid": (ERA12, GRID,
                    "land70 + learned grids at 2, 1, 0.5, 0.25 deg (2 values per node), grid dropout 0.25"),
    "land70-terrain": (ERA12, ["--location-encoding", "sphere", "--land-share", "0.7", "--terrain"],
                       "land70 + terrain inputs (land elevation, land fraction at 0.25 deg), no grid"),
    "land70-grid-elev": (ERA12, GRID_ELEV,
                         "land70-grid + land elevation at 0.25 deg as input (terrain without the land fraction)"),
    "land70-grid-terrain": (ERA12, [*GRID, "--terrain"],
                            "land70-grid + terrain inputs (land elevation, land fraction at 0.25 deg)"),
    "land70-grid-elev-warm": (ERA12, [*GRID_ELEV, "--lr", "5e-4", "--init-from", "{runs}/land70-grid-elev/final"],
                              "land70-grid-elev, then a warm restart from its finished run at lr 5e-4 (run it with "
                              "--steps for the restart alone; land70v2's recipe)"),
    "land70-grid-elev-warm-tw": (ERA12, [*GRID_ELEV, "--lr", "5e-4", "--target-weights", "era5_t2m=4,era5_tp=4",
                                         "--init-from", "{runs}/land70-grid-elev/final"],
                                 "land70-grid-elev-warm with ERA5 temperature and precipitation weighing 4 in the "
                                 "loss (the other 10 fields 1)"),
    "land70-grid-elev-tw": (ERA12, [*GRID_ELEV, "--target-weights", "era5_t2m=4,era5_tp=4"],
                            "land70-grid-elev with ERA5 temperature and precipitation weighing 4 in the loss from the "
                            "seed (no warm restart)"),
    "land70-grid-elev-tw48": (ERA12, [*GRID_ELEV, "--target-weights", "era5_t2m=4,era5_tp=8"],
                              "land70-grid-elev-tw with ERA5 precipitation weighing 8 (temperature 4) from the seed"),
    "all": (ERA12 + "," + BIO, ["--location-encoding", "spherical_harmonics", "--sh-degree", "20",
                                "--land-share", "0.7"], "sh20 + land70 + bio"),
}
BIO_REPORTED = ("bio01", "bio04", "bio12", "bio15")


def _base_without(extra: list[str]) -> list[str]:
    """BASE as arguments, without the options that a candidate sets itself (``--lr`` of a warm restart)."""
    return [t for k, v in BASE.items() if k not in extra for t in (k, v) if t is not None]


def run_all(names, runs: Path, steps: int, batch: int, minutes: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = {}
    for name in names:
        stack, extra, _ = CANDIDATES[name]
        out = runs / name
        if (out / "final").exists() and json.loads((out / "history.json").read_text()):
            state = json.loads((out / "final" / "config.json").read_text())["metadata"]["training"]
            if state.get("steps", 0) >= steps or state.get("stopped") == "early_stopping":
                continue
        extra = [e.replace("{runs}", str(runs)) for e in extra]
        cmd = [sys.executable, "-m", "lamina.cli", "geo", "pretrain", "-o", str(out), "--stack", "offline:" + stack,
               *_base_without(extra), *extra, "--steps", str(steps), "--batch-size", str(batch), "--eval-every", "50",
               "--patience", "1000", "--minutes", str(minutes), "--no-progress"]
        out.mkdir(parents=True, exist_ok=True)
        log = open(out / "log.txt", "a")
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log)
        print("started", name, flush=True)
    for name, (p, log) in procs.items():
        if p.wait() != 0:
            raise SystemExit(f"{name}: pretraining failed, see {runs / name / 'log.txt'}")
        log.close()
        print("finished", name, flush=True)
    return {n: json.loads((runs / n / "final" / "config.json").read_text())["metadata"]["training"] for n in names}


def heldout_sets(n: int):
    from lamina.geo.data.landmask import is_land
    from lamina.geo.data.sampling import PixelSampler, SpatialSplit
    from lamina.geo.data.sources import load_stack

    stack = load_stack(["era5_t2m", "era5_tp"])
    split = SpatialSplit(10.0, 0.1, 0)
    b = PixelSampler(stack, batch_size=8192, part="val", split=split, seed=12345).fixed_set(n)
    land = is_land(b.lon, b.lat)
    # land sites for the bioclimatic variables: one point per sample, all 12 months reconstructed
    sites = PixelSampler(stack, batch_size=8192, part="val", split=split, surface="land", seed=54321).fixed_set(n // 4)
    # in-sample: training blocks, land only (what the shipped checkpoint, trained on every pixel, is asked)
    seen = PixelSampler(stack, batch_size=8192, part="train", split=split, surface="land", seed=777).fixed_set(n // 4)
    return b, land, sites, seen


def _scores(pred, truth) -> dict:
    ok = np.isfinite(truth) & np.isfinite(pred)
    err = pred[ok] - truth[ok]
    return {"rmse": float(np.sqrt(np.mean(err**2))), "r2": float(1 - np.mean(err**2) / truth[ok].var()),
            "n": int(ok.sum())}


def measure(ckpt: Path, b, land, sites, seen) -> dict:
    from lamina.geo.data.sources.bioclim import bioclim, bioclim_from_monthly
    from lamina.geo.encoder import load

    enc = load(ckpt)
    names = enc.variable_names
    it, ip = names.index("era5_t2m"), names.index("era5_tp")
    rec = enc.reconstruct(lon=b.lon, lat=b.lat, month=b.month)
    out = {}
    for part, mask in (("land", land), ("sea", ~land)):
        out[f"t2m_{part}"] = _scores(rec[mask, it], b.values[mask, 0].astype(np.float64))
        out[f"tp_{part}"] = _scores(rec[mask, ip], b.values[mask, 1].astype(np.float64))
    rec = enc.reconstruct(lon=seen.lon, lat=seen.lat, month=seen.month)
    out["t2m_seen_land"] = _scores(rec[:, it], seen.values[:, 0].astype(np.float64))
    out["tp_seen_land"] = _scores(rec[:, ip], seen.values[:, 1].astype(np.float64))
    months = [enc.reconstruct(lon=sites.lon, lat=sites.lat, month=m) for m in range(1, 13)]
    t = np.stack([r[:, it] for r in months])
    p = np.stack([r[:, ip] for r in months])
    derived = bioclim_from_monthly(t, p)
    m1 = np.ones(sites.lon.size, dtype=np.int64)
    for v in BIO_REPORTED:
        truth = bioclim(v).values_at(sites.lon, sites.lat, m1).astype(np.float64)
        pred = derived[v].astype(np.float64)
        if v in ("bio12",):
            out[f"{v}_log_land"] = _scores(np.log1p(pred), np.log1p(truth))
        out[f"{v}_land"] = _scores(pred, truth)
    return out


def main() -> None:
    from _common import machine, write_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("runs/selection"))
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock cap per run")
    ap.add_argument("--n", type=int, default=100_000, help="held-out samples for the measurement")
    ap.add_argument("--only", nargs="*", default=["sphere", "sh20", "land70", "bio", "all"], choices=list(CANDIDATES))
    ap.add_argument("--results", default="geo_recipe_selection", help="results file name in benchmarks/results/")
    args = ap.parse_args()
    t0 = time.perf_counter()
    training = run_all(args.only, args.runs, args.steps, args.batch_size, args.minutes)
    b, land, sites, seen = heldout_sets(args.n)
    rows = {}
    for name in args.only:
        rows[name] = {"what": CANDIDATES[name][2], "options": " ".join(CANDIDATES[name][1]),
                      "variables": CANDIDATES[name][0].count(",") + 1,
                      "steps": training[name]["steps"], "samples": training[name]["samples_seen"],
                      "minutes": round(training[name]["elapsed_s"] / 60, 1),
                      **measure(args.runs / name / "final", b, land, sites, seen)}
        print(name, json.dumps({k: v for k, v in rows[name].items() if isinstance(v, dict)}), flush=True)
    cols = [("t2m_land", "rmse", "t2m land RMSE degC"), ("t2m_sea", "rmse", "t2m sea RMSE degC"),
            ("tp_land", "r2", "tp land R^2"), ("tp_sea", "r2", "tp sea R^2"),
            ("bio01_land", "rmse", "BIO1 land RMSE degC"), ("bio04_land", "r2", "BIO4 land R^2"),
            ("bio12_log_land", "r2", "BIO12 (log) land R^2"), ("bio15_land", "r2", "BIO15 land R^2"),
            ("t2m_seen_land", "rmse", "in-sample t2m land RMSE degC"), ("tp_seen_land", "r2", "in-sample tp land R^2")]
    md = ["# Recipe selection on held-out 10-degree blocks", "",
          f"`python scripts/geo_recipe_selection.py --runs {args.runs} --steps {args.steps} --batch-size "
          f"{args.batch_size} --only {' '.join(args.only)} --results {args.results}`: each candidate pretrained "
          "from seed 0 for the same number of samples, all side by side with one torch thread each; measured on "
          "the 10% of 10-degree blocks none of them saw "
          f"({args.n:,} samples, {land.mean():.0%} on land; {sites.lon.size:,} land sites for BIO, from the 12 "
          "monthly reconstructions); the two in-sample columns are "
          f"{seen.lon.size:,} land samples from the blocks every candidate trained on.", "",
          "| candidate | change | steps | samples | minutes | " + " | ".join(c[2] for c in cols) + " |",
          "|" + "---|" * (5 + len(cols))]
    for name, r in rows.items():
        md.append(f"| {name} | {r['what']} | {r['steps']} | {r['samples']:,} | {r['minutes']} | "
                  + " | ".join(f"{r[k][m]:.3f}" for k, m, _ in cols) + " |")
    write_results(args.results, {"machine": machine(), "wall_s": round(time.perf_counter() - t0, 1),
                                           "args": {k: str(v) for k, v in vars(args).items()}, "candidates": rows},
                  "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
