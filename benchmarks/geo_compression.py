"""Storage and query cost of climate encoders versus standard raster storage of the same fields (issue 3, item 5).

For the source fields of the bundled default (lamina.geo.data.sources.load_default_stack), measured in one run:

1. Rate-distortion. Error of each storage scheme at the same evaluation pixels (a seeded random sample of pixels
   with data, per field, every month), in z-units (the error divided by the field's standard deviation), averaged
   over the variables:
   - the encoder(s) given, with float32 weights and with 16-bit weights (float16 and bfloat16: weights rounded,
     then used in float32), bytes = parameters of the network and head x 4 or x 2;
   - the grids block-averaged by a factor k (k x k pixels -> 1), stored as float16, and interpolated back
     bilinearly (nearest coarse pixel where a bilinear neighbour has no data), for a range of k;
   - lossless zstd of the native arrays (the arrays as lamina reads them), error 0.
2. Point-query throughput (points/s, all variables per point): encoder reconstruction, nearest-pixel lookup in the
   decoded in-memory rasters, and GeoCLIP's location encoder (512-d embedding, if the wheel is installed).

Writes JSON, Markdown and a rate-distortion PNG. Wrap in ``flock /work/heavy.lock`` on a shared machine::

    python benchmarks/geo_compression.py --checkpoint CKPT [--checkpoint CKPT2 ...] -o benchmarks/results
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lamina._io import atomic_path, write_json_atomic, write_text_atomic
from lamina.geo.data.grid import Grid
from lamina.geo.data.rasters import Field
from lamina.geo.data.readers import ArrayReader
from lamina.geo.data.sources import load_default_stack
from lamina.geo.encoder import load

FACTORS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def native_arrays(stack) -> list[np.ndarray]:
    """(L, H, W) raw arrays of every field, in the dtype the reader holds them."""
    return [f.raw_array() for f in stack.fields]


def sample_pixels(stack, decoded, n_per_field: int, seed: int):
    """Per field: pixel-centre lon, lat, month and true value of up to ``n_per_field`` random pixels with data."""
    rng = np.random.default_rng(seed)
    samples = []
    for f, data in zip(stack.fields, decoded, strict=True):
        flat = np.flatnonzero(np.isfinite(data.ravel()))
        pick = rng.choice(flat, size=min(n_per_field, flat.size), replace=False)
        layer, row, col = np.unravel_index(pick, data.shape)
        lon, lat = f.grid.centres(row, col)
        month = layer + 1 if f.monthly else rng.integers(1, 13, pick.size)
        samples.append({"lon": lon, "lat": lat, "month": month, "truth": data.ravel()[pick].astype(np.float64)})
    return samples


def coarse_field(field: Field, data: np.ndarray, k: int) -> tuple[Field, Field, int]:
    """Block means of ``data`` (L, H, W) on a grid ``k`` times coarser, stored as float16.

    The coarse grid has ceil(H / k) x ceil(W / k) pixels covering exactly the same extent (so a global grid stays
    global); fine pixel (r, c) falls in coarse pixel (r * h // H, c * w // W). No-data pixels are left out of the
    means. Returns the coarse field read bilinearly, read by nearest pixel, and its bytes.
    """
    _, H, W = data.shape
    h, w = -(-H // k), -(-W // k)
    row_starts = np.flatnonzero(np.diff((np.arange(H) * h) // H, prepend=-1))
    col_starts = np.flatnonzero(np.diff((np.arange(W) * w) // W, prepend=-1))
    valid = np.isfinite(data)
    sums = np.add.reduceat(np.add.reduceat(np.where(valid, data, 0.0), row_starts, axis=1), col_starts, axis=2)
    counts = np.add.reduceat(np.add.reduceat(valid.astype(np.float32), row_starts, axis=1), col_starts, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        coarse = np.where(counts > 0, sums / counts, np.nan).astype(np.float16)  # (L, h, w)
    g = field.grid
    cg = Grid(g.lon_left, g.lat_top, g.dlon * W / w, g.dlat * H / h, h, w)
    reader = ArrayReader(coarse, cg)
    return (Field(field.variable, reader, interpolation="bilinear"), Field(field.variable, reader, "nearest"),
            coarse.nbytes)  # fmt: skip


def rmse_z(pred: np.ndarray, truth: np.ndarray, std: float) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)) / std)


def encoder_errors(enc, samples, stds) -> list[float]:
    out = []
    for v, s in enumerate(samples):
        pred = enc.reconstruct(lon=s["lon"], lat=s["lat"], month=s["month"])[:, v].astype(np.float64)
        out.append(rmse_z(pred, s["truth"], stds[v]))
    return out


def with_16bit_weights(enc, dtype: torch.dtype):
    """A copy of the encoder whose weights went through ``dtype`` (storage precision), computed in float32."""
    import copy

    twin = copy.deepcopy(enc)
    with torch.no_grad():
        for p in twin.module.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return twin


def throughput(fn, n: int, repeats: int) -> float:
    """Best of ``repeats`` timings of ``fn()``, as points per second."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    import zstandard

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", default=None, help="encoder checkpoint dir (repeatable; "
                    "'bundled' for the bundled one); default: the bundled one")  # fmt: skip
    ap.add_argument("--points", type=int, default=20_000, help="evaluation pixels per field")
    ap.add_argument("--query-points", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--zstd-level", type=int, default=19)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    t_start = time.perf_counter()

    stack = load_default_stack()
    names = [f.variable.name for f in stack.fields]
    raw = native_arrays(stack)
    decoded = [f.reader.decode(a) for f, a in zip(stack.fields, raw, strict=True)]
    stds = [float(np.nanstd(d)) for d in decoded]
    samples = sample_pixels(stack, decoded, args.points, args.seed)
    native_bytes = int(sum(a.nbytes for a in raw))
    t = time.perf_counter()
    cctx = zstandard.ZstdCompressor(level=args.zstd_level)
    zstd_bytes = int(sum(len(cctx.compress(np.ascontiguousarray(a).tobytes())) for a in raw))
    zstd_seconds = time.perf_counter() - t
    print(f"native {native_bytes / 1e6:.1f} MB, zstd-{args.zstd_level} {zstd_bytes / 1e6:.2f} MB", flush=True)

    grid_curve = []
    for k in FACTORS:
        errs, nbytes = [], 0
        for f, d, s, sd in zip(stack.fields, decoded, samples, stds, strict=True):
            bil, near, b = coarse_field(f, d, k)
            nbytes += b
            pred = bil.values_at(s["lon"], s["lat"], s["month"]).astype(np.float64)
            miss = ~np.isfinite(pred)
            pred[miss] = near.values_at(s["lon"][miss], s["lat"][miss], s["month"][miss])
            errs.append(rmse_z(pred, s["truth"], sd))
        grid_curve.append({"factor": k, "bytes": nbytes, "rmse_z_mean": float(np.mean(errs)),
                           "rmse_z": dict(zip(names, errs, strict=True))})  # fmt: skip
        print(f"grid /{k}: {nbytes / 1e6:.3f} MB, RMSE {np.mean(errs):.3f} z", flush=True)

    encoders = []
    paths = [None if p == "bundled" else p for p in (args.checkpoint or [None])]
    for path in paths:
        enc = load(path)
        n_params = sum(p.numel() for p in enc.module.parameters())
        entry = {"checkpoint": path or "bundled", "architecture": enc.config.to_dict(), "parameters": n_params,
                 "variables": enc.variable_names, "points": {}}  # fmt: skip
        if enc.variable_names != names:
            raise SystemExit(f"{path}: variables {enc.variable_names} differ from the default stack's {names}")
        for label, model, width in (("float32", enc, 4), ("float16", with_16bit_weights(enc, torch.float16), 2),
                                    ("bfloat16", with_16bit_weights(enc, torch.bfloat16), 2)):  # fmt: skip
            errs = encoder_errors(model, samples, stds)
            entry["points"][label] = {"bytes": n_params * width, "rmse_z_mean": float(np.mean(errs)),
                                      "rmse_z": dict(zip(names, errs, strict=True))}  # fmt: skip
            print(f"{entry['checkpoint']} {label}: {n_params * width / 1e6:.2f} MB, RMSE {np.mean(errs):.3f} z",
                  flush=True)  # fmt: skip
        encoders.append((entry, enc))

    # point queries
    rng = np.random.default_rng(args.seed + 1)
    n = args.query_points
    qlon = rng.uniform(-180, 180, n)
    qlat = np.rad2deg(np.arcsin(rng.uniform(-1, 1, n)))
    qmonth = rng.integers(1, 13, n)
    in_memory = [Field(f.variable, ArrayReader(d, f.grid), "nearest") for f, d in zip(stack.fields, decoded,
                                                                                       strict=True)]  # fmt: skip

    def lookup():
        return np.column_stack([f.values_at(qlon, qlat, qmonth) for f in in_memory])

    queries = {"nearest_pixel_in_memory": throughput(lookup, n, args.repeats)}
    for entry, enc in encoders:
        queries[f"encoder:{entry['checkpoint']}"] = throughput(
            lambda enc=enc: enc.reconstruct(lon=qlon, lat=qlat, month=qmonth), n, args.repeats
        )
    try:
        from lamina.geo.eval.geoclip import GeoCLIPEncoder, geoclip_available

        if geoclip_available():
            gc = GeoCLIPEncoder()
            queries["geoclip_embedding"] = throughput(lambda: gc.embed(lon=qlon, lat=qlat), n, args.repeats)
    except ImportError:  # pragma: no cover
        pass
    for k, v in queries.items():
        print(f"{k}: {v:,.0f} points/s", flush=True)

    result = {
        "benchmark": "geo_compression",
        "fields": [
            {"name": nm, "units": f.variable.units, "shape": list(a.shape), "dtype": str(a.dtype), "std": sd}
            for nm, f, a, sd in zip(names, stack.fields, raw, stds, strict=True)
        ],
        "native_bytes": native_bytes,
        "zstd": {"level": args.zstd_level, "bytes": zstd_bytes, "seconds": zstd_seconds},
        "grid_float16_bilinear": grid_curve,
        "encoders": [e for e, _ in encoders],
        "query_points_per_s": queries,
        "settings": vars(args) | {"out": str(args.out)},
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0]},
        "seconds": time.perf_counter() - t_start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "geo_compression.json", result)
    write_text_atomic(args.out / "geo_compression.md", markdown(result))
    figure(result, args.out / "geo_compression.png")
    print(markdown(result))


