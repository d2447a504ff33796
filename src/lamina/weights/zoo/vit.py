"""A small Vision Transformer for 28 x 28 images, and LoRA adapters on its attention projections (no I/O).

ViT (Dosovitskiy et al., 2021) at zoo scale: the image is cut into 16 patches of 7 x 7 pixels, each mapped by
``patch`` (Linear 49 -> D) to a token; a learned class token and learned position embeddings are added; ``depth``
pre-norm encoder blocks follow (multi-head self-attention with separate ``q``, ``k``, ``v``, ``o`` projections of
D -> D, then a ReLU MLP D -> 2D -> D, each in a residual branch); the class token, layer-normalised, is the
feature that ``head`` (D -> classes) reads.

LoRA (Hu et al., 2022): a frozen linear layer W (out, in) gains a trainable update ``(alpha / r) B A`` with A (r, in)
drawn at random and B (out, r) starting at zero, so the fine-tune starts at the root. Zoo files of a LoRA model hold
only the adapters and the head, like the adapter files on a model hub: ``NAME.lora_A`` (r, in) and ``NAME.lora_B``
(out, r), the scaling ``alpha / r`` folded into B, so that ``lora_B @ lora_A`` is the weight update exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

PATCH = 7  # 28 / 7 = 4 x 4 = 16 patches
N_PATCHES = (28 // PATCH) ** 2
LORA_TARGETS = ("q", "v")  # the attention projections LoRA adapts, as in the LoRA paper's main experiments


class Attention(nn.Module):
    """Multi-head self-attention with separate query, key, value and output projections (each a Linear D -> D)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # (B, T, D)
        split = (b, t, self.heads, d // self.heads)
        q, k, v = (p(x).reshape(split).transpose(1, 2) for p in (self.q, self.k, self.v))  # (B, H, T, D/H)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)  # (B, H, T, T)
        return self.o((a @ v).transpose(1, 2).reshape(b, t, d))  # (B, T, D)


class Block(nn.Module):
    """Pre-norm encoder block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp1 = nn.Linear(dim, 2 * dim)
        self.mlp2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp2(torch.relu(self.mlp1(self.norm2(x))))


class ViT(nn.Module):
    """The zoo's Vision Transformer. ``hidden`` = (D, depth, heads); D must be a multiple of heads."""

    def __init__(self, hidden: list[int], n_classes: int):
        super().__init__()
        dim, depth, heads = hidden
        self.patch = nn.Linear(PATCH * PATCH, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, N_PATCHES + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = x.reshape(b, 4, PATCH, 4, PATCH).permute(0, 1, 3, 2, 4).reshape(b, N_PATCHES, PATCH * PATCH)
        x = torch.cat([self.cls.expand(b, -1, -1), self.patch(x)], dim=1) + self.pos  # (B, 17, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 0])  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def lora_a_init(rank: int, in_features: int, generator: torch.Generator) -> torch.Tensor:
    """A LoRA ``A`` at its start: (rank, in_features) uniform in the range of a fresh Linear's weights."""
    return (torch.rand(rank, in_features, generator=generator) * 2 - 1) * (1.0 / math.sqrt(in_features))


class LoRALinear(nn.Module):
    """A frozen Linear plus a trainable low-rank update: ``base(x) + (alpha / r) x A^T B^T``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(lora_a_init(rank, base.in_features, generator))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.lora_A.T) @ self.lora_B.T


def add_lora(model: ViT, *, rank: int, alpha: float, seed: int, targets: tuple[str, ...] = LORA_TARGETS) -> list[str]:
    """Freeze ``model`` except its head and wrap the ``targets`` projections of every block in LoRA adapters.

    Returns:
        The names of the adapted layers (e.g. ``["blocks.0.attn.q", "blocks.0.attn.v", ...]``).
    """
    gen = torch.Generator().manual_seed(int(seed))
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head."))
    names = []
    for i, block in enumerate(model.blocks):
        for t in targets:
            setattr(block.attn, t, LoRALinear(getattr(block.attn, t), rank, alpha, gen))
            names.append(f"blocks.{i}.attn.{t}")
    return names


def adapter_state(model: ViT) -> dict[str, np.ndarray]:
    """What a LoRA model's file holds: every adapter (``NAME.lora_A``, ``NAME.lora_B`` with the scaling folded into
    B) and the head."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, LoRALinear):
            out[f"{name}.lora_A"] = mod.lora_A.detach().numpy().copy()
            out[f"{name}.lora_B"] = (mod.scale * mod.lora_B.detach()).numpy().copy()
    for k, v in model.head.state_dict().items():
        out[f"head.{k}"] = v.detach().numpy().copy()
    return out


def is_adapter(state) -> bool:
    """Whether a model state (name -> tensor) is a LoRA adapter file (it holds ``*.lora_A`` tensors)."""
    return any(k.endswith(".lora_A") for k in state.keys())


def merge_adapter(root: dict[str, np.ndarray], adapter: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The full weights of a LoRA model: the root's tensors, each adapted weight plus ``lora_B @ lora_A``, and the
    adapter file's head."""
    out = {k: np.asarray(v) for k, v in root.items() if not k.startswith("head.")}
    for k, a in adapter.items():
        if k.endswith(".lora_A"):
            base = k[: -len(".lora_A")]
            out[f"{base}.weight"] = out[f"{base}.weight"] + np.asarray(adapter[f"{base}.lora_B"]) @ np.asarray(a)
        elif k.startswith("head."):
            out[k] = np.asarray(adapter[k])
    return out
