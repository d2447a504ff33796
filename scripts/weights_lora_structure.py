"""Where a LoRA tree's layer keeps what its models were trained on: shared views against per-category directions,
and whether a category is the sum of its parts (garment, view). All on one tree's layer, fitted on the training
models of evaluation seed 0 and scored on its validation models (the test models are left alone).

    python scripts/weights_lora_structure.py TZOO/ -o docs/figures/weights-transformer/lora_structure.json

Readouts compared (closed form, ridge penalties by leave-one-out):
- ``ridge``: the dense ridge probe on the flattened layer;
- ``shared probes r``: the layer read through r shared input directions (the top principal directions of its rows,
  as ProbeX's probes start), ridge on the (d_H x r) responses; ``shared two-sided r``: also r output directions;
- ``ridge truncated k``: each category's ridge coefficient matrix cut to rank k (no refit);
- ``low-rank k``: :class:`lamina.weights.probes.linear.LowRankProbe` with k probes per category (one alternating step,
  and at rank 2 also two and three);
- composition: ridge probes of the parts (garment / view present among a model's seen categories), and the
  held-out categories scored from their parts (sum of the part scores) or from an additive model of the seen
  categories' ridge coefficients (category = garment + view);
- the part oracle: held-out categories scored by a reader that knows exactly which garments and which views each
  model was trained on (from all its labels): 1 where the model saw both parts, else 0: how far the presence of
  both parts goes, known perfectly (a reader that also explains parts away by the seen categories could go
  further);
- category rank: the two-sided view with its category mode cut to r_T (reduced-rank ridge: the fitted scores
  projected on their top r_T principal directions), as ProbeX's encoder cuts it;
- conjunction (analyses that fit the held-out categories' own labels: references, not zero-shot readers): ridge
  on the layer fitted to each held-out category's labels (does the layer hold it at all?); the same labels read
  from the layer's predicted parts only (garment and view present among the seen categories, out-of-fold, and
  their product; a logistic combiner per category); and read as a linear combination of the seen categories'
  ridge readers (out-of-fold scores), fitted to those labels. The last is no bound on the text readout, whose
  readers need not lie in the span of the seen ridge readers (on the MLP dev zoo it reads more than it).
- ProbeX from two starts (``--no-probex`` skips it), linear, at the report's full and compact dimensions:
  ``init="ridge"`` (the ridge coefficients written in ProbeX's factors,
  :func:`lamina.weights.probes.probex.ridge_factors`;
  exact at the full dimensions), as it is and trained on with ProbeX's own loop, and ProbeX's usual start
  (principal-direction probes, random rest) trained with the same settings. This separates what ProbeX's view can
  hold from what its training reaches.
- where zero-shot loses (with the ProbeX sections): the text readout of the evaluation, fitted on ProbeX (from the
  ridge start as it is, and with ProbeX's default settings) and the seen categories; its zero-shot mAP on the
  held-out prompts, against ridge on the very features it reads, fitted to the held-out labels (what those
  features hold), and on ProbeX's representation z (what ProbeX's own head reads).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold

from lamina._io import write_json_atomic
from lamina.weights.eval.evaluate import EvalConfig, _split, default_heldout
from lamina.weights.layers import layer_from_state, read_state
from lamina.weights.probes.linear import LowRankProbe
from lamina.weights.probes.metrics import labels_matrix, multilabel_metrics
from lamina.weights.probes.probex import RIDGE_ALPHAS, ProbeX, ProbeXConfig, preprocess
from lamina.weights.zoo.catalogue import Catalogue
from lamina.weights.zoo.data import GARMENTS

ALPHAS = RIDGE_ALPHAS
PROBEX_DIMS = ((64, 64, 64), (16, 16, 32))  # (r_U, r_V, r_T): the full and the compact ProbeX of the report
# (epochs, lr, weight decay, dropout); the last is the setting the transformer report's sweep chose
PROBEX_TRAIN = ((20, 3e-4, 0.0, 0.0), (20, 1e-3, 1e-3, 0.0), (60, 3e-3, 1e-3, 0.5))


def _map(y, s) -> float:
    return round(float(multilabel_metrics(y, s)["map"]), 4)


def _probex_rows(x, Y, tr, va) -> list[dict]:
    """ProbeX (linear) from the closed-form ridge start and from its usual start, before and after training."""
    rows = []
    for r_u, r_v, r_t in PROBEX_DIMS:
        for init in ("ridge", "pca"):
            for epochs, lr, wd, drop in ((0, 3e-3, 0.0, 0.0),) + PROBEX_TRAIN if init == "ridge" else PROBEX_TRAIN:
                cfg = ProbeXConfig(r_u=r_u, r_v=r_v, r_t=r_t, activation="linear", init=init, epochs=epochs, lr=lr,
                                   weight_decay=wd, dropout=drop, seed=0)
                est = ProbeX(cfg).fit(x[tr], Y[tr])
                rows.append({"readout": f"ProbeX {r_u}/{r_v}/{r_t}", "start": init, "epochs": epochs, "lr": lr,
                             "weight_decay": wd, "dropout": drop, "params": est.n_params_,
                             "val_map": _map(Y[va], est.decision_function(x[va]))})
    return rows


def _readouts(x, X, Y, dense, tr, va) -> list[dict]:
    """Shared views (one- and two-sided, and the category mode cut), ridge truncated per category, low-rank probes."""
    n, d_h, d_w = X.shape
    C = Y.shape[1]
    rows = []
    _, _, right = np.linalg.svd(X[tr].reshape(-1, d_w), full_matrices=False)
    _, _, left = np.linalg.svd(X[tr].transpose(0, 2, 1).reshape(-1, d_h), full_matrices=False)
    for r in (4, 8, 16):
        F = np.einsum("nhw,wk->nhk", X, right[:r].T).reshape(n, -1)
        m = RidgeCV(alphas=ALPHAS).fit(F[tr], Y[tr])
        rows.append({"readout": f"shared probes {r}", "params": d_w * r + C * (d_h * r + 1),
                     "val_map": _map(Y[va], m.predict(F[va]))})
        F = np.einsum("nhw,wk,hj->njk", X, right[:r].T, left[:r].T).reshape(n, -1)
        m = RidgeCV(alphas=ALPHAS).fit(F[tr], Y[tr])
        rows.append({"readout": f"shared two-sided {r}", "params": (d_w + d_h) * r + C * (r * r + 1),
                     "val_map": _map(Y[va], m.predict(F[va]))})
        if r == 16:  # the compact ProbeX's view: its encoder also cuts the category mode to r_T
            fit = m.predict(F[tr]) - m.intercept_
            top = np.linalg.svd(fit, full_matrices=False)[2]
            for r_t in (8, 16, 32):
                proj = top[:r_t].T @ top[:r_t]
                rows.append({"readout": f"shared two-sided {r}, categories {r_t}",
                             "params": (d_w + d_h) * r + r * r * r_t + r_t * (C + 1) + C,
                             "val_map": _map(Y[va], (m.predict(F[va]) - m.intercept_) @ proj + m.intercept_)})
    coef = dense.coef_.reshape(C, d_h, d_w)
    u, s, vt = np.linalg.svd(coef)
    for k in (1, 2, 4):
        cut = np.einsum("cik,ck,ckj->cij", u[:, :, :k], s[:, :k], vt[:, :k, :])
        rows.append({"readout": f"ridge truncated {k}", "params": C * (k * (d_h + d_w) + 1),
                     "val_map": _map(Y[va], np.einsum("nij,cij->nc", X[va], cut) + dense.intercept_)})
    for k, steps in ((1, 1), (2, 1), (3, 1), (4, 1), (2, 2), (2, 3)):
        low = LowRankProbe(rank=k, steps=steps).fit(x[tr], Y[tr])
        rows.append({"readout": f"low-rank {k}" + (f", {steps} steps" if steps > 1 else ""), "params": low.n_params_,
                     "val_map": _map(Y[va], low.decision_function(x[va]))})
    return rows


def _zero_shot_where(x, Y, H, seen_prompts, held_prompts, tr, va, seed) -> dict:
    """The text readout's zero-shot, against what the features it reads hold about the held-out categories."""
    from lamina.weights.text.aligner import TextAligner, embed_text

    t_seen, t_held = embed_text(seen_prompts), embed_text(held_prompts)
    out = {"heldout_chance": round(float(H[va].mean()), 4)}
    for name, cfg in (("ridge start", ProbeXConfig(activation="linear", init="ridge", epochs=0, seed=seed)),
                      ("default", ProbeXConfig(seed=seed))):
        est = ProbeX(cfg).fit(x[tr], Y[tr])
        al = TextAligner(seed=seed).fit(est.responses(x[tr]), Y[tr], t_seen)
        f_tr, f_va = al.features(est.responses(x[tr])), al.features(est.responses(x[va]))
        z_tr, z_va = est.transform(x[tr]), est.transform(x[va])
        out[name] = {
            "zero_shot_map": _map(H[va], al.decision_function_features(f_va, t_held)),
            "seen_text_map": _map(Y[va], al.decision_function_features(f_va, t_seen)),
            "text_features": al.n_features,
            "heldout_ridge_on_text_features_map": _map(H[va], RidgeCV(alphas=ALPHAS).fit(f_tr, H[tr]).predict(f_va)),
            "heldout_ridge_on_z_map": _map(H[va], RidgeCV(alphas=ALPHAS).fit(z_tr, H[tr]).predict(z_va)),
        }
    return out


