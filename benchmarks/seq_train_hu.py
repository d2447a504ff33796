"""Benchmark: a single-layer Transformer trained on the Hu et al. random-MLP target within a wall-time budget.

    flock /work/heavy.lock python benchmarks/seq_train_hu.py --preset gather --preset plain --time-limit 600

Target: ``RandomMLP(n=20, d=5, hidden=10, seed=0)`` (inputs uniform on [0, 1], outputs standardised). For each
preset it trains under the time limit, then reports the test relative MSE (2,000 held-out sequences) beside the
linear least-squares and per-position mean-field baselines, with parameters, steps, wall and CPU seconds and the
load average (other jobs on the machine slow a run down; the load says how much). Results are merged into
``benchmarks/results/seq_train_hu.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from lamina._io import write_json_atomic, write_text_atomic
from lamina.seq.model import SeqConfig, SingleLayerTransformer
from lamina.seq.report import md_table
from lamina.seq.targets import RandomMLP
from lamina.seq.train import TrainConfig, baselines, gather_init, train

PRESETS = {
    # the reference's configuration: 4 heads, d_model 64, d_ff 256, one-hot positions, default initialisation
    "plain": {"model": dict(n_heads=4, d_model=64, d_ff=256), "init": "default",
              "train": dict(batch_size=64, lr=3e-3, num_train=None)},
    # the protocol's 50k fixed training set instead of fresh samples
    "plain-50k": {"model": dict(n_heads=4, d_model=64, d_ff=256), "init": "default",
                  "train": dict(batch_size=64, lr=3e-3, num_train=50_000)},
    # one head per position, started as the construction's gathering heads (all weights then trained)
    "gather": {"model": dict(n_heads=20, d_head=5, d_model=128, d_ff=256), "init": "gather",
               "train": dict(batch_size=64, lr=3e-3, num_train=None)},
    "gather-50k": {"model": dict(n_heads=20, d_head=5, d_model=128, d_ff=256), "init": "gather",
                   "train": dict(batch_size=64, lr=3e-3, num_train=50_000)},
    # one change at a time from "plain": learned positions, a larger batch, a smaller learning rate
    "plain-learned": {"model": dict(n_heads=4, d_model=64, d_ff=256, positional="learned"), "init": "default",
                      "train": dict(batch_size=64, lr=3e-3, num_train=None)},
    "plain-bs256": {"model": dict(n_heads=4, d_model=64, d_ff=256), "init": "default",
                    "train": dict(batch_size=256, lr=3e-3, num_train=None)},
    "plain-lr1e-3": {"model": dict(n_heads=4, d_model=64, d_ff=256), "init": "default",
                     "train": dict(batch_size=64, lr=1e-3, num_train=None)},
    # the same architecture as "gather" with the default initialisation (is it the heads or the start?)
    "heads20": {"model": dict(n_heads=20, d_head=5, d_model=128, d_ff=256), "init": "default",
                "train": dict(batch_size=64, lr=3e-3, num_train=None)},
}


def run(name: str, time_limit: float, threads: int, seed: int) -> dict:
    preset = PRESETS[name]
    target = RandomMLP(20, 5, seed=0)
    torch.manual_seed(seed)
    model = SingleLayerTransformer(SeqConfig(n_ctx=20, d_in=5, d_out=1, **{"positional": "onehot", **preset["model"]}))
    if preset["init"] == "gather":
        gather_init(model, beta=4.0)
    cfg = TrainConfig(steps=10**7, warmup_steps=200, num_test=2_000, eval_every=500, time_limit_s=time_limit,
                      threads=threads, seed=seed, **preset["train"])
    load0, cpu0 = os.getloadavg()[0], time.process_time()
    result = train(model, target, cfg, progress=False,
                   callback=lambda r: print(f"{name}: step {r['step']} {r['seconds']:.0f} s rel. MSE "
                                            f"{r['rel_mse']:.4f}", flush=True))
    cpu = time.process_time() - cpu0
    xtr, ytr = target.sample(50_000, np.random.default_rng([seed, 1]))
    xte, yte = target.sample(2_000, np.random.default_rng([seed, 2]))
    lines = baselines(target, xtr, ytr, xte, yte)
    m = result.metrics
    first_below = {thr: next((h["seconds"] for h in result.history if h["rel_mse"] < thr), None)
                   for thr in (5e-2, 1e-2)}
    return {"preset": name, "init": preset["init"], "model": model.config.to_dict(), "train": cfg.to_dict(),
            "n_params": m["n_params"], "rel_mse": m["rel_mse"], "sup_error_test": m["sup_error"],
            "steps": m["steps"], "wall_s": m["seconds"], "cpu_s": round(cpu, 1), "threads": threads,
            "load_avg_start": load0, "load_avg_end": os.getloadavg()[0],
            "seconds_to_below_5e-2": first_below[5e-2], "seconds_to_below_1e-2": first_below[1e-2],
            "baseline_linear": lines["linear"], "baseline_mean_field": lines["mean_field"],
            "history": [{k: h[k] for k in ("step", "seconds", "rel_mse")} for h in result.history]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS), help="repeatable (default: gather)")
    ap.add_argument("--time-limit", type=float, default=600.0, help="wall seconds per preset")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="seq_train_hu", help="results file stem")
    args = ap.parse_args()
    path = args.out / f"{args.name}.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for name in args.preset or ["gather"]:
        res = run(name, args.time_limit, args.threads, args.seed)
        results[f"{name}@{int(args.time_limit)}s"] = res
        write_json_atomic(path, results)
        print(f"{name}: relative MSE {res['rel_mse']:.4f} with {res['n_params']:,} parameters in {res['wall_s']} s "
              f"(linear {res['baseline_linear']:.4f}, mean field {res['baseline_mean_field']:.4f})", flush=True)
    rows = [{"run": k, **{c: v[c] for c in ("n_params", "rel_mse", "steps", "wall_s", "cpu_s", "threads",
                                            "load_avg_start", "seconds_to_below_5e-2", "seconds_to_below_1e-2",
                                            "baseline_linear", "baseline_mean_field")}} for k, v in results.items()]
    md = ("# Single-layer Transformer on the Hu et al. random-MLP target (n=20, d=5)\n\n"
          "Produced by `benchmarks/seq_train_hu.py`; relative MSE on 2,000 held-out sequences; baselines fitted on "
          "50,000. `load_avg_start` is the machine's 1-minute load when the run started (2 cores).\n\n"
          + md_table(rows, list(rows[0])))
    write_text_atomic(args.out / f"{args.name}.md", md)


if __name__ == "__main__":
    main()
