"""Summarise a built zoo from its catalogue: build time, and per tree the models, their held-out accuracy and their
fine-tuning seconds (and LoRA ranks where there are adapters).

    python scripts/weights_zoo_summary.py ZOO/ -o docs/figures/weights-transformer/build.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lamina._io import write_json_atomic
from lamina.weights.zoo.catalogue import Catalogue


def summary(zoo: Path) -> dict:
    with Catalogue(zoo) as cat:
        models, roots = cat.models(), cat.roots()
        cfg, build_seconds = cat.get_meta("config", {}), cat.get_meta("build_seconds")
    trees = {}
    for name, root in sorted(roots.items()):
        ms = [m for m in models if m["tree"] == name]
        acc = np.array([m["accuracy"] for m in ms])
        sec = np.array([m["seconds"] for m in ms])
        row = {"models": len(ms), "arch": root["arch"], "root_file": root["path"],
               "root_accuracy": root["accuracy"], "accuracy_mean": float(acc.mean()), "accuracy_min": float(acc.min()),
               "seconds_per_model_mean": float(sec.mean())}
        ranks = [m["hparams"]["lora_rank"] for m in ms if "lora_rank" in m["hparams"]]
        if ranks:
            row["lora_rank_range"] = [int(min(ranks)), int(max(ranks))]
        trees[name] = row
    return {"zoo": cfg.get("name"), "models": len(models), "build_seconds": build_seconds, "trees": trees}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoo", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    out = summary(args.zoo)
    write_json_atomic(args.output, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
