"""The evaluation report of a zoo: every method on the same splits, per tree, mean and std over seeds.

Per tree (the catalogue's true trees) and seed, models are split 70 / 10 / 20 into train / validation / test.
Categories are split into *seen* ones (all probes train and are scored on them) and *held-out* ones (one view per
garment, never shown to any probe, scored zero-shot through text). Methods:

- ``probex``: the ProbeX expert on the tree's best layer (layer sweep on validation, seed 0); with
  ``probex_grid`` the sweep also chooses among ProbeX settings (e.g. ``activation="linear"``), per tree, and the
  tree's ProbeX rows (not the cross-tree probe, which spans trees) and its dense logistic probe train with the
  chosen settings (where the chosen entry starts ProbeX from the closed-form ridge solution, ``init="ridge"``, the
  dense logistic probe takes the best entry without that start instead);
- ``probex@L``: the expert on the tree's largest layer L (of several layers of that size, the one with the best
  validation mAP in the sweep), beside the dense probes on that same layer;
- ``probex-compact@L``: a ProbeX expert with fewer probes and a smaller representation (``EvalConfig.compact``) on
  the same layer, at a fraction of the dense logistic probe's trained parameters;
- ``probex@L.lora_A`` and ``probex@L.lora_B`` (LoRA trees only): ProbeX on the adapter's factors read directly,
  zero-padded to the tree's largest rank, beside ``probex@L`` on their product ``B @ A``;
- ``dense-logistic@L`` and ``ridge@L``: dense linear probes on the flattened largest layer (the logistic one, by
  far the slowest method, on the first ``dense_seeds`` seeds only);
- ``low-rank@L``: per category, ``low_rank`` probes of layer L and a read vector for each, fitted in closed form
  from the ridge solution (:class:`~lamina.weights.probes.linear.LowRankProbe`);
- ``statnn``: weight statistics of every layer + gradient boosting;
- ``cross-tree@L``: one ProbeX trained on the union of all trees whose layer L has the same shape (no experts);
- ``data-aware (layer)`` and ``data-aware (model)``: data-aware probes that use images (the first layer's change
  from the root applied to each category's mean image; the whole model run on each category's images);
- ``text`` and ``zero-shot``: the text readout of the expert's probe responses, on seen / held-out categories.
- ``text (root)`` and ``zero-shot (root)`` (trees of a text root): how strongly each model's change of one attention
  projection answers the root's own reading of the category name, nothing trained
  (:mod:`lamina.weights.text.root_response`).

Trees are also discovered from weights alone and compared with the true trees (adjusted Rand index).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lamina._process import single_threaded, torch_threads
from lamina._validation import check_positive_int, check_real, check_seed, check_workers
from lamina.errors import InputError
from lamina.weights._checks import check_ranks
from lamina.weights.experts import candidate_layers
from lamina.weights.layers import layer_from_state, read_state
from lamina.weights.probes.linear import (
    DenseLinearProbe,
    LowRankProbe,
    RidgeProbe,
    StatNN,
    UpperBound,
    behaviour,
    first_layer_response,
    weight_statistics,
)
from lamina.weights.probes.metrics import labels_matrix, multilabel_metrics
from lamina.weights.probes.probex import ProbeX, ProbeXConfig, grid_configs
from lamina.weights.probes.tree_expert import best_run as _best_run  # the sweep's choice, as training makes it
from lamina.weights.probes.tree_expert import fit_candidate, fit_text_readout
from lamina.weights.zoo.catalogue import Catalogue
from lamina.weights.zoo.vit import is_adapter, merge_adapter

logger = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """Settings of :func:`evaluate_zoo`."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    probex: ProbeXConfig = field(default_factory=ProbeXConfig)
    compact: ProbeXConfig = field(default_factory=lambda: ProbeXConfig(r_u=16, r_v=16, r_t=32))
    probex_grid: list[dict] = field(default_factory=list)  # other ProbeX settings the validation sweep may choose
    heldout: list[int] | None = None
    train_fraction: float = 0.7
    val_fraction: float = 0.1
    max_models_per_tree: int | None = None
    energy_images: int = 32
    dense_seeds: int = 1
    low_rank: int = 2  # probes per category of the low-rank probe: a parameter budget near the compact ProbeX's
    text_ranks: list[int] = field(default_factory=list)  # ranks the text readout chooses from (empty: its default)
    workers: int = 2
    min_models: int = 20  # a tree with fewer readable models is left out

    def __post_init__(self) -> None:
        for name in ("probex", "compact"):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, ProbeXConfig.from_dict(getattr(self, name)))
            if not isinstance(getattr(self, name), ProbeXConfig):
                raise InputError(f"{name}: expected a ProbeXConfig or a dict, got "
                                 f"{type(getattr(self, name)).__name__}")
        grid_configs(self.probex, self.probex_grid)  # checks the grid
        for v in range(1 + len(self.probex_grid)):  # and each entry on the compact expert's dimensions
            self.candidate(v, 0, compact=True)
        if isinstance(self.seeds, str | bytes) or not hasattr(self.seeds, "__len__") or not self.seeds:
            raise InputError(f"seeds: expected a non-empty list of integer seeds, got {self.seeds!r}")
        self.seeds = [check_seed(f"seeds[{i}]", s) for i, s in enumerate(self.seeds)]
        if len(set(self.seeds)) != len(self.seeds):
            raise InputError(f"seeds: expected distinct seeds, got {self.seeds}")
        check_real("train_fraction", self.train_fraction, low=0.0, low_open=True, high=1.0, high_open=True)
        check_real("val_fraction", self.val_fraction, low=0.0, low_open=True, high=1.0, high_open=True)
        if not self.val_fraction < 1 - self.train_fraction:
            raise InputError("train_fraction / val_fraction: need 0 < train, 0 < val, train + val < 1, got "
                             f"{self.train_fraction} + {self.val_fraction}")
        if self.max_models_per_tree is not None:
            check_positive_int("max_models_per_tree", self.max_models_per_tree)
        check_positive_int("energy_images", self.energy_images)
        check_positive_int("dense_seeds", self.dense_seeds)
        check_positive_int("low_rank", self.low_rank)
        self.text_ranks = check_ranks("text_ranks", self.text_ranks)
        check_positive_int("workers", self.workers)
        check_positive_int("min_models", self.min_models, minimum=5)

    def to_dict(self) -> dict:
        return asdict(self)

    def candidate(self, variant: int, seed: int, *, compact: bool = False) -> ProbeXConfig:
        """ProbeX settings of grid entry ``variant`` (0: ``probex`` itself) at ``seed``; ``compact``: the compact
        expert's dimensions with that entry's other settings."""
        over = dict(self.probex_grid[variant - 1]) if variant else {}
        base = self.probex
        if compact:
            base = self.compact
            over = {k: v for k, v in over.items() if k not in ("r_u", "r_v", "r_t")}
        return ProbeXConfig(**{**base.to_dict(), **over, "seed": seed})