def _conjunction(flat, Y, H, garment, view, held, n_views, tr, va) -> dict:
    """Held-out categories read with their own labels: from the layer (ridge), from its predicted parts only, and
    from the seen categories' ridge readers."""
    direct = RidgeCV(alphas=ALPHAS).fit(flat[tr], H[tr]).predict(flat[va])
    targets = np.c_[garment, view, Y]  # the parts, then the seen categories
    fold = np.zeros((len(tr), targets.shape[1]))
    for a, b in KFold(5, shuffle=True, random_state=0).split(tr):
        fold[b] = RidgeCV(alphas=ALPHAS).fit(flat[tr[a]], targets[tr[a]]).predict(flat[tr[b]])
    pred_va = RidgeCV(alphas=ALPHAS).fit(flat[tr], targets[tr]).predict(flat[va])
    n_parts = garment.shape[1] + view.shape[1]
    from_seen = RidgeCV(alphas=ALPHAS).fit(fold[:, n_parts:], H[tr]).predict(pred_va[:, n_parts:])
    n_g = garment.shape[1]
    from_parts = np.zeros_like(direct)
    for j, c in enumerate(held):
        def feats(p, c=c):
            g, v = p[:, c // n_views], p[:, n_g + c % n_views]
            return np.c_[g, v, g * v]
        comb = LogisticRegression(C=10.0, max_iter=1000).fit(feats(fold), H[tr, j])
        from_parts[:, j] = comb.decision_function(feats(pred_va))
    return {"heldout_ridge_own_labels_map": _map(H[va], direct),
            "heldout_from_predicted_parts_map": _map(H[va], from_parts),
            "heldout_from_seen_readers_map": _map(H[va], from_seen),
            "heldout_chance": round(float(H[va].mean()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoo", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--tree", default="vit-lora")
    ap.add_argument("--layer", default="blocks.1.attn.v")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-probex", action="store_true", help="skip the ProbeX sections (about 60 s of the run)")
    ap.add_argument("--no-readouts", action="store_true",
                    help="skip the shared-view, truncated and low-rank readouts (slow on wide layers; ridge is kept)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with Catalogue(args.zoo) as cat:
        models = cat.models(args.tree)
        vocab = cat.get_meta("vocabulary", [])
    x = np.stack([layer_from_state(read_state(args.zoo / m["path"]), args.layer, source=m["path"]) for m in models])
    n_cat = max(max(m["categories"]) for m in models) + 1
    n_views = -(-n_cat // len(GARMENTS))
    n_cat = n_views * len(GARMENTS)
    held = default_heldout([{}] * n_cat, n_views)
    seen = [c for c in range(n_cat) if c not in held]
    Yall = labels_matrix([m["categories"] for m in models], n_cat).astype(np.float32)
    Y, H = Yall[:, seen], Yall[:, held]
    tr, va, _ = _split(len(models), args.seed, EvalConfig(seeds=[args.seed]))
    X = preprocess(x, x[tr].mean(0), True)
    n, d_h, d_w = X.shape
    flat = X.reshape(n, -1)
    out: dict = {"zoo": str(args.zoo), "tree": args.tree, "layer": args.layer, "shape": [d_h, d_w],
                 "models": {"train": len(tr), "validation": len(va)}, "seed": args.seed,
                 "chance": {"seen": round(float(Y[va].mean()), 4), "heldout": round(float(H[va].mean()), 4)}}
    C = len(seen)

    dense = RidgeCV(alphas=ALPHAS).fit(flat[tr], Y[tr])
    rows = [{"readout": "ridge", "params": C * (d_h * d_w + 1), "val_map": _map(Y[va], dense.predict(flat[va]))}]
    if not args.no_readouts:
        rows += _readouts(x, X, Y, dense, tr, va)
    out["readouts"] = rows

    # composition: the parts of seen categories, and held-out categories from their parts
    Ys = Yall.copy()
    Ys[:, held] = 0
    garment = np.stack([Ys[:, g * n_views:(g + 1) * n_views].max(1) for g in range(len(GARMENTS))], 1)
    view = np.stack([Ys[:, v::n_views].max(1) for v in range(n_views)], 1)
    mg, mv = RidgeCV(alphas=ALPHAS).fit(flat[tr], garment[tr]), RidgeCV(alphas=ALPHAS).fit(flat[tr], view[tr])
    sg, sv = mg.predict(flat[va]), mv.predict(flat[va])
    by_parts = np.stack([sg[:, c // n_views] + sv[:, c % n_views] for c in held], 1)
    parts = np.zeros((n_cat, len(GARMENTS) + n_views))
    for c in range(n_cat):
        parts[c, c // n_views] = parts[c, len(GARMENTS) + c % n_views] = 1
    P = parts[seen]
    additive = np.linalg.lstsq(P, np.c_[dense.coef_, dense.intercept_], rcond=None)[0]  # (parts, D + 1)
    fitted_seen = flat[va] @ (P @ additive[:, :-1]).T + P @ additive[:, -1]
    fitted_held = flat[va] @ (parts[held] @ additive[:, :-1]).T + parts[held] @ additive[:, -1]
    out["composition"] = {
        "garment_present_map": _map(garment[va], sg), "view_present_map": _map(view[va], sv),
        "heldout_from_part_scores_map": _map(H[va], by_parts),
        "heldout_from_additive_model_map": _map(H[va], fitted_held),
        "seen_additive_model_map": _map(Y[va], fitted_seen),
        "seen_ridge_map": rows[0]["val_map"],
    }
    g_all = np.stack([Yall[:, g * n_views:(g + 1) * n_views].max(1) for g in range(len(GARMENTS))], 1)
    v_all = np.stack([Yall[:, v::n_views].max(1) for v in range(n_views)], 1)
    oracle = np.stack([g_all[:, c // n_views] * v_all[:, c % n_views] for c in held], 1)
    out["part_oracle"] = {
        "heldout_both_parts_map": _map(H[va], oracle[va]),
        "heldout_garment_only_map": _map(H[va], np.stack([g_all[va, c // n_views] for c in held], 1)),
        "heldout_view_only_map": _map(H[va], np.stack([v_all[va, c % n_views] for c in held], 1)),
        "heldout_chance": out["chance"]["heldout"],
    }
    out["conjunction"] = _conjunction(flat, Y, H, garment, view, held, n_views, tr, va)
    if not args.no_probex:
        out["probex_closed_form"] = _probex_rows(x, Y, tr, va)
        out["zero_shot_where"] = _zero_shot_where(x, Y, H, [vocab[c]["prompt"] for c in seen],
                                                  [vocab[c]["prompt"] for c in held], tr, va, args.seed)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(args.output, out)
    for r in rows:
        print(f"{r['readout']:24s} params {r['params']:>9,}  validation mAP {r['val_map']:.3f}")
    print({k: v for k, v in out["composition"].items()}, f"chance {out['chance']}")
    print("part oracle", out["part_oracle"])
    print("conjunction", out["conjunction"])
    if "zero_shot_where" in out:
        print("zero-shot where", out["zero_shot_where"])
    for r in out.get("probex_closed_form", []):
        print(f"{r['readout']:16s} start {r['start']:5s} epochs {r['epochs']:>2} lr {r['lr']:g} drop {r['dropout']:g}"
              f" wd {r['weight_decay']:g}"
              f"  params {r['params']:>7,}  validation mAP {r['val_map']:.3f}")


if __name__ == "__main__":
    main()
