"""A mixture of ProbeX experts over a whole collection: discover the trees, one expert per tree, route, search.

Training (:meth:`ProbeXMixture.fit_zoo`):

1. fingerprint every model and find the trees from weights alone (:mod:`lamina.weights.trees`);
2. per tree, a layer sweep: one ProbeX per candidate layer on the training models, the best on validation mAP
   is kept;
3. per tree, a :class:`~lamina.weights.text.aligner.TextAligner` that reads the expert's probe responses against the
   MiniLM embeddings of many phrasings of each category (:mod:`lamina.weights.text.phrasings`; held-out categories are
   never shown);
4. an index of every model in the zoo (tree, predicted probabilities, the aligner's compact features; float16) for
   search.

The mixture predicts for any model whose layers match a discovered tree: the router picks the tree, its expert
reads the tree's layer.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from lamina._io import load_checkpoint, save_checkpoint
from lamina._process import torch_threads
from lamina._validation import check_choice, check_positive_int, check_real, check_seed
from lamina.errors import InputError
from lamina.weights._checks import check_ranks, checkpoint_content
from lamina.weights.layers import is_head, load_layers, read_state
from lamina.weights.probes.linear import LowRankProbe
from lamina.weights.probes.metrics import labels_matrix, multilabel_metrics
from lamina.weights.probes.probex import ProbeX, ProbeXConfig, grid_configs, settings_text
from lamina.weights.probes.tree_expert import fit_candidate, fit_text_readout, improves
from lamina.weights.routing import Source, predict_batch, top_row
from lamina.weights.text.aligner import TextAligner, category_folds, embed_phrasings, embed_text
from lamina.weights.text.phrasings import category_phrasings
from lamina.weights.trees import Router, discover_trees, fingerprint_files
from lamina.weights.zoo.catalogue import Catalogue, verify_files
from lamina.weights.zoo.vit import is_adapter

KIND = "weights.ProbeXMixture"
logger = logging.getLogger(__name__)


# Text search on a tree of a text root: the query's best cosine similarity to a seen category's prompt below 0.4
# reads the root readout alone, above 0.6 the text readout alone, linearly between. Set on the MiniLM x WordNet zoo
# (queries "a model that recognises {plural}": seen categories 0.57-0.74 from their prompts, held-out 0.18-0.54);
# search mAP there, seen / held-out: 0.933 / 0.464 with this ramp, 0.933 / 0.110 with the text readout alone, 0.556 /
# 0.488 with the root readout alone (docs/weights.md).
ROOT_GATE = (0.4, 0.2)


def check_top(top) -> int:
    """The one rule for every ``top`` (predict and search): an integer >= 1."""
    return check_positive_int("top", top)


READERS = ("probex", "low-rank", "auto")


@dataclass
class TrainConfig:
    """How :meth:`ProbeXMixture.fit_zoo` trains.

    Attributes:
        probex: the experts' dimensions and training.
        probex_grid: other ProbeX settings (dicts over ``probex``) that the layer sweep may choose, per tree, on
            validation mAP (e.g. ``[{"activation": "linear", "weight_decay": 1e-3, "epochs": 60}]``).
        layers: candidate layers (``None``: every body tensor with >= 2 dimensions).
        heldout: category indices never shown to any probe (for zero-shot search); default none.
        val_fraction: share of each tree's models used to pick the layer.
        seed: split and initialisation seed.
        fingerprint_dim: random projection size for tree discovery.
        min_sep: separation a Ward split needs to count as two trees (see :func:`~lamina.weights.trees.separation`).
        reader: what gives the seen categories' probabilities of a tree: ``"probex"`` (its expert), ``"low-rank"``
            (a :class:`~lamina.weights.probes.linear.LowRankProbe` on the expert's layer, calibrated on the validation
            models) or ``"auto"`` (whichever of the two scores the higher validation mAP). ProbeX's probe responses
            serve the text readout and the search index in every case.
        low_rank: probes per category of the low-rank reader.
        text_ranks: ranks the text readout chooses from, per tree, by zero-shot mAP on folds of the seen
            categories (validation models; :func:`~lamina.weights.text.aligner.choose_text_rank`); empty: its fixed
            default.
    """

    probex: ProbeXConfig = field(default_factory=ProbeXConfig)
    probex_grid: list[dict] = field(default_factory=list)
    layers: list[str] | None = None
    heldout: list[int] = field(default_factory=list)
    val_fraction: float = 0.15
    seed: int = 0
    fingerprint_dim: int = 128
    min_sep: float = 6.0
    reader: str = "probex"
    low_rank: int = 2
    text_ranks: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.probex, dict):
            self.probex = ProbeXConfig.from_dict(self.probex)
        if not isinstance(self.probex, ProbeXConfig):
            raise InputError(f"probex: expected a ProbeXConfig or a dict, got {type(self.probex).__name__}")
        grid_configs(self.probex, self.probex_grid)  # checks the grid
        check_real("val_fraction", self.val_fraction, low=0.0, low_open=True, high=0.5, high_open=True)
        check_seed("seed", self.seed)
        if not isinstance(self.heldout, list | tuple) or any(isinstance(h, bool) or not isinstance(h, int | np.integer)
                                                              for h in self.heldout):
            raise InputError(f"heldout: expected a list of category indices, got {self.heldout!r}")
        self.heldout = [int(h) for h in self.heldout]
        check_positive_int("fingerprint_dim", self.fingerprint_dim)
        check_real("min_sep", self.min_sep, low=0.0, low_open=True)
        check_choice("reader", self.reader, READERS)
        check_positive_int("low_rank", self.low_rank)
        self.text_ranks = check_ranks("text_ranks", self.text_ranks)

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_layers(state: dict) -> list[str]:
    """Body tensors a probe can read: weights with >= 2 dimensions and LoRA pairs (read as ``B @ A``), the head
    (:func:`~lamina.weights.layers.is_head`) excluded."""
    weights = {k[: -len(".weight")] for k, v in state.items()
               if k.endswith(".weight") and np.ndim(v) >= 2 and not is_head(k)}
    lora = {k[: -len(".lora_A")] for k in state if k.endswith(".lora_A") and k[:-1] + "B" in state}
    return sorted(weights | lora)


def name_trees(found: np.ndarray, true_names: list[str]) -> list[str]:
    """Name each discovered cluster after the catalogue tree most of its members belong to (or tree-K)."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for k in sorted(set(found.tolist())):
        members = [true_names[i] for i in np.flatnonzero(found == k)]
        top = max(set(members), key=members.count) if members else ""
        names[k] = top if top and top not in used else f"tree-{k}"
        used.add(names[k])
    return [names[int(k)] for k in found]


