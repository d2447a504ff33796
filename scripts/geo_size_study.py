"""Which encoder size to bundle? Pretrain several sizes on the offline default stack for the same compute.

Each size gets the same training compute, counted as 3 x forward matmul FLOPs per sample (so the comparison does
not depend on how busy the machine is); its step count follows, so a cosine schedule runs to completion. Wall
time is recorded too. The held-out (spatial blocks) reconstruction R^2 per variable and the normalised
validation MSE are written to JSON and Markdown.

    python scripts/geo_size_study.py --tflop 30 -o runs/size-study
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lamina._io import write_json_atomic, write_text_atomic
from lamina.geo.data.sources import load_default_stack
from lamina.geo.encoder import ClimateModule, EncoderConfig
from lamina.geo.pretrain import PretrainConfig, pretrain

SIZES = {
    # name: (num_layers, dim_hidden, dim_embedding, lr, schedule)
    "paper-16x512-const1e-4": (16, 512, 256, 1e-4, "constant"),
    "16x512-cos5e-4": (16, 512, 256, 5e-4, "cosine"),
    "8x256-cos1e-3": (8, 256, 256, 1e-3, "cosine"),
}


def train_flops_per_sample(cfg: EncoderConfig) -> float:
    """3 x the multiply-adds x 2 of every linear layer (forward + backward), per sample."""
    m = ClimateModule(cfg)
    return 3 * sum(2 * mod.in_features * mod.out_features for mod in m.modules() if isinstance(mod, torch.nn.Linear))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tflop", type=float, default=30.0, help="training compute per size, in 1e12 FLOPs")
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--sizes", nargs="*", default=list(SIZES))
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/size-study"))
    args = ap.parse_args()
    stack = load_default_stack()
    results = {}
    for name in args.sizes:
        layers, hidden, emb, lr, schedule = SIZES[name]
        ecfg = EncoderConfig(n_variables=len(stack.fields), dim_hidden=hidden, num_layers=layers, dim_embedding=emb)
        flops = train_flops_per_sample(ecfg)
        steps = max(10, int(args.tflop * 1e12 / (flops * args.batch_size)))
        pcfg = PretrainConfig(max_steps=steps, batch_size=args.batch_size, lr=lr, schedule=schedule,
                              warmup_steps=min(200, steps // 10), eval_every=max(10, steps // 10),
                              checkpoint_every=max(10, steps // 10), patience=1000, n_val=16384)
        t = time.perf_counter()
        pretrain(stack, ecfg, pcfg, args.out / name, resume=False, progress=False)
        meta = json.loads((args.out / name / "final" / "config.json").read_text())["metadata"]
        hm = meta["heldout_metrics"]
        results[name] = {
            "num_layers": layers, "dim_hidden": hidden, "lr": lr, "schedule": schedule,
            "parameters": sum(p.numel() for p in ClimateModule(ecfg).parameters()),
            "train_gflop_per_sample": flops / 1e9, "steps": meta["training"]["steps"],
            "samples_seen": meta["training"]["samples_seen"],
            "wall_s": round(time.perf_counter() - t, 1), "val_mse_normalised": hm["normalised_mse"],
            "r2": {k: v["r2"] for k, v in hm["per_variable"].items()},
        }
        write_json_atomic(args.out / "size_study.json", results)
        print(name, results[name]["val_mse_normalised"], flush=True)
    names = list(next(iter(results.values()))["r2"])
    lines = ["| model | params | steps | samples | val MSE (z) | " + " | ".join(names) + " |",
             "|---" * (5 + len(names)) + "|"]
    for n, r in results.items():
        lines.append(f"| {n} | {r['parameters'] / 1e6:.2f}M | {r['steps']} | {r['samples_seen'] / 1e6:.1f}M | "
                     f"{r['val_mse_normalised']:.4f} | " + " | ".join(f"{r['r2'][k]:.3f}" for k in names) + " |")
    write_text_atomic(args.out / "size_study.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
