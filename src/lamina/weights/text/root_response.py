"""Zero-shot through the root: how strongly a fine-tune's change of one layer answers the root's own reading of a
category's name.

A tree whose root is a text encoder (all-MiniLM-L6-v2 for the WordNet zoo) can read a category name itself. Push
the name through the root and keep the token states X (T x d_in) that enter an attention projection of layer l
(query, key or value: the states leaving layer l - 1). Fine-tuning writes its training texts into that projection:
each gradient step adds (error) x (input state), so the change D = W_tuned - W_root (for a LoRA adapter, its
product B A) answers strongly to inputs that look like the texts it was tuned on. The score of a model for a
category is the share of the change's energy those inputs draw,

    e(D, X) = mean over tokens t of ||D x_t||^2 / (||D||_F^2 ||x_t||^2),

divided by the same energy averaged over the tree's training models (a category whose name every change answers
to is not evidence of any one fine-tune). Nothing is learned from labels but two choices: which layer, and which
phrasing of a category (its name, or its prompt), both picked by mean average precision on the categories seen
in training (:meth:`RootResponseReadout.fit`); held-out categories are never looked at.

No text-to-weight map is trained, so the readout does not depend on how many categories a probe saw: on the
MiniLM x WordNet LoRA tree it reads held-out categories at several times chance where the learned text readout
(:class:`~lamina.weights.text.aligner.TextAligner`, which must carry 32 seen categories over to 8 new ones)
stays near it (``lamina weights evaluate``, method ``zero-shot (root)``; figures in docs/weights.md).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from lamina.errors import InputError
from lamina.weights.probes.metrics import multilabel_metrics

# the attention projections whose input is the output of the layer below (BERT's post-norm hidden states)
_PROJECTION = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)$")


def projection_input(layer: str) -> int | None:
    """Index of the hidden state (0: the embeddings) that enters ``layer``, a BERT attention projection
    (``...encoder.layer.{i}.attention.self.{query,key,value}``); None for any other layer."""
    m = _PROJECTION.search(layer)
    return int(m.group(1)) if m else None


def root_key(layer: str, root_keys) -> str:
    """The key of ``layer``'s weight in a root state dict that may lack the task model's prefix (``bert.``)."""
    suffix = layer[layer.index("encoder.layer."):] + ".weight"
    hits = [k for k in root_keys if k == suffix or k.endswith("." + suffix)]
    if len(hits) != 1:
        raise InputError(f"root: expected one weight for {layer!r}, found {len(hits)}")
    return hits[0]


@lru_cache(maxsize=2)
def _load_root(root: str):
    from transformers import AutoTokenizer, BertModel

    from lamina.weights.text.aligner import quiet_transformers

    with quiet_transformers():
        return (AutoTokenizer.from_pretrained(root, local_files_only=True),
                BertModel.from_pretrained(root, local_files_only=True).eval())


def root_token_states(root: str | Path, texts: list[str], indices: list[int]) -> dict[int, list[np.ndarray]]:
    """The unit-normalised token states of each text that enter the layers at hidden-state ``indices``.

    Args:
        root: a Hugging Face BERT folder (config.json, model weights and tokenizer), read with
            ``local_files_only=True``.
        texts: the category texts.
        indices: hidden-state indices (:func:`projection_input`).

    Returns:
        ``{index: [(T_c, d) float32 per text]}``, the padding tokens dropped.
    """
    import torch

    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise InputError("text: expected non-empty category texts")
    root = Path(root).resolve()
    if not (root / "config.json").is_file():
        raise InputError(f"root: {root} is not a Hugging Face model folder (no config.json)")
    tok, model = _load_root(str(root))
    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    keep = enc["attention_mask"].numpy().astype(bool)
    out = {}
    for i in sorted(set(indices)):
        if not 0 <= i < len(hidden):
            raise InputError(f"root: no hidden state {i} (the root has {len(hidden) - 1} layers)")
        states = []
        for j in range(len(texts)):
            x = hidden[i][j][keep[j]].numpy().astype(np.float32)
            states.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
        out[i] = states
    return out


def response_energy(deltas: np.ndarray, states: list[np.ndarray]) -> np.ndarray:
    """e(D_n, X_c) for every change D_n (n, d_out, d_in) and every text's token states X_c (T_c, d_in): (n, C)."""
    deltas = np.asarray(deltas, dtype=np.float32)
    if deltas.ndim != 3 or not states or any(s.ndim != 2 or s.shape[1] != deltas.shape[2] for s in states):
        raise InputError(f"root response: expected changes (n, d_out, d_in) and token states (T, d_in), got "
                         f"{deltas.shape} and {[s.shape for s in states][:3]}")
    x = np.concatenate(states)  # (sum T, d_in)
    bounds = np.cumsum([0] + [len(s) for s in states])
    norm = np.einsum("nij,nij->n", deltas, deltas)
    out = np.empty((len(deltas), len(states)), dtype=np.float64)
    n, d_out, d_in = deltas.shape
    for s in range(0, n, 64):  # one matrix product per 64 models: (64 d_out, d_in) x (d_in, sum T)
        b = deltas[s : s + 64]
        e = ((b.reshape(-1, d_in) @ x.T) ** 2).reshape(len(b), d_out, -1).sum(1)  # (b, sum T)
        out[s : s + 64] = np.add.reduceat(e, bounds[:-1], axis=1) / np.diff(bounds)
    return out / np.maximum(norm, 1e-30)[:, None]