def _dense_variant(cfg: EvalConfig, runs: list[dict]) -> int | None:
    """The grid entry whose training settings the dense logistic probe gets: the best one (as :func:`_best_run`)
    among those that train ProbeX from its usual start. A ridge start's settings (few epochs at a small step, for
    training on from a closed-form solution) would leave a dense probe trained from zero short; where every entry
    starts from ridge, None: ProbeX's default training settings."""
    own = [r for r in runs if cfg.candidate(r["variant"], 0).init != "ridge" and not np.isnan(r["val_map"])]
    if own:
        return max(own, key=lambda r: r["val_map"])["variant"]
    return None if cfg.probex.init == "ridge" else 0


def _dense_settings(cfg: EvalConfig, variant: int | None) -> dict:
    c = cfg.candidate(variant, 0) if variant is not None else ProbeXConfig()
    return {"epochs": c.epochs, "lr": c.lr, "weight_decay": c.weight_decay, "batch_size": c.batch_size}


def default_heldout(vocab: list[dict], n_views: int) -> list[int]:
    """One held-out category per garment: garment g holds out view (g + 1) mod n_views (never the plain photo).
    A text vocabulary (``n_views == 0``, the WordNet zoo) holds out every fifth category, starting at the third."""
    if n_views == 0:
        return list(range(2, len(vocab), 5))
    n_garments = len(vocab) // n_views
    out = []
    for g in range(n_garments):
        v = 1 + g % (n_views - 1)
        out.append(g * n_views + v)
    return out


