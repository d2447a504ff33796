"""The single-layer Transformer: one multi-head self-attention layer and one ReLU feed-forward layer.

Reference: E. Gumaan, "Universal Approximation Theorem for a Single-Layer Transformer", arXiv 2507.10581 (2025).

For a sequence ``X`` of ``L <= n_ctx`` tokens in ``R^d_in`` the model computes, position by position::

    h0 = W_in x_i + b_in + pos_i                   (one-hot: W_in [x_i; e_i] + b_in, e_i the i-th unit vector)
    h1 = h0 + W_o concat_heads( A_h V_h )          A_h = softmax(scale * Q_h K_h^T)  (or scale * Q_h K_h^T / L)
    h2 = h1 + W_2 ReLU(W_1 h1 + b_1) + b_2
    y_i = W_out h2 + b_out

with ``Q_h, K_h, V_h`` affine maps of ``h0``. Layer norm (pre-norm before each sub-layer and before the output
projection) is available and off by default. Without positional encodings (``positional="none"``) the map is
permutation-equivariant: permuting the tokens permutes the outputs, so it cannot represent a general
sequence-to-sequence map (a sorted copy of the input, say); :class:`SeqConfig` says so in ``equivariant``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from scipy.special import softmax
from torch import nn

from lamina._validation import check_choice, check_memory, check_positive_int, check_real
from lamina.errors import InputError, OutOfDomainWarning
from lamina.seq.base import check_domain

POSITIONAL = ("onehot", "learned", "sinusoidal", "none")
ATTENTION = ("softmax", "linear")
KIND = "seq.SingleLayerTransformer"


def check_input_values(lo: float, hi: float, domain: tuple[float, float] | None, *, resolution: float = 0.0) -> None:
    """Refuse NaN or infinite inputs (``lo``/``hi``: their min and max, NaN if any is NaN); warn outside ``domain``.

    ``resolution`` is the machine epsilon of the inputs' dtype: a box edge rounded to float32 is not outside it.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"x: contains NaN or infinite values (min {lo}, max {hi}); expected finite numbers")
    slack = 2.0 * resolution * max(1.0, abs(domain[0]), abs(domain[1])) if domain is not None else 0.0
    if domain is not None and (lo < domain[0] - slack or hi > domain[1] + slack):
        warnings.warn(
            f"x: values in [{lo:.6g}, {hi:.6g}] lie outside the domain [{domain[0]:g}, {domain[1]:g}] the model was "
            "constructed or trained for; no certificate or test error covers them",
            OutOfDomainWarning,
            stacklevel=3,
        )


