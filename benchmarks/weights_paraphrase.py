"""Benchmark: search by reworded queries, with the text readout trained on one prompt or on many phrasings.

    lamina weights zoo build --config dev -o dev/ --workers 2
    python benchmarks/weights_paraphrase.py --zoo dev/
    python benchmarks/weights_paraphrase.py --build dev --zoo-seed 11 --work /tmp/para11/   # a fresh zoo

On one tree of a zoo (default mlp-digits, layer fc1), as ``lamina weights train`` does: one ProbeX expert on 85% of
the models over every category, then two text readouts (:class:`lamina.weights.text.aligner.TextAligner`) on the same
labels, read against

- ``one prompt``: the category prompt only (lamina before the phrasings);
- ``phrasings``: every phrasing of :func:`lamina.weights.text.phrasings.category_phrasings`, one drawn per category at
  each step (what ``lamina weights train`` now does).

Every model of the tree is ranked by each reworded query of ``tests/weights/paraphrases.json`` as search does (the
readout of the query's MiniLM embedding), and precision@10 counts the top ten models whose training categories
(catalogue) hold the query's target category. The ``tuning`` queries chose the method on the dev zoo; the
``heldout`` ones give the figure. A second part checks that zero-shot is not worse: a 75 / 25 split of the models,
an expert on the seen categories (held-out: :func:`lamina.weights.eval.evaluate.default_heldout`), both readouts, mAP on
the test models for seen categories (``text``) and for held-out ones through their prompts (``zero-shot``).

Results go to ``benchmarks/results/weights_paraphrase.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from _common import machine, write_results
from _weights import load_tree
from lamina.weights.probes.metrics import multilabel_metrics
from lamina.weights.probes.probex import ProbeX, ProbeXConfig
from lamina.weights.text.aligner import TextAligner, embed_phrasings, embed_text
from lamina.weights.text.phrasings import category_phrasings

QUERIES = Path(__file__).resolve().parents[1] / "tests" / "weights" / "paraphrases.json"


def precision_at_10(scores: np.ndarray, Y: np.ndarray, targets: list[int]) -> list[float]:
    """Per query j: share of the 10 best-scored models (scores[:, j]) trained on category targets[j]."""
    return [float(Y[np.argsort(-scores[:, j], kind="stable")[:10], c].mean()) for j, c in enumerate(targets)]


def _readouts(R, Y, T, phrased, seed):
    out = {}
    for name, texts in (("one prompt", T), ("phrasings", phrased)):
        t0 = time.perf_counter()
        out[name] = TextAligner(seed=seed).fit(R, Y, texts)
        print(f"  {name}: readout trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", type=Path, help="an existing zoo folder")
    ap.add_argument("--build", help="build a zoo of this bundled config (dev or small) instead")
    ap.add_argument("--zoo-seed", type=int, default=11, help="zoo seed of --build")
    ap.add_argument("--work", type=Path, default=Path("paraphrase-zoo"), help="folder of the --build zoo")
    ap.add_argument("--tree", default="mlp-digits")
    ap.add_argument("--layer", default="fc1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-zero-shot", action="store_true", help="skip the zero-shot check")
    ap.add_argument("--name", default="weights_paraphrase", help="results file name")
    args = ap.parse_args()
    torch.set_num_threads(2)
    zoo = args.zoo
    if zoo is None:
        if not args.build:
            raise SystemExit("error: give --zoo DIR or --build CONFIG")
        from lamina.weights.zoo.build import ZooConfig, build_zoo

        cfg = ZooConfig.load(args.build)
        cfg.seed = args.zoo_seed
        build_zoo(cfg, args.work, workers=2, quiet=True)
        zoo = args.work
    t0 = time.perf_counter()
    tree = load_tree(zoo, args.tree, args.layer)
    names, prompts = [v["name"] for v in tree.vocab], [v["prompt"] for v in tree.vocab]
    T = embed_text(prompts)
    phrased = embed_phrasings(category_phrasings(names, prompts))
    queries = json.loads(QUERIES.read_text())
    index = {n: i for i, n in enumerate(names)}
    qsets = {k: ([q for q, _ in queries[k]], [index[c] for _, c in queries[k]]) for k in ("tuning", "heldout")}
    qemb = {k: embed_text(q) for k, (q, _) in qsets.items()}
    print(f"read {tree.n_models} models and embedded {sum(len(p) for p in phrased)} phrasings "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)

    X, Y = tree.X, tree.Y
    perm = np.random.default_rng(args.seed).permutation(len(X))
    tr = perm[: int(0.85 * len(X))]
    est = ProbeX(ProbeXConfig(seed=args.seed)).fit(X[tr], Y[tr])
    print(f"search expert trained in {est.fit_seconds_:.0f} s", flush=True)
    R = est.responses(X)
    search = {}
    for name, al in _readouts(R[tr], Y[tr], T, phrased, args.seed).items():
        F = al.features(R)  # every model of the tree is searched, as the probe's index holds them all
        search[name] = {k: precision_at_10(al.decision_function_features(F, qemb[k]), Y, qsets[k][1])
                        for k in qsets}
    zero = {}
    if not args.no_zero_shot:
        seen, held = tree.seen, tree.held
        perm = np.random.default_rng([args.seed, 1]).permutation(len(X))
        tr, te = perm[: int(0.75 * len(X))], perm[int(0.75 * len(X)):]
        est = ProbeX(ProbeXConfig(seed=args.seed)).fit(X[tr], Y[tr][:, seen])
        print(f"zero-shot expert trained in {est.fit_seconds_:.0f} s", flush=True)
        Rtr, Rte = est.responses(X[tr]), est.responses(X[te])
        for name, al in _readouts(Rtr, Y[tr][:, seen], T[seen], [phrased[c] for c in seen], args.seed).items():
            F = al.features(Rte)
            zero[name] = {"text_map": multilabel_metrics(Y[te][:, seen], al.decision_function_features(F, T[seen]))
                          ["map"], "zero_shot_map": multilabel_metrics(
                              Y[te][:, held], al.decision_function_features(F, T[held]))["map"],
                          "zero_shot_chance": float(Y[te][:, held].mean())}
    lines = [f"Zoo `{zoo}`, tree {args.tree}, layer {args.layer}, {tree.n_models} models, seed {args.seed}. "
             f"Precision@10 of search by {len(qsets['heldout'][0])} held-out and {len(qsets['tuning'][0])} tuning "
             "reworded queries (`tests/weights/paraphrases.json`), every model of the tree ranked.", "",
             "| text readout trained on | P@10 held-out | P@10 tuning |", "|---|---|---|"]
    for name, r in search.items():
        lines.append(f"| {name} | {np.mean(r['heldout']):.3f} | {np.mean(r['tuning']):.3f} |")
    if zero:
        lines += ["", f"Zero-shot check (75 / 25 split, {len(tree.held)} held-out categories):", "",
                  "| text readout trained on | text mAP (seen) | zero-shot mAP | zero-shot chance |",
                  "|---|---|---|---|"]
        for name, r in zero.items():
            lines.append(f"| {name} | {r['text_map']:.3f} | {r['zero_shot_map']:.3f} | {r['zero_shot_chance']:.3f} |")
    per_query = {k: [{"query": q, "target": names[c], **{n: search[n][k][j] for n in search}}
                     for j, (q, c) in enumerate(zip(*qsets[k], strict=True))] for k in qsets}
    summary = {n: {k: float(np.mean(v)) for k, v in r.items()} for n, r in search.items()}
    j, md = write_results(args.name, {"machine": machine(), "zoo": str(zoo), "tree": args.tree, "layer": args.layer,
                                      "seed": args.seed, "p_at_10": summary, "zero_shot": zero,
                                      "queries": per_query}, "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {j} and {md}")


if __name__ == "__main__":
    main()