# ------------------------------------------------------------------------------------------------------ worker state
_D: dict = {}


def _split(n: int, seed: int, cfg: EvalConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, n]).permutation(n)
    a, b = int(cfg.train_fraction * n), int((cfg.train_fraction + cfg.val_fraction) * n)
    return order[:a], order[a:b], order[b:]


def _scores(y, s) -> dict:
    return multilabel_metrics(y, s)


def _one_thread(task):
    """Run a worker task with torch, BLAS and OpenMP at one thread each (two workers on two cores never
    oversubscribe them), restoring the worker's settings afterwards."""

    @functools.wraps(task)
    def run(args):
        with single_threaded():
            return task(args)

    return run


@_one_thread
def _sweep_task(args) -> dict:
    tree, layer, variant = args
    d, cfg = _D["trees"][tree], _D["cfg"]
    seen = _D["seen"]
    tr, va, _ = _split(len(d["ids"]), cfg.seeds[0], cfg)
    X, Y = d["layers"][layer], d["Y"][:, seen]
    est, val_map = fit_candidate(cfg.candidate(variant, cfg.seeds[0]), X[tr], Y[tr], X[va], Y[va],
                                 nan_if_unscorable=True)  # too few validation models to score any category: NaN
    return {"tree": tree, "layer": layer, "shape": list(X.shape[1:]), "variant": variant,
            "settings": cfg.probex_grid[variant - 1] if variant else {}, "val_map": val_map,
            "fit_seconds": est.fit_seconds_}


