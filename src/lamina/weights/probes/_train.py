"""The one training loop of lamina.weights' torch estimators: Adam on binary cross-entropy with logits.

ProbeX, the dense logistic probe and the text readout all learn "was category c in this model's training data"
(multi-label 0/1 targets); they differ only in their network and in what one batch is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def train_bce(
    net: nn.Module,
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int | None,
    seed: int,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> nn.Module:
    """Train ``net`` in place with Adam on ``binary_cross_entropy_with_logits(forward(X[b]), Y[b])``.

    Args:
        net: the module whose parameters are trained (set to train mode during the loop, eval mode after).
        X: (N, ...) inputs; Y: (N, C) 0/1 float targets.
        epochs, lr, weight_decay: Adam settings.
        batch_size: minibatch size, the N inputs shuffled anew each epoch by a ``torch.Generator`` seeded with
            ``seed``; ``None`` for full-batch steps in input order.
        forward: maps a batch of inputs to (B, C) logits; default ``net``.

    Randomness inside ``net`` (dropout) draws from torch's global generator: callers scope it with
    :func:`lamina._process.torch_seed`.
    """
    forward = forward or net
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    n = len(X)
    net.train()
    for _ in range(epochs):
        if batch_size is None:
            batches = [slice(None)]
        else:
            order = torch.randperm(n, generator=gen)
            batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
        for idx in batches:
            loss = nn.functional.binary_cross_entropy_with_logits(forward(X[idx]), Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    return net
