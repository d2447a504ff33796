"""Benchmark: predict and search at scale (models/s, index size per model, query latency at 1k, 4k and 100k).

    lamina weights zoo build --config benchmark -o bench/ --workers 2
    lamina weights train bench/ -o probe/ --layer fc1 --epochs 10
    python benchmarks/weights_scale.py bench/ --probe probe/

In one run, on the zoo's model files:

- predict, new path: :func:`lamina.weights.serve.predict.iter_predictions` (each file read once, batches routed with one
  projection product per signature, the projection drawn once per signature and kept), over ``--predict`` models
  of the MLP trees, interleaved; once cold (the projection drawn inside the timing) and once warm;
- predict, old path: the per-file route of lamina before this benchmark (read the file, check every tensor, route
  by ``Router.route_state``: flatten the body and multiply it by the (128, D) projection, one model at a time,
  then the expert on a batch of one) over ``--old`` of the same models; and the per-file API today
  (``ProbeXMixture.predict_file``: the batch path with one file);
- index: :func:`lamina.weights.serve.index.build_index` over ``--index-models`` models of the zoo (spread over its
  trees; models/s, the per-tree text bases included); how far its compressed text features move the text scores
  from the full features (``--agree`` models read again, 10 queries: mean and 99th percentile of |probability
  difference|, top-10 overlap); then indexes of 1,000, 4,000 and 100,000 models (the indexed rows replicated under
  new ids where there are fewer): file bytes per model, row bytes per model (without the fixed per-tree bases),
  save / load / append-one seconds, and the latency of a text query (MiniLM embedding included; the embedding
  alone is reported too) and of a ``--like`` query, median over the queries.

The machine's load average is recorded: on a shared machine the figures are lower bounds, and the ratio of the new
to the old path (measured in the same run, under the same load) is the figure to compare.
Results go to ``benchmarks/results/weights_scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine, write_results
from lamina._process import torch_threads
from lamina.weights.experts import ProbeXMixture
from lamina.weights.layers import layer_from_state, read_state
from lamina.weights.serve.index import ModelIndex, add_to_index, build_index
from lamina.weights.serve.predict import Source, catalogue_sources, iter_predictions
from lamina.weights.serve.search import probe_of, search_like, search_text
from lamina.weights.text.aligner import embed_text
from lamina.weights.trees import projector
from lamina.weights.zoo.catalogue import Catalogue

QUERIES = ["a photo of a sneaker with a white frame", "a photo of a coat", "a handwritten digit seven",
           "a photo of a bag with a bar at the bottom", "a digit three with a diagonal line", "a photo of a sandal",
           "a photo of a shirt with a corner square", "the digit zero with a side bar", "a photo of a trouser",
           "an ankle boot with a frame"]


def old_predict_file(mix: ProbeXMixture, path: Path) -> dict:
    """The per-file prediction as lamina did it before batching (kept here only to measure it)."""
    state = read_state(path)
    for name, tensor in state.items():
        if not np.all(np.isfinite(tensor)):
            raise ValueError(f"{path}: tensor {name!r} holds NaN or infinite values")
    tree, _ = mix.router_.route_state(state, source=str(path))  # body flattened again, one (128, D) product
    layer = mix.experts_[tree]["layer"]
    x = layer_from_state(state, layer, source=str(path))
    return {"tree": tree, "layer": layer, "probabilities": mix._probs(tree, x[None])[0]}


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_predict(mix: ProbeXMixture, files: list[Path], n_old: int) -> dict:
    projector.cache_clear()
    t0 = time.perf_counter()
    cold = list(iter_predictions(mix, files))
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = list(iter_predictions(mix, files))
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    old = [old_predict_file(mix, p) for p in files[:n_old]]
    t_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    api = [mix.predict_file(p) for p in files[:n_old]]
    t_api = time.perf_counter() - t0
    same = all(a["tree"] == b["tree"] and np.allclose(a["probabilities"], b["probabilities"], atol=1e-5)
               for a, b in zip(warm, old, strict=False))
    assert all(a["tree"] == b["tree"] for a, b in zip(cold, api, strict=False))
    new = _rate(len(files), t_warm)
    return {"models": len(files), "old_models": n_old, "new_cold_models_per_s": _rate(len(files), t_cold),
            "new_warm_models_per_s": new, "old_models_per_s": _rate(n_old, t_old),
            "per_file_api_models_per_s": _rate(n_old, t_api), "speedup_warm_vs_old": new / _rate(n_old, t_old),
            "old_and_new_agree": bool(same), "projection_draws": projector.draws}


def _replicate(ix: ModelIndex, n: int) -> ModelIndex:
    """``n`` rows: the index's rows repeated, copies renamed ``ID~K``."""
    reps = -(-n // len(ix))
    ids = [i if k == 0 else f"{i}~{k}" for k in range(reps) for i in ix.ids][:n]
    take = np.arange(n) % len(ix)
    return ModelIndex(ids, ix.tree_names, ix.tree_codes[take], ix.probs[take], ix.q[take], bases=ix.bases,
                      categories=ix.categories, probe=ix.probe)


def agreement(mix: ProbeXMixture, full: ModelIndex, sources: list[Source]) -> dict:
    """Text scores from the index's compressed features against the full features, on ``sources`` (read again)."""
    rows = [r for r in iter_predictions(mix, sources) if "error" not in r]
    names = full.tree_names
    q = np.stack([r["features"] @ full.bases[r["tree"]].astype(np.float32) for r in rows])
    sub = ModelIndex([r["model"] for r in rows], names, [names.index(r["tree"]) for r in rows],
                     np.stack([r["probabilities"] for r in rows]), q, bases=full.bases, categories=full.categories,
                     probe=full.probe)
    errs, overlap = [], []
    for query in QUERIES:
        with torch_threads(1):
            t = embed_text([query])
        exact = np.array([mix.experts_[r["tree"]]["aligner"].predict_proba_features(r["features"][None], t)[0, 0]
                          for r in rows])
        approx = sub.text_scores(mix, t)
        errs.append(np.abs(exact - approx))
        overlap.append(len(set(np.argsort(-exact)[:10]) & set(np.argsort(-approx)[:10])) / 10)
    e = np.concatenate(errs)
    return {"models": len(rows), "queries": len(QUERIES), "mean_abs_prob_error": float(e.mean()),
            "p99_abs_prob_error": float(np.quantile(e, 0.99)), "top10_overlap": float(np.mean(overlap))}


def _median_ms(fn, items) -> float:
    fn(items[0])  # warm-up
    times = []
    for q in items:
        t0 = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def bench_index(mix: ProbeXMixture, ix: ModelIndex, new_model: Source, tmp: Path) -> dict:
    path = tmp / f"{len(ix)}.index"
    t0 = time.perf_counter()
    ix.save(path)
    t_save = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = ModelIndex.load(path)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    add_to_index(path, mix, [new_model], batch_size=1)
    t_add = time.perf_counter() - t0
    fixed = sum(b.nbytes for b in loaded.bases.values())
    rows = loaded.probs.nbytes + loaded.q.nbytes + loaded.tree_codes.nbytes + sum(len(i) + 1 for i in loaded.ids)
    likes = [loaded.ids[i] for i in np.linspace(0, len(loaded) - 1, 10).astype(int)]
    row = {"models": len(loaded), "file_bytes_per_model": path.stat().st_size / len(loaded),
           "row_bytes_per_model": rows / len(loaded), "fixed_bytes": fixed, "save_s": t_save, "load_s": t_load,
           "append_one_s": t_add,
           "text_query_ms": _median_ms(lambda q: search_text(mix, q, top=10, index=loaded), QUERIES),
           "like_query_ms": _median_ms(lambda m: search_like(mix, m, top=10, index=loaded), likes)}
    path.unlink()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--probe", type=Path, default=None, help="default: the probe trained for the zoo")
    ap.add_argument("--predict", type=int, default=600, help="MLP models for the new predict path")
    ap.add_argument("--old", type=int, default=100, help="of those, models for the old per-file path")
    ap.add_argument("--sizes", default="1000,4000,100000")
    ap.add_argument("--index-models", type=int, default=4000, help="real models indexed (spread over the zoo); "
                    "larger indexes replicate their rows")
    ap.add_argument("--agree", type=int, default=800, help="models (spread over the zoo) for the score agreement")
    args = ap.parse_args()
    mix = ProbeXMixture.load(args.probe or probe_of(args.zoo))
    load_start = os.getloadavg()
    with Catalogue(args.zoo) as cat:
        mlp = [m for m in cat.models() if m["tree"].startswith("mlp-")]
    by_tree = {t: [m for m in mlp if m["tree"] == t] for t in sorted({m["tree"] for m in mlp})}
    inter = [ms[i] for i in range(max(map(len, by_tree.values()))) for ms in by_tree.values() if i < len(ms)]
    files = [args.zoo / m["path"] for m in inter[-args.predict:]]  # the last ones: not in a subset-trained probe
    predict = bench_predict(mix, files, args.old)
    print("predict", predict, flush=True)

    every = catalogue_sources(args.zoo)
    sources = every[:: max(1, len(every) // args.index_models)][: args.index_models]  # spread over the trees
    t0 = time.perf_counter()
    full, skipped = build_index(mix, sources)
    t_build = time.perf_counter() - t0
    build = {"models": len(full), "skipped": len(skipped), "seconds": t_build,
             "models_per_s": _rate(len(sources), t_build)}
    print("index build", build, flush=True)
    agree = agreement(mix, full, sources[:: max(1, len(sources) // args.agree)])
    print("agreement", agree, flush=True)
    newcomer = Source(sources[0].path, "newcomer")
    with torch_threads(1):  # as ProbeXMixture.text_scores embeds a query
        embed_ms = _median_ms(lambda q: embed_text([q]), QUERIES)
    sizes = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            sizes.append(bench_index(mix, _replicate(full, n), newcomer, Path(tmp)))
            print("index", sizes[-1], flush=True)
    load_end = os.getloadavg()

    at_max = sizes[-1]
    targets = {"predict >= 100 models/s": predict["new_warm_models_per_s"] >= 100,
               f"text query < 100 ms at {at_max['models']}": at_max["text_query_ms"] < 100,
               "index <= 1 KB per model (row)": all(r["row_bytes_per_model"] <= 1024 for r in sizes),
               f"index file <= 1 KB per model at {at_max['models']}": at_max["file_bytes_per_model"] <= 1024}
    lines = [f"Zoo `{args.zoo}` ({len(every)} models, {len(sources)} indexed), probe `{args.probe}`. Load average "
             f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end, on {os.cpu_count()} CPUs "
             "(on a shared machine the rates are lower bounds; compare the ratio).", "",
             "| predict | models | models/s |", "|---|---|---|",
             f"| new, warm (projection kept) | {predict['models']} | {predict['new_warm_models_per_s']:.1f} |",
             f"| new, cold (projections drawn inside) | {predict['models']} | {predict['new_cold_models_per_s']:.1f} |",
             f"| old per-file route | {predict['old_models']} | {predict['old_models_per_s']:.1f} |",
             f"| per-file API today (batch of one) | {predict['old_models']} | "
             f"{predict['per_file_api_models_per_s']:.1f} |", "",
             f"New vs old: {predict['speedup_warm_vs_old']:.1f}x; same trees and probabilities (1e-5): "
             f"{predict['old_and_new_agree']}. Index build: {build['models']} models in {build['seconds']:.1f} s "
             f"({build['models_per_s']:.1f} models/s). Query embedding alone (MiniLM): {embed_ms:.1f} ms.", "",
             f"Text scores from the index ({full.q.shape[1]} numbers per model) against the full "
             f"{max(mix.experts_[t]['aligner'].n_features for t in mix.experts_)} features, {agree['models']} "
             f"models x {agree['queries']} queries: mean |dp| {agree['mean_abs_prob_error']:.4f}, 99th percentile "
             f"{agree['p99_abs_prob_error']:.4f}, top-10 overlap {agree['top10_overlap']:.2f}.", "",
             "| indexed models | file bytes/model | row bytes/model | fixed bytes (bases) | text query (ms) | "
             "like query (ms) | load (s) | save (s) | append one (s) |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['models']} | {r['file_bytes_per_model']:.0f} | {r['row_bytes_per_model']:.0f} | "
              f"{r['fixed_bytes']} | {r['text_query_ms']:.1f} | {r['like_query_ms']:.1f} | {r['load_s']:.3f} | "
              f"{r['save_s']:.3f} | {r['append_one_s']:.3f} |" for r in sizes]
    lines += ["", "Targets: " + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()) + "."]
    j, md = write_results("weights_scale", {"machine": machine(), "load_average": [load_start, load_end],
                                             "zoo": str(args.zoo), "probe": str(args.probe), "predict": predict,
                                             "index_build": build, "agreement": agree, "embed_query_ms": embed_ms,
                                             "index": sizes,
                                             "targets": targets}, "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {j} and {md}")


if __name__ == "__main__":
    main()
