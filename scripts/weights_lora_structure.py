"""Where a LoRA tree's layer keeps what its models were trained on: shared views against per-category directions,
and whether a category is the sum of its parts (garment, view). All on one tree's layer, fitted on the training
models of evaluation seed 0 and scored on its validation models (the test models are left alone).

    python scripts/weights_lora_structure.py TZOO/ -o docs/figures/weights-transformer/lora_structure.json

Readouts compared (closed form, ridge penalties by leave-one-out):
- ``ridge``: the dense ridge probe on the flattened layer;
- ``shared probes r``: the layer read through r shared input directions (the top principal directions of its rows,
  as ProbeX's probes start), ridge on the (d_H x r) responses; ``shared two-sided r``: also r output directions;
- ``ridge truncated k``: each category's ridge coefficient matrix cut to rank k (no refit);
- ``low-rank k``: :class:`lamina.weights.baselines.LowRankProbe` with k probes per category (one alternating step,
  and at rank 2 also two and three);
- composition: ridge probes of the parts (garment / view present among a model's seen categories), and the
  held-out categories scored from their parts (sum of the part scores) or from an additive model of the seen
  categories' ridge coefficients (category = garment + view);
- the part oracle: held-out categories scored by a reader that knows exactly which garments and which views each
  model was trained on (from all its labels): 1 where the model saw both parts, else 0: how far the presence of
  both parts goes, known perfectly (a reader that also explains parts away by the seen categories could go
  further);
- ProbeX from two starts (``--no-probex`` skips it), linear, at the report's full and compact dimensions:
  ``init="ridge"`` (the ridge coefficients written in ProbeX's factors, :func:`lamina.weights.probex.ridge_factors`;
  exact at the full dimensions), as it is and trained on with ProbeX's own loop, and ProbeX's usual start
  (principal-direction probes, random rest) trained with the same settings. This separates what ProbeX's view can
  hold from what its training reaches.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import RidgeCV

from lamina._io import write_json_atomic
from lamina.weights.baselines import LowRankProbe
from lamina.weights.catalogue import Catalogue
from lamina.weights.data import GARMENTS
from lamina.weights.evaluate import EvalConfig, _split, default_heldout
from lamina.weights.layers import layer_from_state, read_state
from lamina.weights.metrics import labels_matrix, multilabel_metrics
from lamina.weights.probex import RIDGE_ALPHAS, ProbeX, ProbeXConfig, preprocess

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoo", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--tree", default="vit-lora")
    ap.add_argument("--layer", default="blocks.1.attn.v")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-probex", action="store_true", help="skip the ProbeX section (about 40 s of the run)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with Catalogue(args.zoo) as cat:
        models = cat.models(args.tree)
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
    if not args.no_probex:
        out["probex_closed_form"] = _probex_rows(x, Y, tr, va)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(args.output, out)
    for r in rows:
        print(f"{r['readout']:24s} params {r['params']:>9,}  validation mAP {r['val_map']:.3f}")
    print({k: v for k, v in out["composition"].items()}, f"chance {out['chance']}")
    print("part oracle", out["part_oracle"])
    for r in out.get("probex_closed_form", []):
        print(f"{r['readout']:16s} start {r['start']:5s} epochs {r['epochs']:>2} lr {r['lr']:g} drop {r['dropout']:g}"
              f" wd {r['weight_decay']:g}"
              f"  params {r['params']:>7,}  validation mAP {r['val_map']:.3f}")


if __name__ == "__main__":
    main()
