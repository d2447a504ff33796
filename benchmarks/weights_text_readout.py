"""Benchmark: how the text side reads held-out categories (zero-shot) from a ProbeX expert.

    lamina weights zoo build --config dev -o dev/ --workers 2
    flock /work/heavy.lock python benchmarks/weights_text_readout.py dev/ --tree mlp-digits --seeds 0,1,2

On one tree of a zoo, for each seed: a random 75 / 25 split of the models, one ProbeX expert trained on the seen
categories (the held-out ones are :func:`lamina.weights.eval.evaluate.default_heldout`), then three text sides
trained on
the same seen labels and scored on the test models, on seen categories and zero-shot on held-out ones:

- ``linear z``: the paper's alignment, a linear map of the expert's representation z and one of the text embedding
  into a shared 128-d space, cosine logits with learned scale and offset, BCE (re-implemented here only for this
  comparison);
- ``readout, all hidden units``: :class:`lamina.weights.text.aligner.TextAligner` with k = d_H (no compression);
- ``readout, k = 32``: the package default (rank 4), and the same at ranks 1 and 2;
- ``readout, k = 32, rank chosen on seen folds``: the rank (1, 2 or 4) that
:func:`lamina.weights.text.aligner.choose_text_rank`
  picks by zero-shot on folds of the seen categories (per fold, an expert fitted without the fold's categories on
  85% of the training models, the other 15% scored); then refitted on all training models with the seed's expert
  (``lamina weights evaluate/train --text-ranks``).

Results go to ``benchmarks/results/weights_text_readout.{json,md}`` (``--results NAME`` for another name, e.g. for
another zoo: ``python benchmarks/weights_text_readout.py tzoo/ --tree vit-lora --layer blocks.1.attn.v --results
weights_text_readout_vit_lora``).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from _common import machine, write_results
from _weights import load_tree, tree_args
from lamina._process import torch_seed
from lamina.weights.probes._train import train_bce
from lamina.weights.probes.metrics import multilabel_metrics
from lamina.weights.probes.probex import ProbeX, ProbeXConfig
from lamina.weights.text.aligner import TextAligner, category_folds, choose_text_rank, embed_text


class _LinearZNet(nn.Module):
    def __init__(self, text_dim: int, z_dim: int, joint: int):
        super().__init__()
        self.A, self.B = nn.Linear(text_dim, joint), nn.Linear(z_dim, joint)
        self.ls, self.b = nn.Parameter(torch.tensor(np.log(10.0))), nn.Parameter(torch.tensor(-2.0))

    def forward(self, z, t):
        zn = nn.functional.normalize(self.B(z), dim=-1)
        tn = nn.functional.normalize(self.A(t), dim=-1)
        return self.ls.exp() * zn @ tn.T + self.b


class LinearZ:
    """The paper's weight-text alignment on the pooled representation z (for comparison only)."""

    def __init__(self, joint: int = 128, epochs: int = 300, lr: float = 3e-3, weight_decay: float = 1e-4, seed=0):
        self.joint, self.epochs, self.lr, self.wd, self.seed = joint, epochs, lr, weight_decay, seed

    def fit(self, Z, Y, T):
        self.mu, self.sd = Z.mean(0), Z.std(0) + 1e-6
        with torch_seed(self.seed):
            self.net = _LinearZNet(T.shape[1], Z.shape[1], self.joint)
        z, y, t = torch.from_numpy((Z - self.mu) / self.sd), torch.from_numpy(Y), torch.from_numpy(T)
        train_bce(self.net, z, y, epochs=self.epochs, lr=self.lr, weight_decay=self.wd, batch_size=None,
                  seed=self.seed, forward=lambda zb: self.net(zb, t))  # the library's one BCE loop, full batch
        return self

    @torch.no_grad()
    def decision_function(self, Z, T):
        return self.net(torch.from_numpy((Z - self.mu) / self.sd), torch.from_numpy(T)).numpy()


def _cell(stats: dict, key: str, *, std: bool = True) -> str:
    if key not in stats:
        return "n/a"
    mean, sd = stats[key]
    return f"{mean:.3f} ± {sd:.3f}" if std else f"{mean:.3f}"


