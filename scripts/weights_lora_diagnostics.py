"""How far LoRA fine-tunes of a zoo moved their adapters: for each model, the relative change of A from its
random initialisation (regenerated from the model's seed) and the rank of the update B @ A.

    python scripts/weights_lora_diagnostics.py TZOO/ -o docs/figures/weights-transformer/lora_diagnostics.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from lamina._io import write_json_atomic
from lamina.weights.layers import read_state
from lamina.weights.zoo.catalogue import Catalogue
from lamina.weights.zoo.vit import LORA_TARGETS, lora_a_init


def initial_a(seed: int, rank: int, dim: int, depth: int) -> dict[str, np.ndarray]:
    """The A matrices :func:`lamina.weights.zoo.vit.add_lora` drew for a model (same generator, same order)."""
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for i in range(depth):
        for t in LORA_TARGETS:
            out[f"blocks.{i}.attn.{t}"] = lora_a_init(rank, dim, gen).numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoo", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--models", type=int, default=200)
    args = ap.parse_args()
    with Catalogue(args.zoo) as cat:
        models = [m for m in cat.models() if "lora_rank" in m["hparams"]][: args.models]
    moved, steps = [], []
    for m in models:
        hp = m["hparams"]
        dim, depth, _ = m["arch"]["hidden"]
        st = read_state(args.zoo / m["path"])
        for layer, a0 in initial_a(hp["seed"], hp["lora_rank"], dim, depth).items():
            a = st[f"{layer}.lora_A"]
            moved.append(float(np.linalg.norm(a - a0) / np.linalg.norm(a0)))
        n = len(m["categories"]) * hp["images_per_category"]
        steps.append(hp["epochs"] * math.ceil(n / hp["batch_size"]))
    moved_a, steps_a = np.array(moved), np.array(steps)
    out = {"models": len(models), "layers_per_model": len(moved) // max(1, len(models)),
           "a_relative_change": {"median": float(np.median(moved_a)), "p10": float(np.quantile(moved_a, 0.1)),
                                 "p90": float(np.quantile(moved_a, 0.9))},
           "optimizer_steps": {"median": float(np.median(steps_a)), "min": int(steps_a.min()),
                               "max": int(steps_a.max())}}
    write_json_atomic(args.output, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
