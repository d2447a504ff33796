"""Benchmark: ProbeX dimensions on the development zoo, against the dense logistic probe on the same splits.

    lamina weights zoo build --config dev -o dev/ --workers 2
    flock /work/heavy.lock python benchmarks/weights_probex_dims.py dev/ --seeds 0,1,2

On one tree (default mlp-digits, layer fc1) and for each seed, the models are split 70 / 10 / 20 as in
``lamina weights evaluate``; each setting is trained on the train part (seen categories only) and scored by mAP on
the test part. This is how the package defaults were chosen, on the development zoo and never on the benchmark zoo.
Two worker processes, one torch thread each. Results go to ``benchmarks/results/weights_probex_dims.{json,md}``.
"""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import torch

from _common import machine, write_results
from _weights import load_tree, tree_args
from lamina.weights.eval.evaluate import EvalConfig, _split
from lamina.weights.probes.linear import DenseLinearProbe
from lamina.weights.probes.metrics import multilabel_metrics
from lamina.weights.probes.probex import ProbeX, ProbeXConfig

SETTINGS = {
    "r_U 128, r_V 16, r_T 128 (earlier default)": dict(r_u=128, r_v=16, r_t=128),
    "r_U 128, r_V 32, r_T 64": dict(r_u=128, r_v=32, r_t=64),
    "r_U 96, r_V 48, r_T 64": dict(r_u=96, r_v=48, r_t=64),
    "r_U 64, r_V 64, r_T 64 (default)": dict(r_u=64, r_v=64, r_t=64),
    "r_U 32, r_V 128, r_T 64": dict(r_u=32, r_v=128, r_t=64),
}
DENSE = "dense logistic on the flattened layer"
_D: dict = {}


def _task(args) -> dict:
    name, seed = args
    torch.set_num_threads(1)
    X, Y = _D["X"], _D["Y"]
    tr, _, te = _split(len(X), seed, EvalConfig())
    t0 = time.perf_counter()
    if name == DENSE:
        p = ProbeXConfig()
        est = DenseLinearProbe(epochs=p.epochs, lr=p.lr, weight_decay=p.weight_decay, batch_size=p.batch_size,
                               seed=seed).fit(X[tr], Y[tr])
    else:
        est = ProbeX(ProbeXConfig(seed=seed, **SETTINGS[name])).fit(X[tr], Y[tr])
    return {"setting": name, "seed": seed, "map": multilabel_metrics(Y[te], est.decision_function(X[te]))["map"],
            "fit_seconds": time.perf_counter() - t0, "n_params": est.n_params_}


def main() -> None:
    args = tree_args(__doc__)
    tree = load_tree(args.zoo, args.tree, args.layer)
    seen = tree.seen
    _D["X"], _D["Y"] = tree.X, tree.Y[:, seen]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(name, s) for s in seeds for name in [*SETTINGS, DENSE]]
    rows = []
    with mp.get_context("fork").Pool(2) as pool:
        for r in pool.imap_unordered(_task, jobs):
            print(r, flush=True)
            rows.append(r)
    lines = [f"Zoo `{args.zoo}`, tree {args.tree}, layer {args.layer}, {tree.n_models} models split 70 / 10 / 20 per "
             f"seed (seeds {args.seeds}); {len(seen)} seen categories. Test mAP mean +- std over seeds; fit time on "
             "one thread.", "", "| setting | test mAP | trainable params | fit (s) |", "|---|---|---|---|"]
    summary = {}
    for name in [*SETTINGS, DENSE]:
        rs = [r for r in rows if r["setting"] == name]
        maps = [r["map"] for r in rs]
        summary[name] = {"map": [float(np.mean(maps)), float(np.std(maps))], "n_params": rs[0]["n_params"],
                         "fit_seconds": float(np.mean([r["fit_seconds"] for r in rs]))}
        lines.append(f"| {name} | {np.mean(maps):.3f} ± {np.std(maps):.3f} | {rs[0]['n_params']:,} | "
                     f"{summary[name]['fit_seconds']:.1f} |")
    j, md = write_results("weights_probex_dims", {"machine": machine(), "zoo": str(args.zoo), "tree": args.tree,
                                                   "rows": rows, "summary": summary}, "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {j} and {md}")


if __name__ == "__main__":
    main()