def change_factors(deltas: np.ndarray, rank: int = 16) -> np.ndarray:
    """The leading ``rank`` rows of S V^T of each change scaled to unit Frobenius norm, (n, rank, d_in): what a
    search index keeps of a model (``||F x||^2`` is the change's energy on x, exactly where the change has rank <=
    ``rank``, as a LoRA adapter of that rank; otherwise its leading part)."""
    d = np.asarray(deltas, dtype=np.float32)
    d = d / np.sqrt(np.einsum("nij,nij->n", d, d)).clip(1e-30)[:, None, None]
    _, sv, vt = np.linalg.svd(d, full_matrices=False)
    k = min(rank, sv.shape[1])
    return (sv[:, :k, None] * vt[:, :k]).astype(np.float32)


class RootResponseReadout:
    """Zero-shot scores of fine-tunes of a text root for categories named in words (see the module text).

    Args:
        root: the tree's root, a Hugging Face BERT folder.
        lora: the tree's layers are LoRA products ``B @ A`` (already the change), not fine-tuned weights.

    Attributes (after :meth:`fit`):
        layer_, phrasing_: the chosen projection layer and phrasing; ``scores_``: seen-category mAP of every
        (phrasing, layer) tried; ``reference_``: (d_in, d_in) mean of D^T D / ||D||_F^2 over the training models
        at the chosen layer, which scales a new category's energies; ``calibration_``: (a, b) of the probability
        ``sigmoid(a log(score) + b)``, fitted on the seen categories of the training models.
    """

    def __init__(self, root: str | Path, *, lora: bool = False):
        self.root = Path(root)
        self.lora = lora

    @staticmethod
    def usable_layers(layers) -> list[str]:
        return [k for k in layers if projection_input(k) is not None]

    def deltas(self, layer: str, weights: np.ndarray) -> np.ndarray:
        """The change of ``layer`` in models whose weights are ``weights`` (n, d_out, d_in): the weights themselves
        for LoRA products (:attr:`lora`), else minus the root's weight (only that tensor of the root is read)."""
        w = np.asarray(weights, dtype=np.float32)
        if self.lora:
            return w
        from lamina.weights.io.readers import read_model

        suffix = layer[layer.index("encoder.layer."):] + ".weight"
        state = read_model(self.root, lambda k: k == suffix or k.endswith("." + suffix))
        w0 = np.asarray(state[root_key(layer, state)], dtype=np.float32)
        if w0.shape != w.shape[1:]:
            raise InputError(f"root: {layer} is {w0.shape} in the root but {w.shape[1:]} in the models")
        return w - w0

    def fit(self, layers: list[str], load, phrasings: dict[str, list[str]]) -> RootResponseReadout:
        """Choose the layer and the phrasing by mAP on the seen categories of the training models.

        Args:
            layers: candidate layers (those that are no BERT attention projection are passed over).
            load: ``load(layer) -> (changes (n, d_out, d_in), Y (n, C_seen))``, called once per usable layer.
            phrasings: {name: one text per seen category}.
        """
        from sklearn.linear_model import LogisticRegression

        usable = self.usable_layers(layers)
        if not usable:
            raise InputError(f"root response: no BERT attention projection among the layers {sorted(layers)}")
        layers = usable
        index = [projection_input(k) for k in layers]
        states = {name: root_token_states(self.root, texts, index) for name, texts in phrasings.items()}
        self.scores_ = {}
        best = None
        for k in layers:
            d, Y = load(k)
            Y = np.asarray(Y)
            for name, texts in phrasings.items():
                if len(texts) != Y.shape[1]:
                    raise InputError(f"root response: phrasing {name!r} has {len(texts)} texts for {Y.shape[1]} "
                                     "categories")
                e = response_energy(d, states[name][projection_input(k)])
                m = multilabel_metrics(Y, e / e.mean(0, keepdims=True))["map"]
                self.scores_[f"{name}@{k}"] = m
                if best is None or m > best[0]:
                    best = (m, name, k, d, e, Y)
        _, self.phrasing_, self.layer_, d, e, Y = best
        ref = np.zeros((d.shape[2], d.shape[2]))
        for s in range(0, len(d), 64):  # the mean of D^T D / ||D||^2, 64 changes per matrix product
            b = d[s : s + 64]
            u = (b / np.sqrt(np.einsum("nij,nij->n", b, b)).clip(1e-30)[:, None, None]).reshape(-1, d.shape[2])
            ref += u.T @ u
        self.reference_ = ref / len(d)
        ref = self._reference_energy(states[self.phrasing_][projection_input(self.layer_)])
        x, y = np.log(np.maximum(e / ref, 1e-12)).reshape(-1, 1), Y.reshape(-1) > 0.5
        if y.all() or not y.any():
            raise InputError("root response: the training models need both trained and untrained categories")
        lr = LogisticRegression(C=1e4).fit(x, y)
        self.calibration_ = (float(lr.coef_[0, 0]), float(lr.intercept_[0]))
        return self

    def _reference_energy(self, states: list[np.ndarray]) -> np.ndarray:
        return np.maximum([np.einsum("ti,ij,tj->t", s, self.reference_, s).mean() for s in states], 1e-30)

    def _states(self, texts: list[str]) -> list[np.ndarray]:
        if not hasattr(self, "layer_"):
            from lamina.weights._checks import NotFittedError

            raise NotFittedError("RootResponseReadout: call fit first")
        return root_token_states(self.root, texts, [projection_input(self.layer_)])[projection_input(self.layer_)]

    def decision_function(self, deltas: np.ndarray, texts: list[str]) -> np.ndarray:
        """(n, C) scores of changes at :attr:`layer_` for categories phrased as ``texts`` (1 = as strongly as the
        average training model answers)."""
        x = self._states(texts)
        return response_energy(deltas, x) / self._reference_energy(x)[None, :]

    def predict_proba(self, deltas: np.ndarray, texts: list[str]) -> np.ndarray:
        """(n, C) calibrated probabilities that each change was trained on each category phrased as ``texts``."""
        return self._calibrated(self.decision_function(deltas, texts))

    def predict_proba_factors(self, factors: np.ndarray, texts: list[str]) -> np.ndarray:
        """(n, C) calibrated probabilities from compressed changes (:func:`change_factors`)."""
        x = self._states(texts)
        f = np.asarray(factors, dtype=np.float32)
        e = np.stack([((f @ s.T) ** 2).sum(1).mean(1) for s in x], axis=1)  # (n, C): unit-norm changes
        return self._calibrated(e / self._reference_energy(x)[None, :])

    def _calibrated(self, score: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        a, b = self.calibration_
        return expit(a * np.log(np.maximum(score, 1e-12)) + b)

    def state(self, prefix: str) -> tuple[dict, dict]:
        """Tensors and a JSON-able document to store the fitted readout (see :meth:`from_state`)."""
        return ({f"{prefix}reference": self.reference_.astype(np.float32)},
                {"layer": self.layer_, "phrasing": self.phrasing_, "calibration": list(self.calibration_),
                 "scores": self.scores_, "lora": self.lora})

    @classmethod
    def from_state(cls, root: str | Path, tensors: dict, doc: dict, prefix: str) -> RootResponseReadout:
        est = cls(root, lora=bool(doc.get("lora", False)))
        est.layer_, est.phrasing_, est.scores_ = doc["layer"], doc["phrasing"], doc["scores"]
        est.calibration_ = tuple(doc["calibration"])
        est.reference_ = np.asarray(tensors[f"{prefix}reference"], dtype=np.float64)
        return est
