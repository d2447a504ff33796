"""Benchmark: the MiniLM x WordNet tree (a root released by others) as a user meets it: predict rate on PEFT
adapter folders, search by text, tree discovery over every tree lamina has (image and text), and the build itself.

    lamina weights zoo build --config minilm-wordnet -o mzoo/ --workers 2
    lamina weights train mzoo/ -o mprobe/ --heldout 2,7,12,17,22,27,32,37 \\
        --probex-grid 'activation=linear,weight_decay=1e-3,epochs=60'
    lamina weights zoo build --config small -o szoo/ --workers 2                       # MLP and CNN trees
    lamina weights zoo build --config benchmarks/zoos/vit-discovery.toml -o vzoo/      # ViT LoRA and full trees
    python benchmarks/weights_minilm_wordnet.py mzoo/ --probe mprobe/ --with szoo/ --with vzoo/

The probe scores (ProbeX, dense logistic, ridge, low-rank on the test models of each tree, zero-shot on the held-out
categories) come from ``lamina weights evaluate mzoo/ -o REPORT`` (its report is committed beside this file's
results). Here:

- build: models per tree, the fine-tunes' own test accuracy on glosses they never saw, seconds per fine-tune, bytes
  per model folder (from the catalogue);
- predict: :func:`lamina.weights.serve.predict.iter_predictions` over the LoRA adapter folders (each read through
  the PEFT reader, routed, read by its tree's expert), once cold (projection drawn in the timing), once warm;
- search by text: for every category, the query "a model that recognises {plural}" ranks every indexed model by
  the probe's text readout; average precision and precision at 10 against the catalogue's truth, for the
  categories the probe saw and for the held-out ones (zero-shot), beside chance (the share of models trained on
  the category);
- discovery: the weights of every model of every zoo given (MiniLM LoRA and full, and the image zoos of
  ``--with``) fingerprinted and clustered with no labels; adjusted Rand index against the true trees.

Results go to ``benchmarks/results/weights_minilm_wordnet.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from _common import machine, write_results
from lamina.weights.experts import ProbeXMixture
from lamina.weights.probes.metrics import labels_matrix
from lamina.weights.serve.predict import Source, iter_predictions
from lamina.weights.trees import adjusted_rand, discover_trees, fingerprint_files, projector
from lamina.weights.zoo.catalogue import Catalogue
from lamina.weights.zoo.wordnet import wordnet_vocabulary


def _catalogue(zoo: Path) -> tuple[list[dict], list[dict], dict]:
    with Catalogue(zoo) as cat:
        return cat.models(), cat.get_meta("vocabulary", []), {"build_seconds": cat.get_meta("build_seconds")}


def _bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def build_summary(zoo: Path, models: list[dict], meta: dict) -> dict:
    out = {"build_seconds": meta["build_seconds"]}
    for tree in sorted({m["tree"] for m in models}):
        ms = [m for m in models if m["tree"] == tree]
        acc = np.array([m["accuracy"] for m in ms])
        k = np.array([len(m["categories"]) for m in ms])
        out[tree] = {"models": len(ms), "accuracy_mean": float(acc.mean()), "accuracy_min": float(acc.min()),
                     "chance_accuracy_mean": float(np.mean(1 / k)),
                     "seconds_per_model": float(np.mean([m["seconds"] for m in ms])),
                     "bytes_per_model": float(np.mean([_bytes(zoo / m["path"]) for m in ms[:50]]))}
    return out


def bench_predict(mix: ProbeXMixture, paths: list[Path]) -> dict:
    projector.cache_clear()
    t0 = time.perf_counter()
    cold = list(iter_predictions(mix, [Source(p) for p in paths]))
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = list(iter_predictions(mix, [Source(p) for p in paths]))
    t_warm = time.perf_counter() - t0
    errors = [r for r in warm if "error" in r]
    routed = {r.get("tree") for r in warm if "error" not in r}
    return {"models": len(paths), "cold_models_per_s": len(paths) / t_cold, "warm_models_per_s": len(paths) / t_warm,
            "errors": len(errors), "trees_routed_to": sorted(routed),
            "cold_and_warm_agree": all(np.allclose(a["probabilities"], b["probabilities"]) for a, b in
                                       zip(cold, warm, strict=True) if "error" not in a)}


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(-s, kind="stable")
    hits = y[order]
    if hits.sum() == 0:
        return float("nan")
    prec = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((prec * hits).sum() / hits.sum())


def bench_search(mix: ProbeXMixture, models: list[dict], heldout: list[int]) -> dict:
    vocab = wordnet_vocabulary()
    by_id = {m["id"]: m for m in models}
    ids = [i for i in mix.index_ids_ if i in by_id]
    Y = labels_matrix([by_id[i]["categories"] for i in ids], len(vocab))
    pos = np.array([mix.index_ids_.index(i) for i in ids])
    rows = []
    for c in vocab:
        query = f"a model that recognises {c.plural}"
        s = mix.text_scores(query)[pos]
        y = Y[:, c.index]
        top = np.argsort(-s, kind="stable")[:10]
        rows.append({"category": c.name, "query": query, "heldout": c.index in heldout,
                     "ap": _average_precision(y, s), "p_at_10": float(y[top].mean()), "chance": float(y.mean())})

    def mean(key, held):
        v = [r[key] for r in rows if r["heldout"] == held and not np.isnan(r[key])]
        return float(np.mean(v)) if v else float("nan")

    return {"models": len(ids), "rows": rows,
            **{f"{k}_{'heldout' if h else 'seen'}": mean(k, h) for k in ("ap", "p_at_10", "chance")
               for h in (False, True)}}


def bench_discovery(zoos: list[Path]) -> dict:
    paths, true = [], []
    for z in zoos:
        models, _, _ = _catalogue(z)
        paths += [z / m["path"] for m in models]
        true += [f"{z.name}:{m['tree']}" for m in models]
    t0 = time.perf_counter()
    fp = fingerprint_files(paths)
    found = discover_trees(fp)
    kept = [true[i] for i in fp.kept]
    return {"models": len(paths), "true_trees": sorted(set(true)), "n_true": len(set(true)),
            "n_found": len(set(found.tolist())), "ari": adjusted_rand(kept, found), "skipped": len(fp.skipped),
            "seconds": time.perf_counter() - t0}


def markdown(res: dict) -> str:
    b, p, s, d = res["build"], res["predict"], res["search"], res["discovery"]
    lines = ["# MiniLM x WordNet tree: build, predict, search, discovery", "",
             f"Command: `{res['command']}`  ", f"Machine: {res['machine']['cpus']} CPUs, load average "
             f"{res['load_average']}", "", "## Build (catalogue)", "",
             "| tree | models | fine-tune test accuracy (mean / min) | chance | s per model | MB per model |",
             "|---|---|---|---|---|---|"]
    for t, v in b.items():
        if isinstance(v, dict):
            lines.append(f"| {t} | {v['models']} | {v['accuracy_mean']:.3f} / {v['accuracy_min']:.3f} | "
                         f"{v['chance_accuracy_mean']:.3f} | {v['seconds_per_model']:.1f} | "
                         f"{v['bytes_per_model'] / 2**20:.2f} |")
    built = (f"{b['build_seconds'] / 60:.1f} min (all finished runs of the resumable build)"
             if b["build_seconds"] else "not recorded (the build was stopped before it finished)")
    worker = sum(v["seconds_per_model"] * v["models"] for v in b.values() if isinstance(v, dict)) / 60
    lines += ["", f"Build time: {built}; {worker:.0f} worker-minutes of fine-tuning in the catalogue.", "",
              "## Predict on PEFT adapter folders", "",
              f"{p['models']} folders: cold {p['cold_models_per_s']:.1f} models/s, warm "
              f"{p['warm_models_per_s']:.1f} models/s (target >= 100); errors {p['errors']}; routed to "
              f"{', '.join(p['trees_routed_to'])}.", "", "## Search by text (\"a model that recognises ...\")", "",
              "| categories | mean AP | precision at 10 | chance |", "|---|---|---|---|",
              f"| seen by the probe | {s['ap_seen']:.3f} | {s['p_at_10_seen']:.3f} | {s['chance_seen']:.3f} |",
              f"| held out (zero-shot) | {s['ap_heldout']:.3f} | {s['p_at_10_heldout']:.3f} | "
              f"{s['chance_heldout']:.3f} |", "", "| category | held out | AP | P@10 | chance |",
              "|---|---|---|---|---|"]
    for r in s["rows"]:
        lines.append(f"| {r['category']} | {'yes' if r['heldout'] else ''} | {r['ap']:.3f} | {r['p_at_10']:.2f} | "
                     f"{r['chance']:.3f} |")
    lines += ["", "## Tree discovery over every zoo (weights only)", "",
              f"{d['models']} models of {d['n_true']} trees ({', '.join(d['true_trees'])}): {d['n_found']} trees "
              f"found, adjusted Rand index **{d['ari']:.3f}** (target >= 0.95), {d['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("zoo", type=Path, help="the minilm-wordnet zoo")
    ap.add_argument("--probe", type=Path, required=True, help="a probe trained on it (`lamina weights train`)")
    ap.add_argument("--with", dest="others", type=Path, action="append", default=[],
                    help="another zoo whose trees join the discovery (repeatable)")
    ap.add_argument("--predict", type=int, default=500, help="LoRA folders to predict")
    ap.add_argument("--name", default="weights_minilm_wordnet")
    args = ap.parse_args()
    models, _, meta = _catalogue(args.zoo)
    mix = ProbeXMixture.load(args.probe)
    heldout = list(mix.config_.heldout)
    lora = [args.zoo / m["path"] for m in models if m["tree"] == "minilm-lora"][: args.predict]
    res = {"command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]), "machine": machine(),
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    print("build summary", flush=True)
    res["build"] = build_summary(args.zoo, models, meta)
    print("predict", flush=True)
    res["predict"] = bench_predict(mix, lora)
    print("search", flush=True)
    res["search"] = bench_search(mix, models, heldout)
    print("discovery", flush=True)
    res["discovery"] = bench_discovery([args.zoo, *args.others])
    j, m = write_results(args.name, json.loads(json.dumps(res, default=float)), markdown(res))
    print(f"wrote {j} and {m}")


if __name__ == "__main__":
    main()
