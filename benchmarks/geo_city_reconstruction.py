"""Where an encoder loses ERA5's temperature: its own reconstruction at the 270 cities of ``city-temperature``.

For each checkpoint, the encoder's reconstruction of ERA5 monthly 2 m temperature at the cities (no probe, no
fitting) is scored against the task's truth (CHELSA v2.1 1981-2010 monthly means, world-temperature-data) with the
task's metric (R^2 per month, averaged); the ERA5 file's own value at each city is scored alike, as the ceiling of
what reconstructing ERA5 can give. Also: RMSE of the annual mean against the ERA5 file, and the cities where the
reconstruction departs most from ERA5 (with their elevation as ERA5's neighbours see it: the encoder's elevation).

``--probe`` adds where a linear probe loses it: the task's own probe and splits (``lamina geo evaluate``'s, seeds
0-2) on the ERA5 values (all 12 months, and only the evaluation's months 3, 6, 9, 12), on each encoder's own
reconstruction of the 12 monthly temperatures, and on its embedding (months 3, 6, 9, 12, the evaluation's features).
If the probe on the reconstruction falls as far below ERA5 as the probe on the embedding, the gap is in what the
encoder reconstructs at the cities, not in the months the evaluation reads nor in the probe.

    python benchmarks/geo_city_reconstruction.py [--checkpoint bundled:default ...] [--worst 8] [--probe]
        [--results NAME]

Writes benchmarks/results/geo_city_reconstruction.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_results
from lamina.geo.data.sources.era5 import era5
from lamina.geo.encoder import load, resolve_checkpoint
from lamina.geo.eval.tasks.city_temperature import load_city_temperature


def r2_mean(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over columns of R^2 (the task's metric)."""
    ss_res = ((pred - truth) ** 2).sum(axis=0)
    ss_tot = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - ss_res / ss_tot))


def monthly_t2m(enc, lon, lat) -> np.ndarray:
    j = enc.variable_names.index("era5_t2m")
    return np.stack([enc.reconstruct(lon=lon, lat=lat, month=m)[:, j] for m in range(1, 13)], axis=1)


PROBE_SEEDS = (0, 1, 2)


def probe_scores(task, feats: np.ndarray) -> dict:
    """The task's probe on ``feats``: mean R^2 (mean of 12 months) over PROBE_SEEDS, per split."""
    from lamina.geo.eval.evaluate import EvalSettings, run_one

    return {split: float(np.mean([run_one(task, "probe", feats, split=split, seed=s, settings=EvalSettings.full())
                                  ["score"] for s in PROBE_SEEDS])) for split in ("random", "block")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", nargs="+", default=["bundled:default"])
    ap.add_argument("--worst", type=int, default=8, help="cities listed per checkpoint")
    ap.add_argument("--probe", action="store_true", help="also score the task's linear probe on ERA5, the "
                    "reconstruction and the embedding (seeds 0-2, both splits)")
    ap.add_argument("--results", default="geo_city_reconstruction", help="results file name in benchmarks/results/")
    args = ap.parse_args()
    task = load_city_temperature()
    raw = np.stack([era5("era5_t2m").values_at(task.lon, task.lat, np.full(task.lon.size, m)) for m in range(1, 13)],
                   axis=1)
    res = {"machine": machine(), "cities": int(task.lon.size), "era5_file_r2_mean": r2_mean(raw, task.y),
           "checkpoints": {}}
    md = ["# Temperature at the 270 cities of city-temperature: the encoder's own reconstruction", "",
          f"`python benchmarks/geo_city_reconstruction.py --checkpoint {' '.join(args.checkpoint)}"
          f"{' --probe' if args.probe else ''}"
          f"{'' if args.results == ap.get_default('results') else ' --results ' + args.results}`: each encoder's "
          "reconstruction of ERA5 monthly 2 m temperature at the cities, no probe, scored against the task's truth "
          "(CHELSA v2.1 monthly means) with the task's metric (R^2 per month, averaged); the ERA5 file's own values "
          f"at the cities score **{res['era5_file_r2_mean']:.3f}** alike.", "",
          "| checkpoint | R^2 against CHELSA (mean of 12 months) | annual mean RMSE against the ERA5 file, degC |",
          "|---|---|---|"]
    worst_md, probe_md = [], []
    if args.probe:
        tp = np.stack([era5("era5_tp").values_at(task.lon, task.lat, np.full(task.lon.size, m)) for m in range(1, 13)],
                      axis=1)
        four = [2, 5, 8, 11]  # months 3, 6, 9, 12
        res["probe"] = {"seeds": list(PROBE_SEEDS), "era5 t2m+tp, 12 months": probe_scores(task, np.hstack([raw, tp])),
                        "era5 t2m, 12 months (as the reconstruction row)": probe_scores(task, raw),
                        "era5 t2m+tp, months 3/6/9/12": probe_scores(task, np.hstack([raw[:, four], tp[:, four]]))}
    for ck in args.checkpoint:
        enc = load(ck)
        rec = monthly_t2m(enc, task.lon, task.lat)
        err = rec.mean(axis=1) - raw.mean(axis=1)
        elev = enc.reconstruct(lon=task.lon, lat=task.lat, month=1)[:, enc.variable_names.index("elevation")]
        order = np.argsort(-np.abs(err))[: args.worst]
        res["checkpoints"][ck] = {
            "path": str(resolve_checkpoint(ck)), "r2_mean": r2_mean(rec, task.y),
            "annual_rmse_vs_era5": float(np.sqrt(np.mean(err**2))),
            "worst": [{"lon": float(task.lon[k]), "lat": float(task.lat[k]), "reconstructed": float(rec[k].mean()),
                       "era5": float(raw[k].mean()), "chelsa": float(task.y[k].mean()), "elevation_m": float(elev[k])}
                      for k in order]}
        if args.probe:
            emb = np.hstack([np.asarray(enc.embed(lon=task.lon, lat=task.lat, month=m), np.float32)
                             for m in (3, 6, 9, 12)])
            res["probe"][f"{ck}: own reconstruction of t2m, 12 months"] = probe_scores(task, rec)
            res["probe"][f"{ck}: embedding, months 3/6/9/12 (evaluate's features)"] = probe_scores(task, emb)
        r = res["checkpoints"][ck]
        md.append(f"| {ck} | {r['r2_mean']:.3f} | {r['annual_rmse_vs_era5']:.2f} |")
        worst_md += ["", f"Largest departures from ERA5 of {ck} (annual mean, degC):", "",
                     "| lon | lat | reconstructed | ERA5 | CHELSA | elevation (encoder), m |",
                     "|---|---|---|---|---|---|"]
        worst_md += [f"| {w['lon']:.2f} | {w['lat']:.2f} | {w['reconstructed']:.1f} | {w['era5']:.1f} | "
                     f"{w['chelsa']:.1f} | {w['elevation_m']:.0f} |" for w in r["worst"]]
        print(ck, f"R^2 {r['r2_mean']:.3f}, annual RMSE vs ERA5 {r['annual_rmse_vs_era5']:.2f}", flush=True)
    if args.probe:
        probe_md = ["", "The task's linear probe (`lamina geo evaluate`'s probe and splits, R^2 x 100, mean over seeds "
                    f"{', '.join(map(str, PROBE_SEEDS))}) on:", "", "| features | random | block |", "|---|---|---|"]
        probe_md += [f"| {k} | {100 * v['random']:.1f} | {100 * v['block']:.1f} |"
                     for k, v in res["probe"].items() if k != "seeds"]
    write_results(args.results, res, "\n".join(md + probe_md + worst_md) + "\n")


if __name__ == "__main__":
    main()