@dataclass
class SeqConfig:
    """Architecture of a :class:`SingleLayerTransformer`; the only way hyperparameters reach the module.

    Attributes:
        n_ctx: longest sequence (number of tokens) the model accepts; one-hot and learned positions have this many.
        d_in: features per input token.
        d_out: features per output token.
        d_model: width of the residual stream.
        n_heads: attention heads.
        d_head: width of each head's queries, keys and values (default ``d_model // n_heads``, at least 1).
        d_ff: hidden ReLU units of the feed-forward layer (0: attention only).
        positional: ``"onehot"`` (e_i concatenated to the token before the input projection), ``"learned"``
            (an added trainable ``(n_ctx, d_model)`` table), ``"sinusoidal"`` (the fixed sin/cos table of
            Vaswani et al.) or ``"none"`` (permutation-equivariant).
        attention: ``"softmax"`` or ``"linear"`` (scores used as they are, divided by the sequence length).
        attn_scale: multiplies ``Q K^T`` before the softmax (default ``1 / sqrt(d_head)``); a large scale makes
            attention hard.
        layer_norm: pre-norm layer norms (off by default; the construction needs them off).
        domain: ``(a, b)``: the box every input feature was constructed or trained for (set by
            :func:`~lamina.seq.construct.construct` and :func:`~lamina.seq.train.train`; ``None``: unknown). Inputs
            outside it get an :class:`OutOfDomainWarning`: no certificate or test error covers them.
    """

    n_ctx: int
    d_in: int
    d_out: int = 1
    d_model: int = 64
    n_heads: int = 4
    d_head: int | None = None
    d_ff: int = 256
    positional: str = "onehot"
    attention: str = "softmax"
    attn_scale: float | None = None
    layer_norm: bool = False
    domain: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("n_ctx", "d_in", "d_out", "d_model", "n_heads"):
            setattr(self, name, check_positive_int(name, getattr(self, name)))
        if self.d_head is None:
            self.d_head = max(1, self.d_model // self.n_heads)
        self.d_head = check_positive_int("d_head", self.d_head)
        self.d_ff = check_positive_int("d_ff", self.d_ff, minimum=0)
        check_choice("positional", self.positional, POSITIONAL)
        check_choice("attention", self.attention, ATTENTION)
        if self.attn_scale is None:
            self.attn_scale = 1.0 / math.sqrt(self.d_head)
        self.attn_scale = check_real("attn_scale", self.attn_scale)
        self.layer_norm = bool(self.layer_norm)
        if self.domain is not None:
            self.domain = check_domain(self.domain)

    @property
    def equivariant(self) -> bool:
        """True when the map is permutation-equivariant (no positional encoding): not a universal approximator."""
        return self.positional == "none"

    @property
    def d_token(self) -> int:
        """Features the input projection reads per token: ``d_in`` (+ ``n_ctx`` for one-hot positions)."""
        return self.d_in + (self.n_ctx if self.positional == "onehot" else 0)

    @property
    def n_params(self) -> int:
        """Parameters of a :class:`SingleLayerTransformer` with this config, computed without building it (a
        Python int: exact however large the sizes are)."""
        dm, inner = self.d_model, self.n_heads * self.d_head
        count = self.d_token * dm + dm + 3 * (dm * inner + inner) + inner * dm + dm + self.d_out * dm + self.d_out
        count += (self.n_ctx * dm) if self.positional == "learned" else 0
        count += (2 * dm * self.d_ff + self.d_ff + dm) if self.d_ff else 0
        return count + (6 * dm if self.layer_norm else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SeqConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"config: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)


def sinusoidal_table(n_ctx: int, d_model: int) -> np.ndarray:
    """Fixed positional table of Vaswani et al.: ``(n_ctx, d_model)`` float64, sin on even, cos on odd columns."""
    pos = np.arange(n_ctx)[:, None]
    freq = np.exp(-math.log(10000.0) * (np.arange(0, d_model, 2) / d_model))  # (ceil(d_model / 2),)
    table = np.zeros((n_ctx, d_model))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: d_model // 2])
    return table


class SingleLayerTransformer(nn.Module):
    """One multi-head self-attention layer + one ReLU feed-forward layer, with residual connections.

    Args:
        config: the architecture.

    Shapes:
        ``forward(x: (B, L, d_in)) -> (B, L, d_out)`` with ``L <= n_ctx``.
    """

    def __init__(self, config: SeqConfig):
        super().__init__()
        self.config = config
        c = config
        table = c.n_ctx * c.d_model * 12 if c.positional == "sinusoidal" else 0  # float64 table + float32 buffer
        check_memory("config", 4 * c.n_params + table, f"a single-layer transformer of {c.n_params:.3g} parameters "
                     f"(d_model {c.d_model}, n_heads {c.n_heads}, d_head {c.d_head}, d_ff {c.d_ff}, n_ctx {c.n_ctx})",
                     hint="use smaller sizes (CLI: --d-model, --heads, --d-head, --d-ff, --n)")
        inner = c.n_heads * c.d_head
        self.W_in = nn.Linear(c.d_token, c.d_model)
        if c.positional == "learned":
            self.pos = nn.Parameter(torch.randn(c.n_ctx, c.d_model) * 0.02)
        elif c.positional == "sinusoidal":
            self.register_buffer("pos", torch.tensor(sinusoidal_table(c.n_ctx, c.d_model), dtype=torch.float32))
        else:
            self.pos = None
        self.W_q = nn.Linear(c.d_model, inner)
        self.W_k = nn.Linear(c.d_model, inner)
        self.W_v = nn.Linear(c.d_model, inner)
        self.W_o = nn.Linear(inner, c.d_model)
        if c.d_ff > 0:
            self.W_1 = nn.Linear(c.d_model, c.d_ff)
            self.W_2 = nn.Linear(c.d_ff, c.d_model)
        self.W_out = nn.Linear(c.d_model, c.d_out)
        if c.layer_norm:
            self.ln_attn = nn.LayerNorm(c.d_model)
            self.ln_ff = nn.LayerNorm(c.d_model)
            self.ln_out = nn.LayerNorm(c.d_model)

    @property
    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Input projection plus positional encoding: ``(B, L, d_in) -> (B, L, d_model)``."""
        c = self.config
        length = x.shape[1]
        if c.positional == "onehot":
            eye = torch.eye(c.n_ctx, dtype=x.dtype, device=x.device)[:length]  # (L, n_ctx)
            x = torch.cat([x, eye.expand(x.shape[0], -1, -1)], dim=-1)  # (B, L, d_in + n_ctx)
        h = self.W_in(x)  # (B, L, d_model)
        if self.pos is not None:
            h = h + self.pos[:length].to(h.dtype)
        return h

    def attention(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-head self-attention of the residual stream.

        Returns:
            ``(out, pattern)``: ``(B, L, d_model)`` to add to the stream, and ``(B, n_heads, L, L)`` attention
            weights (row ``i`` is how query ``i`` mixes the keys).
        """
        c = self.config
        b, length, _ = h.shape
        q = self.W_q(h).view(b, length, c.n_heads, c.d_head).transpose(1, 2)  # (B, H, L, dh)
        k = self.W_k(h).view(b, length, c.n_heads, c.d_head).transpose(1, 2)
        v = self.W_v(h).view(b, length, c.n_heads, c.d_head).transpose(1, 2)
        scores = c.attn_scale * (q @ k.transpose(-1, -2))  # (B, H, L, L)
        pattern = torch.softmax(scores, dim=-1) if c.attention == "softmax" else scores / length
        mixed = (pattern @ v).transpose(1, 2).reshape(b, length, c.n_heads * c.d_head)  # (B, L, H * dh)
        return self.W_o(mixed), pattern

    def forward(self, x: torch.Tensor, *, return_attention: bool = False):
        """``x: (B, L, d_in)`` (a tensor of any real dtype, or NumPy / nested lists) -> ``(B, L, d_out)`` in the
        model's dtype (the input is cast to it); with ``return_attention`` also the ``(B, H, L, L)`` pattern."""
        c = self.config
        if not isinstance(x, torch.Tensor):  # NumPy arrays and nested lists are accepted too
            try:
                x = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=self.dtype)
            except (TypeError, ValueError):
                raise InputError(f"x: expected numbers of shape (B, L, {c.d_in}), got {type(x).__name__}") from None
        if x.ndim != 3 or x.shape[-1] != c.d_in or x.shape[1] > c.n_ctx:
            raise InputError(f"x: expected shape (B, L <= {c.n_ctx}, {c.d_in}), got {tuple(x.shape)}")
        if x.numel():
            lo, hi = torch.aminmax(x.detach())  # one pass: NaN propagates to both
            eps = torch.finfo(x.dtype).eps if x.is_floating_point() else 0.0
            check_input_values(float(lo), float(hi), c.domain, resolution=eps)
        if x.dtype != self.dtype:  # float32 data into a float64 construction (or the reverse): the model's dtype
            x = x.to(self.dtype)
        h = self.embed(x)  # (B, L, d_model)
        attn_out, pattern = self.attention(self.ln_attn(h) if c.layer_norm else h)
        h = h + attn_out
        if c.d_ff > 0:
            z = self.ln_ff(h) if c.layer_norm else h
            h = h + self.W_2(torch.relu(self.W_1(z)))  # (B, L, d_model)
        y = self.W_out(self.ln_out(h) if c.layer_norm else h)  # (B, L, d_out)
        return (y, pattern) if return_attention else y

    @property
    def dtype(self) -> torch.dtype:
        return self.W_in.weight.dtype

    def predict(self, x, *, batch_size: int = 4096) -> np.ndarray:
        """NumPy in, NumPy out: ``x: (B, L, d_in)`` -> ``(B, L, d_out)`` float64, evaluated in the model's dtype."""
        x = np.asarray(x, dtype=np.float64)
        model, dtype = self, self.dtype
        outs = []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                outs.append(model(torch.as_tensor(x[s : s + batch_size], dtype=dtype)).double().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, x.shape[1], self.config.d_out))

    def numpy_params(self) -> dict[str, np.ndarray]:
        """All parameters and buffers as float64 NumPy arrays (the input of :func:`forward_numpy`)."""
        return {k: v.detach().cpu().double().numpy() for k, v in self.state_dict().items()}