def markdown(r: dict) -> str:
    mb = 1e6
    lines = [
        "# Compression of the source fields: encoder versus standard storage",
        "",
        f"Native arrays {r['native_bytes'] / mb:.1f} MB; lossless zstd-{r['zstd']['level']} "
        f"{r['zstd']['bytes'] / mb:.2f} MB. Error: RMSE / field std (z-units), mean over "
        f"{len(r['fields'])} variables, at {r['settings']['points']} random pixels with data per field.",
        "",
        "| storage | bytes (MB) | ratio vs native | RMSE (z) |",
        "|---|---:|---:|---:|",
        f"| native arrays | {r['native_bytes'] / mb:.2f} | 1 | 0 |",
        f"| zstd-{r['zstd']['level']} (lossless) | {r['zstd']['bytes'] / mb:.2f} | "
        f"{r['native_bytes'] / r['zstd']['bytes']:.1f} | 0 |",
    ]
    for e in r["encoders"]:
        c = e["architecture"]
        for label, p in e["points"].items():
            lines.append(f"| encoder {c['num_layers']}x{c['dim_hidden']} {label} ({e['checkpoint']}) | "
                         f"{p['bytes'] / mb:.2f} | {r['native_bytes'] / p['bytes']:.0f} | {p['rmse_z_mean']:.3f} |")
    for g in r["grid_float16_bilinear"]:
        lines.append(f"| grid / {g['factor']} float16 + bilinear | {g['bytes'] / mb:.3f} | "
                     f"{r['native_bytes'] / g['bytes']:.0f} | {g['rmse_z_mean']:.3f} |")
    lines += ["", "Point queries (all variables per point, " f"{r['settings']['query_points']} random points):", ""]
    lines += [f"- {k}: {v:,.0f} points/s" for k, v in r["query_points_per_s"].items()]
    env = r["environment"]
    lines += ["", f"{env['cpus']} CPUs, torch {env['torch']} with {env['torch_threads']} threads, 1-min load "
              f"average at the end {env['load_avg_1min']:.1f}; total {r['seconds']:.0f} s."]  # fmt: skip
    return "\n".join(lines) + "\n"


def figure(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    g = r["grid_float16_bilinear"]
    ax.plot([x["bytes"] for x in g], [x["rmse_z_mean"] for x in g], "o-", color="0.4",
            label="grid block-mean, float16, bilinear back")  # fmt: skip
    for x in g:
        ax.annotate(f"/{x['factor']}", (x["bytes"], x["rmse_z_mean"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    markers = {"float32": "s", "float16": "^", "bfloat16": "v"}
    for e in r["encoders"]:
        c = e["architecture"]
        for label, p in e["points"].items():
            ax.scatter(p["bytes"], p["rmse_z_mean"], marker=markers[label], s=50, zorder=3,
                       label=f"encoder {c['num_layers']}x{c['dim_hidden']} {label}")  # fmt: skip
    ax.axvline(r["zstd"]["bytes"], color="tab:green", ls="--", label=f"zstd-{r['zstd']['level']} lossless")
    ax.axvline(r["native_bytes"], color="k", ls=":", label="native arrays")
    ax.set_xscale("log")
    ax.set_xlabel("bytes")
    ax.set_ylabel("RMSE / field std (mean over variables)")
    ax.set_title("Source fields of the bundled default: error versus storage")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


if __name__ == "__main__":
    main()