@_one_thread
def _seed_task(args) -> list[dict]:
    """One part ("probex", "dense" or "cheap") of the methods for one tree and seed."""
    part, tree, seed, best, largest, variant = args
    d, cfg = _D["trees"][tree], _D["cfg"]
    seen, held, text = _D["seen"], _D["heldout"], _D["text"]
    tr, va, te = _split(len(d["ids"]), seed, cfg)
    Y = d["Y"]
    rows = []

    def add(method, layer, y, s, fit_seconds, n_params, **extra):
        rows.append({"tree": tree, "seed": seed, "method": method, "layer": layer, **_scores(y, s),
                     "fit_seconds": fit_seconds, "n_params": n_params, **extra})

    pcfg = cfg.candidate(variant, seed) if variant is not None else ProbeXConfig(seed=seed)
    if part == "probex":
        for layer, name in [(best, "probex")] + ([(largest, f"probex@{largest}")] if largest != best else []):
            X = d["layers"][layer]
            est = ProbeX(pcfg).fit(X[tr], Y[tr][:, seen])
            add(name, layer, Y[te][:, seen], est.decision_function(X[te]), est.fit_seconds_, est.n_params_)
            if name != "probex":
                continue
            if largest == best:
                add(f"probex@{largest}", layer, Y[te][:, seen], est.decision_function(X[te]), est.fit_seconds_,
                    est.n_params_)
            # the readout's rank by zero-shot on folds of the seen categories (validation models), if ranks are given
            al, rank, cv = fit_text_readout(est, X[tr], Y[tr][:, seen], X[va], Y[va][:, seen], text[seen],
                                            folds=_D["folds"], ranks=cfg.text_ranks, seed=seed)
            how = {}
            if cfg.text_ranks:
                how = {"text_rank": rank,
                       "text_rank_cv": {str(r): None if np.isnan(v) else round(v, 4) for r, v in cv.items()}}
            fte = al.features(est.responses(X[te]))
            add("text", layer, Y[te][:, seen], al.decision_function_features(fte, text[seen]), al.fit_seconds_,
                al.n_params_, **how)
            add("zero-shot", layer, Y[te][:, held], al.decision_function_features(fte, text[held]),
                al.fit_seconds_, al.n_params_, **how)
        X = d["layers"][largest]
        est = ProbeX(cfg.candidate(variant, seed, compact=True)).fit(X[tr], Y[tr][:, seen])
        add(f"probex-compact@{largest}", largest, Y[te][:, seen], est.decision_function(X[te]), est.fit_seconds_,
            est.n_params_)
        for factor, X in sorted(d["lora_parts"].get(largest, {}).items()):
            est = ProbeX(pcfg).fit(X[tr], Y[tr][:, seen])
            add(f"probex@{largest}.{factor}", f"{largest}.{factor}", Y[te][:, seen], est.decision_function(X[te]),
                est.fit_seconds_, est.n_params_)
    elif part == "dense":
        X = d["layers"][largest]
        dense = DenseLinearProbe(epochs=pcfg.epochs, lr=pcfg.lr, weight_decay=pcfg.weight_decay,
                                 batch_size=pcfg.batch_size, seed=seed).fit(X[tr], Y[tr][:, seen])
        add(f"dense-logistic@{largest}", largest, Y[te][:, seen], dense.decision_function(X[te]),
            dense.fit_seconds_, dense.n_params_)
    else:
        X = d["layers"][largest]
        ridge = RidgeProbe().fit(X[tr], Y[tr][:, seen])
        add(f"ridge@{largest}", largest, Y[te][:, seen], ridge.decision_function(X[te]), ridge.fit_seconds_,
            ridge.n_params_, alpha=ridge.alpha_)
        low = LowRankProbe(rank=cfg.low_rank).fit(X[tr], Y[tr][:, seen])
        add(f"low-rank@{largest}", largest, Y[te][:, seen], low.decision_function(X[te]), low.fit_seconds_,
            low.n_params_)
        stat = StatNN(seed=seed).fit(d["stats"][tr], Y[tr][:, seen])
        add("statnn", "all", Y[te][:, seen], stat.predict_proba(d["stats"][te]), stat.fit_seconds_, 0)
        for name, key in (("data-aware (layer)", "response"), ("data-aware (model)", "behaviour")):
            if d[key] is None:  # no first-layer response for a ViT (its first layer reads patches)
                continue
            ub = UpperBound().fit(d[key][tr][:, seen], Y[tr][:, seen])
            layer = d["first_layer"] if key == "response" else "all + images"
            add(name, layer, Y[te][:, seen], ub.predict_proba(d[key][te][:, seen]), ub.fit_seconds_, 0)
    return rows


@_one_thread
def _cross_task(args) -> list[dict]:
    trees, layer, seed = args
    cfg, seen = _D["cfg"], _D["seen"]
    splits = {t: _split(len(_D["trees"][t]["ids"]), seed, cfg) for t in trees}
    Xtr = np.concatenate([_D["trees"][t]["layers"][layer][splits[t][0]] for t in trees])
    Ytr = np.concatenate([_D["trees"][t]["Y"][splits[t][0]][:, seen] for t in trees])
    est = ProbeX(ProbeXConfig(**{**cfg.probex.to_dict(), "seed": seed})).fit(Xtr, Ytr)
    rows = []
    for t in trees:
        te = splits[t][2]
        d = _D["trees"][t]
        if seed == cfg.seeds[0]:  # representations of the test models, for the 2-D map
            _z = est.transform(d["layers"][layer][te])
            rows.append({"tree": t, "method": "_map", "z": _z.tolist()})
        rows.append({"tree": t, "seed": seed, "method": f"cross-tree@{layer}", "layer": layer,
                     **_scores(d["Y"][te][:, seen], est.decision_function(d["layers"][layer][te])),
                     "fit_seconds": est.fit_seconds_, "n_params": est.n_params_, "n_train": len(Xtr)})
    return rows


