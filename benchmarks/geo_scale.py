"""Scale benchmarks of lamina.geo: a global embedding raster, and Dask with 2 local workers against 1.

1. Global raster: ``lamina geo raster --bbox -180 -90 180 90 --resolution R --month 6 --pca 16`` (R = 0.05 degrees
   by default: 7200 x 3600 = 25.9 M pixels) written as a COG, in a child process whose wall time and peak RSS
   are measured. Targets (issue 12): < 15 min on 2 cores, peak memory < 2 GB.
2. Dask scaling: the same partitioned points table (``--partitions`` Parquet files of ``--rows`` random points)
   embedded by :func:`lamina.geo.scale.embed_partitions` on a local cluster of 1 worker process and of 2, points/s
   of each (cluster start-up included, as a user sees it, and reported separately).

Writes benchmarks/results/geo_scale.{json,md}.

    python benchmarks/geo_scale.py                         # both (~15 min on 2 cores)
    python benchmarks/geo_scale.py --resolution 0.25       # a coarser raster for a quick look
    python benchmarks/geo_scale.py --skip-raster           # Dask scaling only
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_results

CHILD = """
import resource, sys, time
from lamina.geo.encoder import load
from lamina.geo.raster_file import write_raster
t = time.perf_counter()
info = write_raster(load(), sys.argv[1], bbox=(-180, -90, 180, 90), resolution=float(sys.argv[2]), month=6,
                    pca=16, progress=False, force=True)
wall = time.perf_counter() - t
print(wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, info["height"], info["width"], info["driver"])
"""


def global_raster(resolution: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "global.tif"
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", CHILD, str(out), str(resolution)], capture_output=True, text=True,
                             check=True)
        total = time.perf_counter() - t
        wall, rss_mb, h, w, driver = res.stdout.split()
        size = out.stat().st_size
    return {"resolution_deg": resolution, "height": int(h), "width": int(w), "pixels": int(h) * int(w), "bands": 16,
            "month": 6, "write_s": float(wall), "process_s": total, "peak_rss_mb": float(rss_mb),
            "file_bytes": size, "driver": driver}


def dask_scaling(partitions: int, rows: int) -> dict:
    import pandas as pd

    from lamina.geo.scale import embed_partitions

    rng = np.random.default_rng(0)
    out = {"partitions": partitions, "rows_per_partition": rows, "workers": {}}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "points"
        src.mkdir()
        for i in range(partitions):
            pd.DataFrame({"lon": rng.uniform(-180, 180, rows), "lat": rng.uniform(-60, 75, rows)}).to_parquet(
                src / f"part-{i:03d}.parquet")
        for workers in (1, 2):
            t = time.perf_counter()
            info = embed_partitions(src, Path(d) / f"out-{workers}", month=6, workers=workers, progress=False)
            wall = time.perf_counter() - t
            out["workers"][workers] = {"wall_s": wall, "rows": info["rows"], "points_per_s": info["rows"] / wall}
            print(f"{workers} worker(s): {info['rows'] / wall:,.0f} points/s ({wall:.1f} s)", flush=True)
    out["speedup_2_vs_1"] = out["workers"][1]["wall_s"] / out["workers"][2]["wall_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=float, default=0.05)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--skip-raster", action="store_true")
    args = ap.parse_args()
    res = {"machine": machine()}
    md = [f"# lamina.geo at scale ({res['machine']['cpus']} CPUs)", ""]
    if not args.skip_raster:
        r = res["global_raster"] = global_raster(args.resolution)
        md += [f"Global raster, {r['resolution_deg']:g} degrees ({r['width']} x {r['height']} = {r['pixels']:,} "
               f"pixels), month 6, 16 PCA bands, {r['driver']}: written in **{r['write_s'] / 60:.1f} min**, peak "
               f"RSS **{r['peak_rss_mb']:,.0f} MB**, file {r['file_bytes'] / 2**20:,.0f} MB (targets < 15 min, "
               "< 2 GB).", ""]
        print(md[-2], flush=True)
    s = res["dask"] = dask_scaling(args.partitions, args.rows)
    md += [f"Dask, {s['partitions']} Parquet partitions x {s['rows_per_partition']:,} points, one month, local "
           "cluster (start-up included):", "", "| workers | wall (s) | points/s |", "|---|---|---|"]
    md += [f"| {k} | {v['wall_s']:.1f} | {v['points_per_s']:,.0f} |" for k, v in s["workers"].items()]
    md += ["", f"2 workers vs 1: {s['speedup_2_vs_1']:.2f}x.", ""]
    write_results("geo_scale", res, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