class ProbeXMixture(BaseEstimator):
    """One ProbeX expert per discovered tree, a router, text aligners and a search index.

    Args:
        config: how :meth:`fit_zoo` trains (``None``: the defaults of :class:`TrainConfig`).
    """

    def __init__(self, config: TrainConfig | None = None):
        self.config = config

    # -------------------------------------------------------------------------------------------- training
    def fit_zoo(self, zoo: str | Path, *, log=None) -> ProbeXMixture:
        """Train on every model of a zoo folder (see the module docstring).

        Every model file is first checked against its catalogue sha256; a missing or altered file is dropped (a
        logged warning names it; ``dropped_`` lists them) and never read.

        Args:
            zoo: zoo folder (``lamina weights zoo build``).
            log: called with one line per step (default: ``logging`` at INFO level).
        """
        cfg = self.config if self.config is not None else TrainConfig()
        self.config_ = cfg
        log = log or logger.info
        zoo = Path(zoo)
        models, vocab, roots = self._read_zoo(zoo)
        folds = self._set_categories(vocab, cfg)
        models, paths, trees = self._find_trees(models, [zoo / m["path"] for m in models], cfg, log)
        Y = labels_matrix([m["categories"] for m in models], len(vocab))
        self.text_ = embed_text(self.prompts_)
        phrased = embed_phrasings(category_phrasings(self.categories_, self.prompts_))  # C arrays (P_c, 384)
        texts = [phrased[c] for c in self.seen_]
        self.experts_: dict[str, dict] = {}
        rng = np.random.default_rng(cfg.seed)
        for t in sorted(set(trees)):
            idx = np.array([i for i, x in enumerate(trees) if x == t])
            if len(idx) < 10:
                log(f"tree {t}: only {len(idx)} models, no expert")
                continue
            info = self._fit_tree(t, rng.permutation(idx), paths, Y, texts, folds, roots.get(t, {}), cfg, log)
            if info is not None:
                self.experts_[t] = info
        if not self.experts_:
            raise InputError(f"zoo: {zoo}: no tree has enough readable models to train an expert")
        self._build_index(models, paths, trees)
        return self

    def _read_zoo(self, zoo: Path) -> tuple[list[dict], list[dict], dict]:
        """The zoo's models whose file matches its catalogue sha256 (``dropped_``: the others), vocabulary, roots."""
        with Catalogue(zoo) as cat:
            models = cat.models()
            vocab = cat.get_meta("vocabulary", [])
            roots = cat.roots()
        if not models:
            raise InputError(f"zoo: {zoo} holds no models; build it with `lamina weights zoo build`")
        models, bad = verify_files(zoo, models)
        self.dropped_ = [message for _, message in bad]
        if bad:
            logger.warning("train: dropped %d model(s) whose file does not match its catalogue sha256: %s", len(bad),
                           "; ".join(self.dropped_))
        if not models:
            raise InputError(f"zoo: {zoo}: no model file matches its catalogue sha256; rebuild the zoo")
        return models, vocab, roots

    def _set_categories(self, vocab: list[dict], cfg: TrainConfig) -> list[list[int]]:
        """Set the categories, prompts and seen ones (``cfg.heldout`` checked); the text rank's folds, if any."""
        self.categories_ = [v["name"] for v in vocab]
        self.prompts_ = [v["prompt"] for v in vocab]
        C = len(vocab)
        bad = [h for h in cfg.heldout if not 0 <= h < C]
        if bad:
            raise InputError(f"heldout: category indices must lie in [0, {C}) for this zoo's {C} categories, got "
                             f"{bad}")
        if len(set(cfg.heldout)) >= C:
            raise InputError(f"heldout: holds out all {C} categories; at least one must be seen by the probes")
        self.seen_ = [c for c in range(C) if c not in set(cfg.heldout)]
        return category_folds(self.categories_, self.seen_) if cfg.text_ranks else []  # checks the names first

    def _find_trees(self, models: list[dict], paths: list[Path], cfg: TrainConfig,
                    log) -> tuple[list[dict], list[Path], list[str]]:
        """Fingerprint the models, discover and name their trees, fit the router; the fingerprinted models only."""
        log(f"fingerprinting {len(paths)} models")
        fp = fingerprint_files(paths, dim=cfg.fingerprint_dim, seed=cfg.seed)
        self.skipped_ = list(fp.skipped)
        models = [models[i] for i in fp.kept]
        paths = [paths[i] for i in fp.kept]
        found = discover_trees(fp, min_sep=cfg.min_sep)
        trees = name_trees(found, [m["tree"] for m in models])
        self.router_ = Router(cfg.fingerprint_dim, cfg.seed).fit(fp, trees)
        log(f"found {len(set(trees))} trees: " + ", ".join(f"{t} ({trees.count(t)})" for t in sorted(set(trees))))
        return models, paths, trees

    def _fit_tree(self, t: str, idx: np.ndarray, paths: list[Path], Y: np.ndarray, texts: list, folds: list[list[int]],
                  root: dict, cfg: TrainConfig, log) -> dict | None:
        """One tree's expert (models ``idx``, shuffled; the first ones validate): sweep, text readout, other readers."""
        val = idx[: max(2, round(cfg.val_fraction * len(idx)))]
        first = read_state(paths[idx[0]])
        have = candidate_layers(first)
        layers = [k for k in (cfg.layers or have) if k.removesuffix(".weight") in have]
        if not layers:
            raise InputError(f"layer: {', '.join(cfg.layers or [])} not in the models of tree {t} "
                             f"(e.g. {paths[idx[0]]}; layers: {', '.join(have)})")
        best = self._sweep_tree(t, idx, val, layers, paths, Y, cfg, log)
        if best is None:
            return None
        Xtr, Xva, tr_ids = best["Xtr"], best["Xva"], best["tr_ids"]
        Ytr, Yva = Y[tr_ids][:, self.seen_], Y[best["va_ids"]][:, self.seen_]
        if cfg.text_ranks:  # the readout's rank by zero-shot on folds of the seen categories (validation models)
            log(f"tree {t}: choosing the text readout's rank ({len(folds)} folds, the expert refitted for each)")
        aligner, rank, cv = fit_text_readout(best["expert"], Xtr, Ytr, Xva, Yva, texts, folds=folds,
                                             ranks=cfg.text_ranks, seed=cfg.seed)
        if cfg.text_ranks:
            log(f"tree {t}: text readout rank {rank} (zero-shot mAP on seen-category folds: "
                + ", ".join(f"rank {r} {v:.3f}" for r, v in cv.items()) + ")")
        info = {"layer": best["layer"], "expert": best["expert"], "aligner": aligner, "val_map": best["val_map"],
                "n_train": len(tr_ids), "reader": "probex"}
        if cfg.reader != "probex":
            self._fit_low_rank(t, info, cfg, Xtr, Ytr, Xva, Yva, log)
        if root.get("arch", {}).get("arch") == "minilm":  # a text root reads category names
            self._fit_root(t, info, [paths[i] for i in tr_ids], Ytr, layers, is_adapter(first), log)
        return info

    def _sweep_tree(self, t: str, idx: np.ndarray, val: np.ndarray, layers: list[str], paths: list[Path],
                    Y: np.ndarray, cfg: TrainConfig, log) -> dict | None:
        """The layer/settings sweep of a tree: the best run (:func:`improves`) with its layer's training data."""
        candidates = list(enumerate(zip([{}, *cfg.probex_grid], grid_configs(cfg.probex, cfg.probex_grid),
                                        strict=True)))
        best = None
        for layer in layers:
            X, kept, _ = load_layers([paths[i] for i in idx], layer)
            if len(kept) == 0:
                continue
            rows = idx[kept]  # model indices whose layer was read, in X's order
            is_val = np.isin(rows, val)
            for variant, (settings, pcfg) in candidates:
                est, score = fit_candidate(pcfg, X[~is_val], Y[rows[~is_val]][:, self.seen_], X[is_val],
                                           Y[rows[is_val]][:, self.seen_])
                how = f" {settings_text(settings)}" if cfg.probex_grid else ""
                log(f"tree {t}: layer {layer} {tuple(X.shape[1:])}{how}: validation mAP {score:.3f}")
                run = {"layer": layer, "variant": variant, "val_map": score, "expert": est}
                if improves(run, best):
                    best = {**run, "Xtr": X[~is_val], "tr_ids": rows[~is_val], "Xva": X[is_val], "va_ids": rows[is_val]}
        return best

    @staticmethod
    def _fit_low_rank(tree: str, info: dict, cfg: TrainConfig, Xtr, Ytr, Xva, Yva, log) -> None:
        """Fit the low-rank reader of a tree on its expert's layer; keep it per ``cfg.reader`` (see TrainConfig)."""
        low = LowRankProbe(rank=cfg.low_rank).fit(Xtr, Ytr)
        try:
            val = multilabel_metrics(Yva, low.decision_function(Xva))["map"]
            low.calibrate(Xva, Yva)
        except InputError as exc:  # too few validation models to score or calibrate: ProbeX stays
            log(f"tree {tree}: low-rank reader not used ({exc})")
            return
        log(f"tree {tree}: low-rank reader on {info['layer']}: validation mAP {val:.3f} (ProbeX {info['val_map']:.3f})")
        info["low_rank_val_map"] = val  # kept or not, so that the choice can be checked
        if cfg.reader == "low-rank" or val > info["val_map"] or np.isnan(info["val_map"]):
            info.update(reader="low-rank", low_rank=low, val_map=val, probex_val_map=info["val_map"])

    def _fit_root(self, tree: str, info: dict, paths: list[Path], Y: np.ndarray, layers: list[str], lora: bool,
                  log) -> None:
        """The root-response readout of a tree whose root is the released MiniLM (its layer and phrasing chosen on
        the expert's training models and seen categories); text search reads it for queries far from the seen
        categories (:data:`ROOT_GATE`)."""
        from lamina.weights.text.root_response import RootResponseReadout
        from lamina.weights.zoo.minilm import minilm_path

        readout = RootResponseReadout(minilm_path(), lora=lora)
        usable = readout.usable_layers(layers)
        if not usable:
            return
        def load(layer):
            X, kept, _ = load_layers(paths, layer, warn=False)
            return readout.deltas(layer, X), Y[kept]

        names = {"name": [self.categories_[c] for c in self.seen_], "prompt": [self.prompts_[c] for c in self.seen_]}
        readout.fit(usable, load, names)
        info["root"] = readout
        log(f"tree {tree}: root-response readout on {readout.layer_} ({readout.phrasing_}): seen-category mAP "
            f"{readout.scores_[readout.phrasing_ + '@' + readout.layer_]:.3f} on the training models")

    def _root_factors(self, tree: str, paths: list[Path]) -> np.ndarray:
        """(n, 16, d_in) compressed changes of the tree's root-readout layer (:func:`change_factors`)."""
        from lamina.weights.text.root_response import change_factors

        readout = self.experts_[tree]["root"]
        X, kept, _ = load_layers(paths, readout.layer_, warn=False)
        if len(kept) != len(paths):
            raise InputError(f"tree {tree}: {len(paths) - len(kept)} model(s) lack the layer {readout.layer_}")
        return change_factors(readout.deltas(readout.layer_, X))

    def _build_index(self, models: list[dict], paths: list[Path], trees: list[str]) -> None:
        ids, tr, probs, zs = [], [], [], []
        self.index_root_ = {}
        for t, info in self.experts_.items():
            sel = [i for i, x in enumerate(trees) if x == t]
            X, kept, _ = load_layers([paths[i] for i in sel], info["layer"], warn=False)
            if not kept:
                continue
            F = info["aligner"].features(info["expert"].responses(X))
            probs.append(self._probs(t, X, F))
            zs.append(F)
            if "root" in info:
                self.index_root_[t] = self._root_factors(t, [paths[sel[k]] for k in kept]).astype(np.float16)
            ids += [models[sel[k]]["id"] for k in kept]
            tr += [t] * len(kept)
        self.index_ids_, self.index_trees_ = ids, tr
        self.index_probs_ = np.concatenate(probs).astype(np.float32)
        width = max(z.shape[1] for z in zs)  # trees may differ in feature size: pad to one array
        self.index_z_ = np.concatenate([np.pad(z, ((0, 0), (0, width - z.shape[1]))) for z in zs]).astype(np.float16)

    # -------------------------------------------------------------------------------------------- inference
    def _probs(self, tree: str, X: np.ndarray, F: np.ndarray | None = None,
               seen: np.ndarray | None = None) -> np.ndarray:
        """(N, C) probability of every category: the expert's head for seen ones, the text readout for the rest.

        ``F``: the text readout's features of X, ``seen``: the expert's (N, C_seen) probabilities, if already computed
        (unused where the tree's reader is the low-rank probe).
        """
        info = self.experts_[tree]
        F = info["aligner"].features(info["expert"].responses(X)) if F is None else F
        out = info["aligner"].predict_proba_features(F, self.text_)
        if info["reader"] == "low-rank":  # the tree's reader gives the seen categories (``seen`` is ProbeX's)
            seen = info["low_rank"].predict_proba(X)
        elif seen is None:
            seen = info["expert"].predict_proba(X)
        out[:, self.seen_] = seen
        return out

    def route(self, state: dict, source: str = "model") -> str:
        tree, _ = self.router_.route_state(state, source=source)
        if tree not in self.experts_:
            raise InputError(f"{source}: belongs to tree {tree!r}, which has no expert (too few models)")
        return tree

    def predict_file(self, path: str | Path) -> dict:
        """Route a model file to its tree and predict which categories it was trained on (the file is read once).

        Returns:
            ``{"tree", "layer", "probabilities": (C,) array}``.
        """
        r = predict_batch(self, [Source(Path(path))], "raise")[0]
        return {"tree": r["tree"], "layer": r["layer"], "probabilities": r["probabilities"]}

    def top_categories(self, path: str | Path, *, top: int = 10) -> dict:
        """The ``top`` most likely training categories of a model file, best first.

        Args:
            path: a model file (.safetensors).
            top: how many categories to list, an integer >= 1 (at most all of them are listed).

        Returns:
            ``{"model", "tree", "layer", "categories": [{"name", "probability", "source"}]}``; ``source`` is
            ``"expert"`` for a category the probes were trained on, ``"text (zero-shot)"`` otherwise.
        """
        top = check_top(top)
        return top_row(self, {"model": str(path), **self.predict_file(path)}, top)

    def text_scores(self, query: str, index=None) -> np.ndarray:
        """Probability per indexed model that it learned what ``query`` describes, (N_index,).

        ``index``: a :class:`~lamina.weights.serve.index.ModelIndex` built with this probe (default: the probe's own).
        """
        with torch_threads(1):  # one short text: more threads only spin on a shared machine (500 ms against 30)
            t = embed_text([query])
        if index is not None:
            return index.text_scores(self, t)
        out = np.zeros(len(self.index_ids_), np.float32)
        trees = np.array(self.index_trees_)
        for tree, info in self.experts_.items():
            sel = np.flatnonzero(trees == tree)
            if sel.size == 0:
                continue
            out[sel] = info["aligner"].predict_proba_features(self._index_z(tree, sel), t)[:, 0]
            if "root" in info and tree in self.index_root_:  # a text root: its root readout where the text
                w = self._aligner_weight(t[0])                 # readout has not seen the like of the query
                if w < 1:
                    root = info["root"].predict_proba_factors(self.index_root_[tree], [query])[:, 0]
                    out[sel] = w * out[sel] + (1 - w) * root
        return out

    def _aligner_weight(self, t: np.ndarray) -> float:
        """How much a text query is read by the text readout rather than the root readout: 1 when the query lies
        as near a seen category's prompt as the seen categories' own queries do, 0 when it lies far from all of
        them (a linear ramp in the best cosine similarity, :data:`ROOT_GATE`)."""
        low, width = ROOT_GATE
        near = float(np.max(self.text_[self.seen_] @ np.asarray(t, np.float32)))
        return float(np.clip((near - low) / width, 0.0, 1.0))

    def _index_z(self, tree: str, sel: np.ndarray) -> np.ndarray:
        return self.index_z_[sel, : self.experts_[tree]["aligner"].n_features].astype(np.float32)

    # -------------------------------------------------------------------------------------------- storage
    def save(self, directory: str | Path, *, zoo: str | Path | None = None) -> Path:
        tensors = {"text": self.text_, "index.probs": self.index_probs_}
        trees_doc = {}
        for t, info in self.experts_.items():
            tensors.update(info["expert"].state_tensors(f"{t}/expert."))
            tensors.update(info["aligner"].state_tensors(f"{t}/aligner."))
            trees_doc[t] = {"layer": info["layer"], "val_map": info["val_map"], "n_train": info["n_train"],
                            "expert": info["expert"].state_config(), "aligner": info["aligner"].state_config(),
                            "reader": info["reader"]}
            if "low_rank_val_map" in info:
                trees_doc[t]["low_rank_val_map"] = info["low_rank_val_map"]
            if "root" in info:
                rt, rdoc = info["root"].state(f"{t}/root.")
                tensors.update(rt)
                tensors[f"{t}/root.index"] = self.index_root_[t]
                trees_doc[t]["root"] = rdoc
            if info["reader"] == "low-rank":
                tensors.update(info["low_rank"].state_tensors(f"{t}/low_rank."))
                trees_doc[t]["low_rank"] = info["low_rank"].state_config()
                trees_doc[t]["probex_val_map"] = info["probex_val_map"]
        rt, rdoc = self.router_.to_state()
        tensors.update(rt)
        tensors["index.z"] = self.index_z_
        cfg = {"train": self.config_.to_dict(), "trees": trees_doc, "router": rdoc, "categories": self.categories_,
               "prompts": self.prompts_, "seen": self.seen_, "index_ids": self.index_ids_,
               "index_trees": self.index_trees_}
        meta = {"zoo": str(Path(zoo).resolve()) if zoo else None, "skipped": self.skipped_,
                "dropped": getattr(self, "dropped_", [])}
        return save_checkpoint(directory, tensors, kind=KIND, config=cfg, metadata=meta)

    @classmethod
    def load(cls, directory: str | Path) -> ProbeXMixture:
        tensors, doc = load_checkpoint(directory, kind=KIND)
        with checkpoint_content(directory):
            t = {k: v.numpy() for k, v in tensors.items()}
            cfg = doc["config"]
            m = cls(TrainConfig(**cfg["train"]))
            m.config_ = m.config
            m.categories_, m.prompts_, m.seen_ = cfg["categories"], cfg["prompts"], cfg["seen"]
            m.text_ = t["text"]
            m.router_ = Router.from_state(t, cfg["router"])
            m.experts_, m.index_root_ = {}, {}
            for tree, d in cfg["trees"].items():
                m.experts_[tree] = {
                    "layer": d["layer"], "val_map": d["val_map"], "n_train": d["n_train"],
                    "expert": ProbeX.from_state(t, d["expert"], prefix=f"{tree}/expert."),
                    "aligner": TextAligner.from_state(t, d["aligner"], prefix=f"{tree}/aligner."),
                    "reader": d.get("reader", "probex"),  # probes saved before readers existed: ProbeX
                }
                if "low_rank_val_map" in d:
                    m.experts_[tree]["low_rank_val_map"] = d["low_rank_val_map"]
                if "root" in d:  # the released MiniLM, from its package (the probe keeps only its readout)
                    from lamina.weights.text.root_response import RootResponseReadout
                    from lamina.weights.zoo.minilm import minilm_path

                    m.experts_[tree]["root"] = RootResponseReadout.from_state(minilm_path(), t, d["root"],
                                                                              f"{tree}/root.")
                    m.index_root_[tree] = t[f"{tree}/root.index"]
                if m.experts_[tree]["reader"] == "low-rank":
                    m.experts_[tree]["low_rank"] = LowRankProbe.from_state(t, d["low_rank"], prefix=f"{tree}/low_rank.")
                    m.experts_[tree]["probex_val_map"] = d["probex_val_map"]
            m.index_ids_, m.index_trees_ = cfg["index_ids"], cfg["index_trees"]
            m.index_probs_, m.index_z_ = t["index.probs"], t["index.z"]
            m.skipped_ = doc.get("metadata", {}).get("skipped", [])
            m.dropped_ = doc.get("metadata", {}).get("dropped", [])
            m.sha256_ = doc.get("sha256")  # names this probe in the search indexes built with it
            m.path_ = str(Path(directory).resolve())
        return m