def _root_rows(tree: str, d: dict, root: Path, vocab: list[dict], seen: list[int], held: list[int],
               cfg: EvalConfig) -> list[dict]:
    """``text (root)`` and ``zero-shot (root)``: the root-response readout
    (:class:`~lamina.weights.text.root_response.RootResponseReadout`), its layer and phrasing chosen per seed on
    the seen categories of the training models; scored on the test models."""
    from lamina.weights.text.root_response import RootResponseReadout

    lora = bool(d["lora_parts"])  # the layers are LoRA products B A: already the change
    base = RootResponseReadout(root, lora=lora)
    usable = base.usable_layers(d["layers"])
    if not usable:
        return []
    deltas = {k: base.deltas(k, d["layers"][k]) for k in usable}
    phrasings = {"name": [v["name"] for v in vocab], "prompt": [v["prompt"] for v in vocab]}
    rows = []
    for seed in cfg.seeds:
        tr, _, te = _split(len(d["ids"]), seed, cfg)
        t0 = time.perf_counter()
        est = RootResponseReadout(root, lora=lora).fit(usable, lambda k, tr=tr: (deltas[k][tr], d["Y"][tr][:, seen]),
                                                       {p: [t[c] for c in seen] for p, t in phrasings.items()})
        fit_seconds = time.perf_counter() - t0
        for method, cats in (("text (root)", seen), ("zero-shot (root)", held)):
            scores = est.predict_proba(deltas[est.layer_][te], [phrasings[est.phrasing_][c] for c in cats])
            rows.append({"tree": tree, "seed": seed, "method": method, "layer": est.layer_,
                         **_scores(d["Y"][te][:, cats], scores), "fit_seconds": fit_seconds, "n_params": 0,
                         "phrasing": est.phrasing_})
    return rows


# ------------------------------------------------------------------------------------------------------ loading
@_one_thread
def _load_chunk(args) -> dict:
    """Worker: :func:`_load_tree` on a chunk of models (the images come from the forked parent)."""
    zoo, models, root_path, arch = args
    return _load_tree(zoo, models, root_path, arch, _D["images"], lambda m: None)


def _pad_rank(mats: list[np.ndarray], axis: int, rank: int) -> np.ndarray:
    """Stack LoRA factors of different ranks, zero-padded along ``axis`` (the rank axis) to ``rank``."""
    out = []
    for m in mats:
        width = [(0, 0)] * m.ndim
        width[axis] = (0, rank - m.shape[axis])
        out.append(np.pad(m, width))
    return np.stack(out)


def _merge(parts: list[dict]) -> dict:
    out = {"ids": [], "cats": [], "skipped": [], "first_layer": parts[0]["first_layer"]}
    for p in parts:
        out["ids"] += p["ids"]
        out["cats"] += p["cats"]
        out["skipped"] += p["skipped"]
    full = [p for p in parts if p["ids"]]
    out["layers"] = {k: np.concatenate([p["layers"][k] for p in full]) for k in full[0]["layers"]} if full else {}
    for k in ("stats", "response", "behaviour"):
        out[k] = np.concatenate([p[k] for p in full]) if full and full[0][k] is not None else None
    out["lora_parts"] = {}
    for layer in full[0]["lora_parts"] if full else []:
        a = [m for p in full for m in p["lora_parts"][layer]["lora_A"]]  # (r, in) each
        b = [m for p in full for m in p["lora_parts"][layer]["lora_B"]]  # (out, r) each
        rank = max(m.shape[0] for m in a)
        out["lora_parts"][layer] = {"lora_A": _pad_rank(a, 0, rank), "lora_B": _pad_rank(b, 1, rank)}
    return out