def main() -> None:
    args = tree_args(__doc__, results="weights_text_readout")
    torch.set_num_threads(2)
    tree = load_tree(args.zoo, args.tree, args.layer)
    X, Y, seen, held, vocab = tree.X, tree.Y, tree.seen, tree.held, tree.vocab
    T = embed_text([v["prompt"] for v in vocab])
    # how often a model that did not learn a held-out category learned both of its parts (garment, view) in seen ones
    n_views = tree.n_views
    confounded = []
    for h in held:
        g, v = divmod(h, n_views)
        has_g = Y[:, [c for c in seen if c // n_views == g]].max(1)
        has_v = Y[:, [c for c in seen if c % n_views == v]].max(1)
        confounded.append(float((has_g * has_v)[Y[:, h] == 0].mean()))
    folds = category_folds([v["name"] for v in vocab], seen)
    rows, chosen = [], []
    for seed in [int(s) for s in args.seeds.split(",")]:
        perm = np.random.default_rng(seed).permutation(len(X))
        tr, te = perm[: int(0.75 * len(X))], perm[int(0.75 * len(X)) :]
        est = ProbeX(ProbeXConfig(seed=seed)).fit(X[tr], Y[tr][:, seen])
        rows.append({"seed": seed, "method": "ProbeX head (seen only)", "fit_seconds": est.fit_seconds_,
                     "seen_map": multilabel_metrics(Y[te][:, seen], est.decision_function(X[te]))["map"]})
        Rtr, Rte = est.responses(X[tr]), est.responses(X[te])
        sides = [("linear z", LinearZ(seed=seed), est.transform(X[tr]), est.transform(X[te])),
                 ("readout, all hidden units", TextAligner(k=X.shape[1], seed=seed), Rtr, Rte),
                 ("readout, k = 32", TextAligner(seed=seed), Rtr, Rte),
                 ("readout, k = 32, rank 1", TextAligner(rank=1, seed=seed), Rtr, Rte),
                 ("readout, k = 32, rank 2", TextAligner(rank=2, seed=seed), Rtr, Rte)]
        inner = np.random.default_rng([seed, 1]).permutation(tr)  # 15% of the training models for the choice
        i_va, i_tr = inner[: int(0.15 * len(tr))], inner[int(0.15 * len(tr)) :]

        def refit(rest, seed=seed, i_tr=i_tr, i_va=i_va):  # an expert on the inner models, without a fold's categories
            e = ProbeX(ProbeXConfig(seed=seed)).fit(X[i_tr], Y[i_tr][:, seen][:, rest])
            return e.responses(X[i_tr]), e.responses(X[i_va])

        rank, cv = choose_text_rank(refit, Y[i_tr][:, seen], Y[i_va][:, seen], T[seen], folds, (1, 2, 4), seed=seed)
        sides.append(("readout, k = 32, rank chosen on seen folds", TextAligner(rank=rank, seed=seed), Rtr, Rte))
        chosen.append({"seed": seed, "rank": rank, "fold_map": {str(r): v for r, v in cv.items()}})
        for name, side, ftr, fte in sides:
            t0 = time.perf_counter()
            side.fit(ftr, Y[tr][:, seen], T[seen])
            fit = time.perf_counter() - t0
            score = lambda cats: multilabel_metrics(Y[te][:, cats], side.decision_function(fte, T[cats]))["map"]  # noqa: B023, E731
            rows.append({"seed": seed, "method": name, "fit_seconds": fit, "seen_map": score(seen),
                         "zero_shot_map": score(held), "zero_shot_chance": float(Y[te][:, held].mean())})
            print(rows[-1], flush=True)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [f"Zoo `{args.zoo}`, tree {args.tree}, layer {args.layer}, {tree.n_models} models "
             f"(75 / 25 split per seed), seeds {args.seeds}; {len(seen)} seen and {len(held)} held-out categories. "
             "mAP mean +- std over seeds.",
             "", "| text side | seen mAP | zero-shot mAP | zero-shot chance | fit (s) |", "|---|---|---|---|---|"]
    tail = ["", f"Models that did not learn a held-out category but learned both of its parts in seen categories: "
                f"{np.mean(confounded):.0%} (mean over the held-out categories).",
            "", "Rank chosen on seen folds (mean fold zero-shot mAP per rank): " + "; ".join(
                f"seed {c['seed']}: {c['rank']} (" + ", ".join(f"{r}: {v:.3f}" for r, v in c["fold_map"].items())
                + ")" for c in chosen) + "."]
    summary = {}
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        summary[m] = {k: [float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs]))]
                      for k in ("seen_map", "zero_shot_map", "zero_shot_chance", "fit_seconds") if k in rs[0]}
        lines.append(f"| {m} | {_cell(summary[m], 'seen_map')} | {_cell(summary[m], 'zero_shot_map')} | "
                     f"{_cell(summary[m], 'zero_shot_chance', std=False)} | {summary[m]['fit_seconds'][0]:.1f} |")
    lines += tail
    j, md = write_results(args.results, {"machine": machine(), "zoo": str(args.zoo), "tree": args.tree,
                                         "layer": args.layer, "rows": rows, "summary": summary,
                                         "confounded_negatives": confounded, "rank_chosen": chosen},
                          "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {j} and {md}")


if __name__ == "__main__":
    main()