def _layer_norm(h: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = h.mean(axis=-1, keepdims=True)
    var = h.var(axis=-1, keepdims=True)
    return (h - mu) / np.sqrt(var + eps) * weight + bias


def forward_numpy(
    params: dict[str, np.ndarray], config: SeqConfig, x, *, return_attention: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The same map as :meth:`SingleLayerTransformer.forward`, in float64 NumPy (no torch).

    Args:
        params: ``model.numpy_params()`` (PyTorch layout: a linear layer maps ``x -> x @ weight.T + bias``).
        config: the architecture.
        x: ``(B, L, d_in)`` with ``L <= n_ctx``.
        return_attention: also return the attention weights ``(B, n_heads, L, L)``.

    Returns:
        ``(B, L, d_out)`` float64 (and the attention weights).
    """
    c = config
    p = params
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != c.d_in or x.shape[1] > c.n_ctx:
        raise InputError(f"x: expected shape (B, L <= {c.n_ctx}, {c.d_in}), got {x.shape}")
    if x.size:
        check_input_values(float(x.min()), float(x.max()), c.domain, resolution=float(np.finfo(np.float64).eps))
    b, length, _ = x.shape

    def lin(name: str, z: np.ndarray) -> np.ndarray:
        return z @ p[f"{name}.weight"].T + p[f"{name}.bias"]

    if c.positional == "onehot":
        eye = np.broadcast_to(np.eye(c.n_ctx)[:length], (b, length, c.n_ctx))
        x = np.concatenate([x, eye], axis=-1)
    h = lin("W_in", x)  # (B, L, d_model)
    if c.positional in ("learned", "sinusoidal"):
        h = h + p["pos"][:length]
    z = _layer_norm(h, p["ln_attn.weight"], p["ln_attn.bias"]) if c.layer_norm else h
    split = (b, length, c.n_heads, c.d_head)
    q = lin("W_q", z).reshape(split).transpose(0, 2, 1, 3)  # (B, H, L, dh)
    k = lin("W_k", z).reshape(split).transpose(0, 2, 1, 3)
    v = lin("W_v", z).reshape(split).transpose(0, 2, 1, 3)
    scores = c.attn_scale * (q @ k.transpose(0, 1, 3, 2))  # (B, H, L, L)
    pattern = softmax(scores, axis=-1) if c.attention == "softmax" else scores / length
    mixed = (pattern @ v).transpose(0, 2, 1, 3).reshape(b, length, c.n_heads * c.d_head)
    h = h + lin("W_o", mixed)
    if c.d_ff > 0:
        z = _layer_norm(h, p["ln_ff.weight"], p["ln_ff.bias"]) if c.layer_norm else h
        h = h + lin("W_2", np.maximum(lin("W_1", z), 0.0))
    if c.layer_norm:
        h = _layer_norm(h, p["ln_out.weight"], p["ln_out.bias"])
    y = lin("W_out", h)
    return (y, pattern) if return_attention else y


def config_from_doc(doc: dict, where) -> SeqConfig:
    """The :class:`SeqConfig` of a checkpoint's parsed ``config.json``; a missing or malformed one (valid JSON of
    the wrong content: the sha256 covers only the weights) is a :class:`~lamina.errors.CheckpointError`."""
    from lamina.errors import CheckpointError

    try:
        return SeqConfig.from_dict(doc["config"])
    except (InputError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint: {where} has an unreadable model config "
                              f"({type(exc).__name__}: {exc})") from None


def save_model(model: SingleLayerTransformer, directory, *, metadata: dict | None = None):
    """Write ``model`` as a lamina checkpoint directory (safetensors + config.json with sha256)."""
    from lamina._io import save_checkpoint

    tensors = {k: v.detach() for k, v in model.state_dict().items()}  # float64 stays float64 (constructions)
    return save_checkpoint(directory, tensors, kind=KIND, config=model.config.to_dict(), metadata=metadata)


def load_model(directory) -> tuple[SingleLayerTransformer, dict]:
    """Read a checkpoint written by :func:`save_model`; returns ``(model, metadata)`` (strict loading)."""
    from lamina._io import load_checkpoint
    from lamina._process import torch_seed
    from lamina.errors import CheckpointError

    tensors, doc = load_checkpoint(directory, kind=KIND)
    with torch_seed(None):  # every weight is loaded: leave the caller's random stream alone
        model = SingleLayerTransformer(config_from_doc(doc, directory))
    if any(t.dtype == torch.float64 for t in tensors.values()):
        model = model.double()
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint: {directory} does not fit its config ({exc})") from None
    return model, doc.get("metadata", {})