def _load_tree(zoo: Path, models: list[dict], root_path: Path, arch: dict, images: np.ndarray | None, log) -> dict:
    """Read every model of a tree once: all candidate layers, StatNN statistics, the data-aware features (image
    trees only: a text tree has no images to run, ``images`` is None)."""
    from lamina.errors import CheckpointError
    from lamina.weights.zoo.models import ArchConfig, build_model

    text = images is None
    root = {} if text else read_state(root_path)
    first = None if text or arch["arch"] == "vit" else ("conv1" if "conv1.weight" in root else "fc1")
    if not text:
        means = images.mean(1)
        means = means - means.mean(0, keepdims=True)  # (C, 28, 28) centred category means
    layers: list[str] | None = None  # the candidate layers of the tree's files (a LoRA file: its adapters)
    mats: dict[str, list] = {}
    parts: dict[str, dict[str, list]] = {}
    stats, resp, behav, ids, cats, skipped = [], [], [], [], [], []
    for m in models:
        try:
            st = read_state(zoo / m["path"])
            have = candidate_layers(st)
            if layers is None:
                layers, mats = have, {k: [] for k in have}
            got = {k: layer_from_state(st, k, source=m["path"]) for k in layers}
            if not text:
                net = build_model(ArchConfig.from_dict(arch), len(m["categories"]), seed=0)
                full = merge_adapter(root, st) if is_adapter(st) else st
                net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in full.items()}, strict=True)
        except (CheckpointError, InputError, RuntimeError, KeyError, ValueError) as exc:
            skipped.append(str(exc) if isinstance(exc, CheckpointError | InputError) else f"{m['path']}: {exc}")
            log(f"warning: skipped {skipped[-1]}")
            continue
        for k in layers:
            mats[k].append(got[k])
            if f"{k}.lora_A" in st:
                p = parts.setdefault(k, {"lora_A": [], "lora_B": []})
                p["lora_A"].append(np.asarray(st[f"{k}.lora_A"], np.float32))
                p["lora_B"].append(np.asarray(st[f"{k}.lora_B"], np.float32))
        stats.append(weight_statistics(st))
        if first is not None:
            delta = np.asarray(st[f"{first}.weight"]) - np.asarray(root[f"{first}.weight"])
            resp.append(first_layer_response(delta, means, "conv" if first == "conv1" else "linear"))
        if not text:
            behav.append(behaviour(net.eval(), images))
        ids.append(m["id"])
        cats.append(m["categories"])
    if not ids:
        return {"ids": [], "cats": [], "layers": {}, "skipped": skipped, "first_layer": first, "lora_parts": {}}
    return {"ids": ids, "cats": cats, "layers": {k: np.stack(v) for k, v in mats.items()},
            "stats": np.stack(stats), "response": np.stack(resp) if resp else None,
            "behaviour": np.stack(behav) if behav else None,
            "first_layer": first, "skipped": skipped, "lora_parts": parts}


def evaluate_zoo(zoo: str | Path, cfg: EvalConfig | None = None, *, log=None) -> dict:
    """Run the whole evaluation and return the report as a dict (see :mod:`lamina.weights.eval.report` to write it).

    ``log``: called with one line per step (default: ``logging`` at INFO level).
    """
    with torch_threads(1):  # the main process reads and fingerprints; the workers train, one thread each
        return _evaluate(Path(zoo), cfg or EvalConfig(), log or logger.info)


