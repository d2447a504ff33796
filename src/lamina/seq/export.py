"""Export a :class:`SingleLayerTransformer` to a TransformerLens ``HookedTransformer`` (optional extra).

Install with ``pip install 'lamina[transformerlens]'`` (TransformerLens 3.x: version 4 removed
``HookedTransformer``). The exported model is a one-layer, bidirectional ``HookedTransformer`` with the same
attention, feed-forward and readout weights; TransformerLens embeds integer tokens, so the continuous input
projection and positional encoding stay on the lamina side: feed the residual stream with ``start_at_layer=0``::

    hooked = to_transformer_lens(model)
    y = hooked(transformer_lens_input(model, x), start_at_layer=0)     # == model(x)
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from lamina.errors import InputError
from lamina.seq.model import SingleLayerTransformer


def _hooked_classes():
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError as exc:
        raise InputError(
            "transformer_lens: export needs TransformerLens 3.x with HookedTransformer "
            f"(pip install 'lamina[transformerlens]'); import failed: {exc}"
        ) from None
    return HookedTransformer, HookedTransformerConfig


def to_transformer_lens(model: SingleLayerTransformer):
    """Build a TransformerLens ``HookedTransformer`` computing the same map from the residual stream onwards.

    Args:
        model: a softmax-attention model (TransformerLens has no linear attention).

    Returns:
        ``HookedTransformer`` with ``n_layers=1``, ``attention_dir="bidirectional"``, ``act_fn="relu"``,
        ``attn_scale = 1 / model.config.attn_scale`` (TransformerLens divides the scores), ``d_vocab_out = d_out``;
        its token and position embeddings are zero and unused (see :func:`transformer_lens_input`).
    """
    c = model.config
    if c.attention != "softmax":
        raise InputError(f"model: TransformerLens has softmax attention only, got attention={c.attention!r}")
    hooked_cls, cfg_cls = _hooked_classes()
    cfg = cfg_cls(
        n_layers=1, d_model=c.d_model, d_head=c.d_head, n_heads=c.n_heads, d_mlp=c.d_ff if c.d_ff else None,
        attn_only=c.d_ff == 0, d_vocab=1, d_vocab_out=c.d_out, n_ctx=c.n_ctx, act_fn="relu",
        normalization_type="LN" if c.layer_norm else None, attention_dir="bidirectional",
        attn_scale=1.0 / c.attn_scale, use_attn_scale=True, positional_embedding_type="standard",
        dtype=model.dtype, default_prepend_bos=False, device="cpu",
    )
    with warnings.catch_warnings():  # TransformerLens 3.x announces that 4.0 drops HookedTransformer
        warnings.simplefilter("ignore", DeprecationWarning)
        hooked = hooked_cls(cfg)
    h, dh, dm = c.n_heads, c.d_head, c.d_model
    src = {k: v.detach().to(model.dtype) for k, v in model.state_dict().items()}
    state = hooked.state_dict()
    new = {
        "embed.W_E": torch.zeros_like(state["embed.W_E"]),
        "pos_embed.W_pos": torch.zeros_like(state["pos_embed.W_pos"]),
        "unembed.W_U": src["W_out.weight"].T.contiguous(),
        "unembed.b_U": src["W_out.bias"],
        "blocks.0.attn.W_O": src["W_o.weight"].T.reshape(h, dh, dm).contiguous(),
        "blocks.0.attn.b_O": src["W_o.bias"],
    }
    for ours, theirs in (("W_q", "Q"), ("W_k", "K"), ("W_v", "V")):
        new[f"blocks.0.attn.W_{theirs}"] = src[f"{ours}.weight"].reshape(h, dh, dm).transpose(1, 2).contiguous()
        new[f"blocks.0.attn.b_{theirs}"] = src[f"{ours}.bias"].reshape(h, dh)
    if c.d_ff:
        new.update({"blocks.0.mlp.W_in": src["W_1.weight"].T.contiguous(), "blocks.0.mlp.b_in": src["W_1.bias"],
                    "blocks.0.mlp.W_out": src["W_2.weight"].T.contiguous(), "blocks.0.mlp.b_out": src["W_2.bias"]})
    if c.layer_norm:
        for ours, theirs in (("ln_attn", "blocks.0.ln1"), ("ln_ff", "blocks.0.ln2"), ("ln_out", "ln_final")):
            new[f"{theirs}.w"], new[f"{theirs}.b"] = src[f"{ours}.weight"], src[f"{ours}.bias"]
    missing = sorted(k for k in new if k not in state)
    if missing:
        raise InputError(f"transformer_lens: this TransformerLens version lacks parameters {missing}")
    state.update({k: v.to(state[k].dtype) for k, v in new.items()})
    hooked.load_state_dict(state, strict=True)
    return hooked.eval()


def transformer_lens_input(model: SingleLayerTransformer, x) -> torch.Tensor:
    """The residual stream after lamina's input projection and positions: ``(B, L, d_in) -> (B, L, d_model)``."""
    with torch.no_grad():
        return model.embed(torch.as_tensor(np.asarray(x), dtype=model.dtype))
