"""ProbeX: a light probe that reads what a model was trained on from one layer of its weights.

Reference: Horwitz et al., "Learning on Model Weights using Tree Experts", CVPR 2025 (arXiv 2410.13569).

One expert reads a weight matrix X of shape (d_H, d_W) (see :mod:`lamina.weights.layers` for the reshape rules):

1. probes U (d_W, r_U): responses ``X @ U`` -> (B, d_H, r_U);
2. shared projection V (d_H -> r_V, no bias) over the transposed responses -> (B, r_U, r_V); ReLU (the paper's
   choice; ``activation="linear"`` leaves it out, so that the expert is linear in the weights, which reads LoRA
   adapters better: see ``docs/weights.md``);
3. per-probe encoders: flatten and one Linear(r_U * r_V -> r_T) -> the model's representation z (B, r_T);
4. head: Linear(r_T -> C) logits, trained with BCEWithLogits on "was category c in the training data".

Before the probes, each matrix is centred on the training models' mean (within a tree that removes the shared
root) and scaled to norm sqrt(d_H) (unit rms rows), which removes the nuisance of how far fine-tuning moved it.
The probes U start at the top principal directions of the training matrices' rows (``init="pca"``). With
``activation="linear"`` the whole expert is a bilinear readout, and ``init="ridge"`` starts it at the closed-form ridge
solution written in its factors (:func:`ridge_factors`): on a LoRA tree the usual start does not train up to what the
view can hold (``docs/weights.md``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator
from torch import nn

from lamina._io import load_checkpoint, save_checkpoint
from lamina._process import torch_seed
from lamina._validation import check_choice, check_memory, check_positive_int, check_real, check_seed
from lamina.errors import InputError
from lamina.weights._checks import NotFittedError, checkpoint_content
from lamina.weights.probes._linalg import leading_singular_vectors
from lamina.weights.probes._train import train_bce

KIND = "weights.ProbeX"
ACTIVATIONS = ("relu", "linear")  # after the shared projection V
INITS = ("pca", "random", "ridge")
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)  # the penalties init="ridge" chooses among (leave-one-out)


@dataclass
class ProbeXConfig:
    """Dimensions and training of one ProbeX expert.

    The defaults were chosen on the development zoo (``--config dev``, never the benchmark zoo): 64 probes, a shared
    projection of 64 and a representation of 64 (test mAP 0.859 +- 0.011 over three splits, against 0.840 for 128 /
    16 / 128 and 0.848 for the dense logistic probe; ``benchmarks/weights_probex_dims.py``), strong dropout before
    the encoder, 20 epochs of Adam with batch 32. ``init="pca"`` starts the probes at the top principal directions
    of the training matrices' rows; ``init="ridge"`` (with ``activation="linear"``) starts every weight at the ridge
    solution in ProbeX's factors, and then ``epochs=0`` keeps that closed-form expert as it is.
    """

    r_u: int = 64
    r_v: int = 64
    r_t: int = 64
    epochs: int = 20
    lr: float = 3e-3
    weight_decay: float = 1e-5
    batch_size: int = 32
    dropout: float = 0.5
    center: bool = True
    normalize: bool = True
    init: str = "pca"
    activation: str = "relu"
    seed: int = 0

    def __post_init__(self) -> None:
        for k in ("r_u", "r_v", "r_t", "batch_size"):
            check_positive_int(k, getattr(self, k))
        check_positive_int("epochs", self.epochs, minimum=0 if self.init == "ridge" else 1)
        check_real("lr", self.lr, low=0.0, low_open=True)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_real("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_seed("seed", self.seed)
        if not isinstance(self.center, bool) or not isinstance(self.normalize, bool):
            raise InputError(f"center / normalize: expected True or False, got {self.center!r} / {self.normalize!r}")
        check_choice("init", self.init, INITS)
        check_choice("activation", self.activation, ACTIVATIONS)
        if self.init == "ridge" and self.activation != "linear":
            raise InputError("init='ridge' needs activation='linear': the ridge solution is linear in the weights, "
                             "and a ReLU after the shared projection cannot hold it")
        check_fit_memory(self, 1, 1, 1)  # the part no layer shape changes, before any zoo is read

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ProbeXConfig:
        return cls(**d)


def grid_configs(base: ProbeXConfig, grid: list[dict], name: str = "probex_grid") -> list[ProbeXConfig]:
    """``base`` and one config per entry of ``grid`` (each a dict of :class:`ProbeXConfig` settings over ``base``,
    any but the seed): the candidates a validation sweep chooses from. Bad entries raise :class:`InputError`."""
    if not isinstance(grid, list) or not all(isinstance(o, dict) for o in grid):
        raise InputError(f"{name}: expected a list of dicts of ProbeX settings, got {grid!r}")
    allowed = set(ProbeXConfig.__dataclass_fields__) - {"seed"}
    out = [base]
    for o in grid:
        bad = sorted(map(repr, set(o) - allowed))
        if bad:
            raise InputError(f"{name}: unknown ProbeX setting(s) {', '.join(bad)}")
        out.append(ProbeXConfig(**{**base.to_dict(), **o}))  # checks the values
    if any(not o for o in grid) or len({repr(sorted(o.items())) for o in grid}) < len(grid):
        raise InputError(f"{name}: an empty or repeated entry (the default settings are always tried)")
    return out


def settings_text(settings: dict) -> str:
    """A grid entry as ``"activation=linear, weight_decay=0.001"`` (``"default"`` when empty), for logs and reports."""
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "default"


def check_fit_memory(cfg: ProbeXConfig, d_h: int, d_w: int, n_classes: int) -> None:
    """Refuse, before anything is allocated, dimensions whose training cannot fit in the memory available: the
    weights with their gradients and Adam's two moments, one batch's activations, and the start (PCA probes, or
    the ridge factors in float64). A lower estimate."""
    params = d_w * cfg.r_u + d_h * cfg.r_v + cfg.r_u * cfg.r_v * cfg.r_t + cfg.r_t + (cfg.r_t + 1) * n_classes
    activations = cfg.batch_size * (d_h * cfg.r_u + 2 * cfg.r_u * cfg.r_v + cfg.r_t) * 4 * 2
    start = 8 * d_w * cfg.r_u if cfg.init == "pca" else 0
    if cfg.init == "ridge":
        start = 8 * (n_classes * cfg.r_u * cfg.r_v + cfg.r_u * cfg.r_v * cfg.r_t + d_w * cfg.r_u + d_h * cfg.r_v)
    layer = f", layer {d_h} x {d_w}" if d_h * d_w > 1 else ""
    check_memory("r_u, r_v, r_t", 16 * params + activations + start,
                 f"a ProbeX expert of {params:.3g} parameters (r_u {cfg.r_u}, r_v {cfg.r_v}, r_t {cfg.r_t}{layer})",
                 hint="use smaller r_u, r_v, r_t (CLI: --r-u, --r-v, --r-t)")


class ProbeXNet(nn.Module):
    """The ProbeX network for inputs of shape (B, d_H, d_W)."""

    def __init__(self, d_h: int, d_w: int, n_classes: int, cfg: ProbeXConfig):
        super().__init__()
        self.U = nn.Parameter(torch.randn(d_w, cfg.r_u))  # rows of X have unit rms norm after preprocess
        self.V = nn.Linear(d_h, cfg.r_v, bias=False)
        self.encoder = nn.Linear(cfg.r_u * cfg.r_v, cfg.r_t)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.r_t, n_classes)
        self.relu = cfg.activation == "relu"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        r = x @ self.U  # (B, d_H, r_U)
        h = self.V(r.transpose(1, 2))  # (B, r_U, r_V)
        if self.relu:
            h = torch.relu(h)
        return self.encoder(self.drop(h.flatten(1)))  # (B, r_T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # (B, C)


def preprocess(x: np.ndarray, mean: np.ndarray | None, normalize: bool) -> np.ndarray:
    """Centre (N, d_H, d_W) matrices on ``mean`` and scale each to Frobenius norm sqrt(d_H)."""
    x = np.asarray(x, dtype=np.float32)
    if mean is not None:
        x = x - mean[None]
    if normalize:
        norms = np.sqrt(np.sum(x.reshape(len(x), -1).astype(np.float64) ** 2, axis=1)).astype(np.float32)
        x = x * (np.sqrt(x.shape[1]) / np.maximum(norms, 1e-12))[:, None, None]
    return np.ascontiguousarray(x, dtype=np.float32)


def pca_probes(x: np.ndarray, r_u: int, *, seed: int = 0, max_models: int = 128) -> np.ndarray:
    """Data-dependent initial probes: the top principal directions of the matrices' rows.

    Args:
        x: (N, d_H, d_W) preprocessed training matrices (a random subset of ``max_models`` is used).
        r_u: number of probes.

    Returns:
        (d_W, r_U) float32: unit eigenvectors of the rows' second moment, largest first (random unit vectors fill
        in when d_W < r_U), scaled by 3 sqrt(d_W / r_U) so that probe responses start at order one.
    """
    rng = np.random.default_rng(seed)
    sub = x[rng.permutation(len(x))[:max_models]].reshape(-1, x.shape[2]).astype(np.float64)
    _, vecs = np.linalg.eigh(sub.T @ sub)
    u = vecs[:, ::-1][:, :r_u]
    if u.shape[1] < r_u:
        extra = rng.standard_normal((x.shape[2], r_u - u.shape[1]))
        u = np.concatenate([u, extra / np.linalg.norm(extra, axis=0)], axis=1)
    return (u * 3.0 * np.sqrt(x.shape[2] / r_u)).astype(np.float32)


def ridge_factors(x: np.ndarray, Y: np.ndarray, r_u: int, r_v: int, r_t: int, *, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """The closed-form start of ``init="ridge"``: ridge regression of Y on the flattened layers, in ProbeX's factors.

    The linear expert scores category c as ``head_c . (encoder . flat(V X U)) + b_c``, a bilinear form with
    coefficient matrix ``V^T G_c U^T`` whose cores G_c share the encoder's r_T directions. Each mode of the ridge
    coefficient tensor (C, d_H, d_W) keeps its leading singular vectors: U (d_W, r_U), V (r_V, d_H), and the
    (C, r_U r_V) cores are cut to rank r_T between encoder and head (a truncated Tucker decomposition). At
    r_U >= d_W, r_V >= d_H and r_T >= C the expert reproduces the ridge scores exactly. Dimensions beyond what the
    data has (r_U > d_W, r_V > d_H, r_T > C) start at random unit vectors (drawn from ``seed``) that the head does
    not read yet (its weights on them are zero, as are the encoder's on the extra probes' features): the scores are
    unchanged, and training can still take them up (all-zero slots would get no gradient). The scores are then
    mapped to logits by one Platt sigmoid fitted on the training models, so that the binary cross-entropy training
    that follows starts from a calibrated expert (without both labels, or with constant scores: a unit slope and
    the labels' base rate).

    Args:
        x: (N, d_H, d_W) preprocessed training matrices; Y: (N, C) labels (> 0.5 counts as positive for the
            sigmoid).

    Returns:
        float32 arrays ``U`` (d_W, r_U), ``V`` (r_V, d_H), ``encoder`` (r_T, r_U r_V), ``head`` (C, r_T),
        ``bias`` (C,), and ``alpha`` (the ridge penalty chosen by leave-one-out among :data:`RIDGE_ALPHAS`).
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV

    n, d_h, d_w = x.shape
    C = Y.shape[1]
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(x.reshape(n, -1), Y)
    coef = np.asarray(ridge.coef_, dtype=np.float64).reshape(C, d_h, d_w)
    intercept = np.asarray(ridge.intercept_, dtype=np.float64).reshape(C)

    rng = np.random.default_rng(seed)

    def unit(rows: int, cols: int) -> np.ndarray:  # random unit columns
        v = rng.standard_normal((rows, cols))
        return v / np.linalg.norm(v, axis=0, keepdims=True)

    def lead(m: np.ndarray, r: int) -> tuple[np.ndarray, int]:  # (rows, r) leading left singular vectors; how many
        u = leading_singular_vectors(m, r)
        return u, u.shape[1]

    pw, ku = lead(coef.transpose(2, 0, 1).reshape(d_w, -1), r_u)
    ph, kv = lead(coef.transpose(1, 0, 2).reshape(d_h, -1), r_v)
    core = np.zeros((C, r_u, r_v))  # [c, j, k]: flat index j * r_V + k, as ProbeXNet.embed; zero on extra probes
    core[:, :ku, :kv] = np.einsum("hk,chw,wj->cjk", ph, coef, pw, optimize=True)
    core = core.reshape(C, -1)
    q, sv, rt = np.linalg.svd(core, full_matrices=False)
    k = min(r_t, len(sv))
    encoder, head = unit(core.shape[1], r_t).T, np.zeros((C, r_t))  # rows past k: read by no head weight
    encoder[:k], head[:, :k] = rt[:k], q[:, :k] * sv[:k]
    kept = np.einsum("hk,cjk,wj->chw", ph, (head[:, :k] @ rt[:k]).reshape(C, r_u, r_v)[:, :ku, :kv], pw,
                     optimize=True)  # (C, d_H, d_W): the coefficients the factors hold
    scores = x.reshape(n, -1) @ kept.reshape(C, -1).T + intercept
    pw = np.concatenate([pw, unit(d_w, r_u - ku)], axis=1)  # extra probes: their features have zero encoder weights
    ph = np.concatenate([ph, unit(d_h, r_v - kv)], axis=1)
    labels = (np.asarray(Y) > 0.5).reshape(-1)
    if labels.min() != labels.max() and np.ptp(scores) > 0:
        platt = LogisticRegression(C=1e4).fit(scores.reshape(-1, 1), labels)
        a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    else:
        rate = float(np.clip(labels.mean(), 1e-3, 1 - 1e-3))
        a, b = 1.0, float(np.log(rate / (1 - rate)) - scores.mean())
    f32 = lambda v: np.ascontiguousarray(v, dtype=np.float32)  # noqa: E731
    return {"U": f32(pw), "V": f32(ph.T), "encoder": f32(encoder), "head": f32(a * head),
            "bias": f32(a * intercept + b), "alpha": np.float64(ridge.alpha_)}


class ProbeX(BaseEstimator):
    """One ProbeX expert as a scikit-learn multi-label estimator (``clone``, ``get_params``, ``set_params``,
    ``GridSearchCV`` and Pipelines work).

    Every setting of :class:`ProbeXConfig` is a keyword argument, so scikit-learn sees and tunes each one::

        GridSearchCV(ProbeX(epochs=10), {"r_u": [32, 64], "activation": ["relu", "linear"]}, scoring=...)

    Args:
        config: a whole :class:`ProbeXConfig` instead of the keywords (``ProbeX(cfg)``); then every keyword must
            keep its default (one source of settings, checked at ``fit``).
        r_u, r_v, r_t, epochs, lr, weight_decay, batch_size, dropout, center, normalize, init, activation, seed:
            the settings of :class:`ProbeXConfig` (same defaults, checked at ``fit``).

    Attributes (after ``fit``):
        net_: the trained :class:`ProbeXNet`; config_: the settings it was trained with; mean_: (d_H, d_W)
        training mean (or None); shape_: (d_H, d_W); n_classes_; fit_seconds_; n_params_ (trainable parameters).
    """

    def __init__(self, config: ProbeXConfig | None = None, *, r_u: int = 64, r_v: int = 64, r_t: int = 64,
                 epochs: int = 20, lr: float = 3e-3, weight_decay: float = 1e-5, batch_size: int = 32,
                 dropout: float = 0.5, center: bool = True, normalize: bool = True, init: str = "pca",
                 activation: str = "relu", seed: int = 0):
        self.config = config
        self.r_u, self.r_v, self.r_t = r_u, r_v, r_t
        self.epochs, self.lr, self.weight_decay, self.batch_size = epochs, lr, weight_decay, batch_size
        self.dropout, self.center, self.normalize = dropout, center, normalize
        self.init, self.activation, self.seed = init, activation, seed

    def settings(self) -> ProbeXConfig:
        """The :class:`ProbeXConfig` this estimator trains with: ``config``, or the keyword settings (checked)."""
        flat = {k: getattr(self, k) for k in ProbeXConfig.__dataclass_fields__}
        if self.config is None:
            return ProbeXConfig(**flat)
        if not isinstance(self.config, ProbeXConfig):
            raise InputError(f"config: expected a ProbeXConfig or None, got {type(self.config).__name__}")
        default = ProbeXConfig().to_dict()
        changed = sorted(k for k, v in flat.items() if v != default[k])
        if changed:
            raise InputError(f"ProbeX: give a config or keyword settings, not both (config given, and "
                             f"{', '.join(changed)} set)")
        return self.config

    # ---------------------------------------------------------------- fitting
    def fit(self, X, Y) -> ProbeX:
        """Train on weight matrices X (N, d_H, d_W) with 0/1 labels Y (N, C)."""
        cfg = self.settings()
        X = self._check_x(X, fitted=False)
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise InputError(f"Y: expected shape ({X.shape[0]}, C), got {Y.shape}")
        t0 = time.perf_counter()
        self.config_ = cfg
        self.shape_ = tuple(X.shape[1:])
        self.n_classes_ = Y.shape[1]
        self.mean_ = X.mean(0) if cfg.center else None
        check_fit_memory(cfg, *self.shape_, self.n_classes_)
        xt = torch.from_numpy(preprocess(X, self.mean_, cfg.normalize))
        yt = torch.from_numpy(Y)
        with torch_seed(cfg.seed):  # initial weights and dropout masks: reproducible, the caller's stream untouched
            self.net_ = ProbeXNet(*self.shape_, self.n_classes_, cfg)
            if cfg.init == "pca":
                with torch.no_grad():
                    self.net_.U.copy_(torch.from_numpy(pca_probes(xt.numpy(), cfg.r_u, seed=cfg.seed)))
            elif cfg.init == "ridge":
                f = ridge_factors(xt.numpy(), Y, cfg.r_u, cfg.r_v, cfg.r_t, seed=cfg.seed)
                self.ridge_alpha_ = float(f["alpha"])
                with torch.no_grad():
                    net = self.net_
                    for param, key in ((net.U, "U"), (net.V.weight, "V"), (net.encoder.weight, "encoder"),
                                       (net.head.weight, "head"), (net.head.bias, "bias")):
                        param.copy_(torch.from_numpy(f[key]))
                    net.encoder.bias.zero_()
            train_bce(self.net_, xt, yt, epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                      batch_size=cfg.batch_size, seed=cfg.seed)
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_params_ = count_params(self.net_)
        return self

    # ---------------------------------------------------------------- inference
    def _check_x(self, X, *, fitted: bool = True, layer: str = "layer") -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or X.shape[0] == 0:
            raise InputError(f"X: expected (N, d_H, d_W) weight matrices, got shape {X.shape}")
        if fitted:
            if not hasattr(self, "net_"):
                raise NotFittedError("ProbeX: not trained yet; call fit (CLI: lamina weights train) first")
            if tuple(X.shape[1:]) != self.shape_:
                raise InputError(f"{layer}: has shape {tuple(X.shape[1:])}, this expert reads {self.shape_}")
        if not np.all(np.isfinite(X)):
            raise InputError(f"{layer}: holds NaN or infinite values")
        return X

    @torch.no_grad()
    def _forward(self, X, fn: str, batch: int = 256) -> np.ndarray:
        X = self._check_x(X)
        out = []
        for s in range(0, len(X), batch):
            xt = torch.from_numpy(preprocess(X[s : s + batch], self.mean_, self.config_.normalize))
            out.append(getattr(self.net_, fn)(xt).numpy())
        return np.concatenate(out)

    def decision_function(self, X) -> np.ndarray:
        """Logits (N, C)."""
        return self._forward(X, "forward")

    def predict_proba(self, X) -> np.ndarray:
        """Probability that each category was in each model's training data, (N, C)."""
        return expit(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """0/1 predictions (N, C) at threshold 0.5."""
        return (self.predict_proba(X) >= 0.5).astype(np.int64)

    def transform(self, X) -> np.ndarray:
        """The learned model representation z, (N, r_T)."""
        return self._forward(X, "embed")

    @torch.no_grad()
    def responses(self, X, batch: int = 256) -> np.ndarray:
        """The probes' responses X U before the shared projection, (N, d_H, r_U) (read by the text aligner)."""
        X = self._check_x(X)
        U = self.net_.U.detach()
        return np.concatenate([
            (torch.from_numpy(preprocess(X[s : s + batch], self.mean_, self.config_.normalize)) @ U).numpy()
            for s in range(0, len(X), batch)
        ])

    @torch.no_grad()
    def responses_and_proba(self, X, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`responses` (N, d_H, r_U) and :meth:`predict_proba` (N, C) of X, preprocessing X once."""
        X = self._check_x(X)
        R, L = [], []
        for s in range(0, len(X), batch):
            xt = torch.from_numpy(preprocess(X[s : s + batch], self.mean_, self.config_.normalize))
            R.append((xt @ self.net_.U.detach()).numpy())
            L.append(self.net_(xt).numpy())
        return np.concatenate(R), expit(np.concatenate(L))

    def score(self, X, Y) -> float:
        """Mean average precision of the predictions against Y (N, C)."""
        from lamina.weights.probes.metrics import multilabel_metrics

        return multilabel_metrics(Y, self.decision_function(X))["map"]

    # ---------------------------------------------------------------- storage
    def state_tensors(self, prefix: str = "") -> dict[str, np.ndarray]:
        out = {f"{prefix}{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}
        if self.mean_ is not None:
            out[f"{prefix}mean"] = self.mean_
        return out

    def state_config(self) -> dict:
        return {"config": self.config_.to_dict(), "shape": list(self.shape_), "n_classes": self.n_classes_,
                "fit_seconds": self.fit_seconds_, "n_params": self.n_params_}

    @classmethod
    def from_state(cls, tensors: dict, doc: dict, prefix: str = "") -> ProbeX:
        est = cls(ProbeXConfig.from_dict(doc["config"]))
        est.config_ = est.config
        est.shape_ = tuple(doc["shape"])
        est.n_classes_ = int(doc["n_classes"])
        est.fit_seconds_ = doc.get("fit_seconds", float("nan"))
        est.n_params_ = doc.get("n_params", 0)
        with torch_seed(None):  # the random initial weights are overwritten: leave the caller's random stream alone
            est.net_ = ProbeXNet(*est.shape_, est.n_classes_, est.config)
        sd = {k[len(prefix):]: torch.as_tensor(np.asarray(v)) for k, v in tensors.items()
              if k.startswith(prefix) and k != f"{prefix}mean"}
        est.net_.load_state_dict(sd, strict=True)
        est.net_.eval()
        m = tensors.get(f"{prefix}mean")
        est.mean_ = None if m is None else np.asarray(m, dtype=np.float32)
        return est

    def save(self, directory, metadata: dict | None = None):
        return save_checkpoint(directory, self.state_tensors(), kind=KIND, config=self.state_config(),
                               metadata=metadata)

    @classmethod
    def load(cls, directory) -> ProbeX:
        tensors, doc = load_checkpoint(directory, kind=KIND)
        with checkpoint_content(directory):
            return cls.from_state({k: v.numpy() for k, v in tensors.items()}, doc["config"])


def count_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))