def _evaluate(zoo: Path, cfg: EvalConfig, log) -> dict:
    """The whole evaluation (see :func:`evaluate_zoo`): the main process reads and discovers, the workers train."""
    from lamina.weights.text.aligner import category_folds, embed_text

    t_start = time.perf_counter()
    models, roots, vocab, zcfg = _read_catalogue(zoo)
    text_zoo = zcfg.get("data", "fashion") == "wordnet"
    views = [] if text_zoo else zcfg.get("views", [])
    heldout = cfg.heldout if cfg.heldout is not None else default_heldout(vocab, len(views))
    seen = [c for c in range(len(vocab)) if c not in set(heldout)]
    folds = category_folds([v["name"] for v in vocab], seen) if cfg.text_ranks else []
    text = embed_text([v["prompt"] for v in vocab])
    discovery, fp_map = _discover(zoo, models, roots, cfg, log)
    imgs = None if text_zoo else _test_images(views, zcfg, cfg)  # a text zoo: no data-aware probes (no images)
    ctx = mp.get_context("fork")
    n_workers = check_workers("workers", cfg.workers)
    trees = _load_trees(zoo, models, roots, vocab, imgs, cfg, ctx, n_workers, log)
    _D.clear()
    _D.update(trees=trees, cfg=cfg, seen=seen, heldout=heldout, text=text, folds=folds)
    with ctx.Pool(n_workers) as pool:
        sweep, best, dense_variant = _sweep(pool, trees, cfg, log)
        rows = _run_methods(pool, trees, best, dense_variant, cfg)
    _D.clear()
    for t, d in trees.items():
        if roots[t]["arch"].get("arch") == "minilm":  # a text root reads category names itself
            log(f"tree {t}: zero-shot through the root's reading of category names")
            rows += _root_rows(t, d, zoo / roots[t]["path"], vocab, seen, heldout, cfg)
    report = {
        "zoo": str(zoo.resolve()),
        "config": cfg.to_dict(),
        "n_models": {t: len(d["ids"]) for t, d in trees.items()},
        "skipped": {t: d["skipped"] for t, d in trees.items()},
        "categories": {"seen": [vocab[c]["name"] for c in seen], "heldout": [vocab[c]["name"] for c in heldout]},
        "layer_sweep": sweep,
        "best_layer": {t: r["layer"] for t, r in best.items()},
        "best_settings": {t: r["settings"] for t, r in best.items()},
        "dense_settings": {t: _dense_settings(cfg, v) for t, v in dense_variant.items()},
        "largest_layer": {t: d["largest"] for t, d in trees.items()},
        "discovery": discovery,
        "rows": rows,
        "seconds": time.perf_counter() - t_start,
    }
    report["_map"] = fp_map
    return report


def _read_catalogue(zoo: Path) -> tuple[list[dict], dict, list[dict], dict]:
    """The zoo's models, roots, vocabulary and build config, from its catalogue."""
    with Catalogue(zoo) as cat:
        models, roots, vocab = cat.models(), cat.roots(), cat.get_meta("vocabulary", [])
        zcfg = cat.get_meta("config", {})
    if not models:
        raise InputError(f"zoo: {zoo} holds no models")
    return models, roots, vocab, zcfg


def _discover(zoo: Path, models: list[dict], roots: dict, cfg: EvalConfig, log) -> tuple[dict, dict]:
    """Trees discovered from weights alone against the catalogue's (ARI, overall and per hard pair); the map's data."""
    from lamina.weights.trees import adjusted_rand, discover_trees, fingerprint_files

    t0 = time.perf_counter()
    paths = [zoo / m["path"] for m in models]
    fp = fingerprint_files(paths, seed=cfg.seeds[0])
    found = discover_trees(fp)
    true = [models[i]["tree"] for i in fp.kept]
    discovery = {"ari": adjusted_rand(true, found), "n_found": len(set(found.tolist())),
                 "n_true": len(set(true)), "seconds": time.perf_counter() - t0, "skipped": fp.skipped}
    # trees told apart only by how they were fine-tuned: a nested root and its parent; two trees of one root
    pairs = [(r["parent"], r["name"]) for r in roots.values() if r["parent"]]
    names = sorted(roots)
    pairs += [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if roots[a]["path"] == roots[b]["path"]]
    for a, b in pairs:
        sel = [i for i, t in enumerate(true) if t in (a, b)]
        discovery[f"ari[{a} + {b}]"] = adjusted_rand([true[i] for i in sel], found[sel])
    log(f"tree discovery: ARI {discovery['ari']:.3f}, {discovery['n_found']} trees found of {discovery['n_true']}")
    return discovery, {"fingerprints": np.stack(fp.vectors), "keys": fp.keys, "true": true, "found": found.tolist()}


def _test_images(views: list, zcfg: dict, cfg: EvalConfig) -> np.ndarray:
    """(C, M, 28, 28) test-split images in [0, 1] that the zoo never trained on, for the data-aware probes."""
    from lamina.weights.zoo.data import category_pools, vocabulary

    imgs = category_pools(vocabulary(views), cfg.energy_images, split="test", seed=zcfg.get("seed", 0) + 1)
    return imgs.astype(np.float32) / 255.0


