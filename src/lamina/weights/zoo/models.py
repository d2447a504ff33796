"""The small image classifiers that populate a zoo, and their training loops (no I/O).

Two architectures, both on (B, 28, 28) images in [0, 1]:

- ``mlp``: ``fc1`` (784 -> h1), ReLU, ``fc2`` (h1 -> h2), ReLU, ``head`` (h2 -> classes);
- ``cnn``: ``conv1`` (1 -> c1, 5 x 5), ReLU, max-pool, ``conv2`` (c1 -> c2, 3 x 3), ReLU, max-pool,
  ``fc1`` (c2 * 7 * 7 -> h), ReLU, ``head`` (h -> classes).

- ``vit``: a small Vision Transformer, ``hidden`` = (D, depth, heads) (see :mod:`lamina.weights.zoo.vit`).

Fine-tuning replaces the head by a fresh one (zero-initialised by default, as in ViT fine-tuning) and trains every
layer with AdamW.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from lamina._process import torch_seed
from lamina._validation import check_choice
from lamina.errors import InputError

ARCHS = ("mlp", "cnn", "vit")


@dataclass
class ArchConfig:
    """Architecture of a zoo model.

    Attributes:
        arch: ``"mlp"`` or ``"cnn"``.
        hidden: MLP hidden widths (h1, h2); for the CNN (c1, c2, h); for the ViT (D, depth, heads).
    """

    arch: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 128])

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, ARCHS)
        need = 2 if self.arch == "mlp" else 3
        if len(self.hidden) != need or any(int(h) < 1 for h in self.hidden):
            raise InputError(f"hidden: the {self.arch} takes {need} positive widths, got {self.hidden}")
        self.hidden = [int(h) for h in self.hidden]
        if self.arch == "vit" and self.hidden[0] % self.hidden[2]:
            raise InputError(f"hidden: the ViT's width {self.hidden[0]} must be a multiple of its heads "
                             f"{self.hidden[2]}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ArchConfig:
        return cls(**d)


class MLP(nn.Module):
    def __init__(self, hidden: list[int], n_classes: int):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.head = nn.Linear(hidden[1], n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)  # (B, 784)
        return torch.relu(self.fc2(torch.relu(self.fc1(x))))  # (B, h2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CNN(nn.Module):
    def __init__(self, hidden: list[int], n_classes: int):
        super().__init__()
        c1, c2, h = hidden
        self.conv1 = nn.Conv2d(1, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 7 * 7, h)
        self.head = nn.Linear(h, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, 28, 28)
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)  # (B, c1, 14, 14)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)  # (B, c2, 7, 7)
        return torch.relu(self.fc1(x.flatten(1)))  # (B, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(arch: ArchConfig, n_classes: int, *, seed: int) -> nn.Module:
    """A freshly initialised model (deterministic in ``seed``)."""
    from lamina.weights.zoo.vit import ViT

    with torch_seed(seed):  # the layers draw their initial weights from torch's global generator
        return {"mlp": MLP, "cnn": CNN, "vit": ViT}[arch.arch](arch.hidden, n_classes)


def state_to_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_body(model: nn.Module, state: dict[str, np.ndarray]) -> None:
    """Load every tensor of ``state`` except the head into ``model``."""
    body = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(body, strict=False)
    if unexpected or any(not m.startswith("head.") for m in missing):
        raise InputError(f"root weights do not fit the architecture (missing {missing}, unexpected {unexpected})")


def train_classifier(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    seed: int = 0,
    augment_shift: int = 0,
) -> nn.Module:
    """Train ``model``'s trainable parameters (all, unless some were frozen, as LoRA does) with AdamW and
    cross-entropy.

    Args:
        images: (N, 28, 28) uint8 (0..255) or float32 in [0, 1].
        labels: (N,) int64 class indices.
        augment_shift: random translation of up to this many pixels per batch (0: none).
    """
    x = torch.from_numpy(np.array(images, copy=True)).float()
    if images.dtype == np.uint8:
        x = x / 255.0
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    model.train()
    n = x.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb = x[idx]
            if augment_shift:
                dx, dy = (int(v) for v in torch.randint(-augment_shift, augment_shift + 1, (2,), generator=gen))
                xb = torch.roll(xb, shifts=(dy, dx), dims=(1, 2))
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on (N, 28, 28) images."""
    x = torch.from_numpy(np.array(images, copy=True)).float()
    if images.dtype == np.uint8:
        x = x / 255.0
    pred = model(x).argmax(1).numpy()
    return float(np.mean(pred == np.asarray(labels)))