def _load_trees(zoo: Path, models: list[dict], roots: dict, vocab: list[dict], imgs: np.ndarray | None,
                cfg: EvalConfig, ctx, n_workers: int, log) -> dict[str, dict]:
    """Read every tree with enough models (:func:`_load_tree`, chunks of 50 in the workers); those with enough
    readable ones, each with its labels ``Y``."""
    trees = {}
    _D.clear()
    _D["images"] = imgs
    with ctx.Pool(n_workers) as pool:
        for tname in sorted(roots):
            ms = [m for m in models if m["tree"] == tname]
            if cfg.max_models_per_tree:
                ms = ms[: cfg.max_models_per_tree]
            if len(ms) < cfg.min_models:
                log(f"tree {tname}: only {len(ms)} models, left out")
                continue
            log(f"loading tree {tname} ({len(ms)} models)")
            chunks = [(zoo, ms[i : i + 50], zoo / roots[tname]["path"], roots[tname]["arch"])
                      for i in range(0, len(ms), 50)]
            d = _merge(pool.map(_load_chunk, chunks))
            for msg in d["skipped"]:
                log(f"warning: skipped {msg}")
            if len(d["ids"]) < cfg.min_models:
                log(f"tree {tname}: only {len(d['ids'])} readable models, left out")
                continue
            d["Y"] = labels_matrix(d["cats"], len(vocab))
            trees[tname] = d
    if not trees:
        raise InputError(f"zoo: {zoo} has no tree with at least {cfg.min_models} readable models")
    return trees


def _sweep(pool, trees: dict[str, dict], cfg: EvalConfig, log) -> tuple[list[dict], dict, dict]:
    """The layer/settings sweep of every tree in the workers: its runs, each tree's best run and dense variant."""
    sweep = pool.map(_sweep_task, [(t, k, v) for t, d in trees.items() for k in d["layers"]
                                   for v in range(1 + len(cfg.probex_grid))], chunksize=1)
    best = {t: _best_run([r for r in sweep if r["tree"] == t]) for t in trees}
    for t, d in trees.items():
        size = {k: int(np.prod(x.shape[1:])) for k, x in d["layers"].items()}
        tied = [k for k in d["layers"] if size[k] == max(size.values())]
        d["first_largest"] = tied[0]  # what trees are grouped by for the cross-tree probe
        # the largest layer; among layers of that size, the one the sweep liked best
        d["largest"] = _best_run([r for r in sweep if r["tree"] == t and r["layer"] in tied])["layer"]
    dense_variant = {t: _dense_variant(cfg, [r for r in sweep if r["tree"] == t]) for t in trees}
    for t, r in best.items():
        how = f", ProbeX settings {r['settings']}" if r["variant"] else ""
        log(f"tree {t}: best layer {r['layer']}{how} (validation mAP {r['val_map']:.3f})")
    return sweep, best, dense_variant


def _run_methods(pool, trees: dict[str, dict], best: dict, dense_variant: dict, cfg: EvalConfig) -> list[dict]:
    """Every method on every tree and seed in the workers (the longest tasks first); their result rows."""
    groups: dict[tuple, list[str]] = {}
    for t, d in trees.items():
        groups.setdefault((d["first_largest"], d["layers"][d["first_largest"]].shape[1:]), []).append(t)
    # the longest tasks first, so that the two workers finish together
    tasks = [("seed", ("dense", t, s, best[t]["layer"], trees[t]["largest"], dense_variant[t]))
             for s in cfg.seeds[: cfg.dense_seeds] for t in trees]
    tasks += [("cross", (ts, key[0], s)) for key, ts in groups.items() if len(ts) > 1 for s in cfg.seeds]
    tasks += [("seed", (part, t, s, best[t]["layer"], trees[t]["largest"], best[t]["variant"]))
              for part in ("probex", "cheap") for t in trees for s in cfg.seeds]
    jobs = [pool.apply_async(_seed_task if kind == "seed" else _cross_task, (a,)) for kind, a in tasks]
    rows = []
    for j in jobs:
        rows.extend(j.get())
    return rows
