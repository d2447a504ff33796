"""The fine-tuning loop: early stopping on a validation loss, the best weights restored.

Epoch 0 is the head as it comes in: the cross-validated linear probe (``head_init="probe"``, stage ``probe``, see
:mod:`lamina.geo.finetune_probe`) or the zero head (``head_init="zero"``, stage ``head``). Stage ``head``: the
encoder is frozen, the training points are embedded once and the :class:`Head` is trained on those embeddings.
Stage ``encoder`` (``train="last"`` or ``"all"``): the encoder's last layers or all of them are trained together
with the head, starting from the best head so far (linear probing, then fine-tuning: "LP-FT", Kumar et al. 2022,
arXiv:2202.10054, which distorts pretrained features less than fine-tuning from a random head). The validation
loss of epoch 0 and of every epoch of both stages competes for "best": when no head epoch beats the probe, the
probe is returned; when no encoder epoch beats the best head, the encoder is left exactly as it was.

AdamW throughout. Stage ``head``: ``lr`` and ``weight_decay``. Stage ``encoder``: the smaller ``encoder_lr`` for
the head and the encoder alike (as LP-FT's fine-tuning step: the head is already fitted and would otherwise keep
overfitting while the encoder barely moves), ``weight_decay`` on the head and none on the encoder (decay would
pull pretrained weights towards zero, not towards the pretrained solution). Gradients are clipped to a global
norm of ``grad_clip``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lamina.geo.finetune_model import Head
from lamina.geo.location_encoder import LocationEncoder

EMBED_CHUNK = 4096  # points per forward pass outside training (bounds activation memory)


def trainable_encoder_parameters(loc: LocationEncoder, train: str) -> list[nn.Parameter]:
    """The encoder weights a mode trains: none (``"head"``), the last sine layer and the linear embedding layer
    (``"last"``), or every SIREN weight and the learned grid if the encoder has one (``"all"``; the pretraining
    reconstruction head is never trained)."""
    siren = loc.net.siren
    whole = [siren] + ([loc.net.grid] if loc.net.grid is not None else [])
    modules = {"head": [], "last": [siren.layers[-1], siren.last], "all": whole}[train]
    return [p for m in modules for p in m.parameters()]


@torch.no_grad()
def embed_points(loc: LocationEncoder, lonlat: torch.Tensor) -> torch.Tensor:
    """(N, 2) lon / lat degrees -> (N, D) embeddings, in chunks, without gradients."""
    parts = [loc(lonlat[s : s + EMBED_CHUNK]) for s in range(0, len(lonlat), EMBED_CHUNK)]
    return torch.cat(parts) if parts else torch.empty(0, loc.dim_out)


@dataclass
class LoopResult:
    """What the loop did: the best validation loss, where it was reached, every epoch's losses, why it stopped."""

    best_loss: float
    best_stage: str
    best_epoch: int  # 0: the head before any training (the probe, or the zero head)
    epochs_run: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    stopped: str = ""


class _Best:
    """The best validation loss so far and a copy of the weights that reached it (head and trained encoder)."""

    def __init__(self, head: Head, params: list[nn.Parameter]):
        self.head, self.params = head, params
        self.loss, self.stage, self.epoch = math.inf, "head", 0
        self.head_state, self.param_state = None, None

    def offer(self, loss: float, stage: str, epoch: int) -> bool:
        if not loss < self.loss - 1e-7:
            return False
        self.loss, self.stage, self.epoch = loss, stage, epoch
        self.head_state = {k: v.detach().clone() for k, v in self.head.state_dict().items()}
        self.param_state = [p.detach().clone() for p in self.params]
        return True

    @torch.no_grad()
    def restore(self) -> None:
        self.head.load_state_dict(self.head_state)
        for p, saved in zip(self.params, self.param_state, strict=True):
            p.copy_(saved)


def run(loc: LocationEncoder, head: Head, lonlat: torch.Tensor, target: torch.Tensor, train_idx: np.ndarray,
        val_idx: np.ndarray, *, loss_fn: nn.Module, cfg, features: torch.Tensor | None = None,
        progress: bool = False) -> LoopResult:
    """Train ``head`` (and the encoder layers of ``cfg.train``) on ``train_idx``, early-stopping on ``val_idx``.

    Args:
        loc: the encoder as a torch module (its weights are trained in place for ``cfg.train != "head"``).
        head: the head, trained in place.
        lonlat: (N, 2) float32 degrees; target: (N,) int64 class indices or (N, T) float32 z-scores.
        train_idx, val_idx: disjoint row indices.
        loss_fn: cross-entropy or MSE.
        cfg: a :class:`~lamina.geo.finetune.FineTuneConfig`.
        features: (N, D) embeddings of ``lonlat`` by the frozen encoder, if already computed.
        progress: show a progress bar.

    Returns:
        The :class:`LoopResult`; ``head`` and ``loc`` hold the best weights.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    rng = np.random.default_rng([cfg.seed, 23])
    enc_params = trainable_encoder_parameters(loc, cfg.train)
    for p in loc.parameters():
        p.requires_grad_(False)
    feats = embed_points(loc, lonlat) if features is None else features  # (N, D) of the frozen encoder
    best = _Best(head, enc_params)
    val_t, train_t = torch.from_numpy(val_idx), torch.from_numpy(train_idx)
    start = "probe" if cfg.head_init == "probe" else "head"  # epoch 0: the head as it comes in
    with torch.no_grad():
        train0 = float(loss_fn(head(feats[train_t]), target[train_t]))
        val0 = float(loss_fn(head(feats[val_t]), target[val_t]))
    best.offer(val0, start, 0)
    result = LoopResult(best.loss, start, 0)
    result.history.append({"stage": start, "epoch": 0, "train_loss": train0, "val_loss": val0})
    stages = ["head"] + (["encoder"] if cfg.train != "head" else [])
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # on stderr: the CLI prints its JSON result on stdout
    with Progress(*columns, disable=not progress, transient=False, console=Console(stderr=True)) as bar:
        job = bar.add_task("fine-tune", total=cfg.epochs * len(stages))
        for k, stage in enumerate(stages):
            if stage == "encoder":
                best.restore()  # start from the best head (the probe or a head epoch)
            params, opt, forward, val_loss = _stage_setup(stage, loc, head, enc_params, feats, lonlat, target,
                                                          val_t, loss_fn, cfg)
            n, why = _stage(stage, forward, val_loss, loss_fn, opt, params, best, target, train_idx, rng, cfg,
                            result.history, lambda desc: bar.update(job, advance=1, description=desc))
            result.epochs_run[stage] = n
            result.stopped = why
            bar.update(job, completed=cfg.epochs * (k + 1))
            if why.startswith("non-finite"):
                break
    best.restore()
    for p in loc.parameters():
        p.requires_grad_(False)
    result.best_loss, result.best_stage, result.best_epoch = best.loss, best.stage, best.epoch
    return result


def _stage(stage, forward, val_loss, loss_fn, opt, params, best: _Best, target, train_idx, rng, cfg, history, tick):
    """Epochs of one stage until ``cfg.epochs`` or ``cfg.patience`` epochs without improvement: (epochs, why)."""
    stale = 0
    for epoch in range(1, cfg.epochs + 1):
        order = rng.permutation(train_idx)
        total = 0.0
        with torch.enable_grad():
            for s in range(0, len(order), cfg.batch_size):
                idx = torch.from_numpy(order[s : s + cfg.batch_size])
                loss = loss_fn(forward(idx), target[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                total += float(loss.detach()) * len(idx)
        with torch.no_grad():
            val = val_loss()
        train = total / len(order)
        history.append({"stage": stage, "epoch": epoch, "train_loss": train, "val_loss": val})
        tick(f"{stage} epoch {epoch}: val loss {val:.4g}")
        if not (math.isfinite(train) and math.isfinite(val)):
            return epoch, f"non-finite loss in {stage} epoch {epoch} (try a lower learning rate)"
        if best.offer(val, stage, epoch):
            stale = 0
        else:
            stale += 1
            if stale >= cfg.patience:
                return epoch, f"early stop: no better validation loss in {cfg.patience} epochs"
    return cfg.epochs, "maximum epochs"


def _stage_setup(stage: str, loc, head, enc_params, feats, lonlat, target, val_t, loss_fn, cfg):
    """The trained parameters, optimiser, forward pass and validation loss of one stage: ``"head"`` (on the frozen
    embeddings) or ``"encoder"`` (head and encoder layers together, at the encoder learning rate)."""
    if stage == "head":
        params = list(head.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

        def forward(idx):
            return head(feats[idx])

        def val_loss():
            return float(loss_fn(head(feats[val_t]), target[val_t]))

        return params, opt, forward, val_loss
    for p in enc_params:
        p.requires_grad_(True)
    params = list(head.parameters()) + enc_params
    opt = torch.optim.AdamW([
        {"params": list(head.parameters()), "lr": cfg.encoder_lr_value, "weight_decay": cfg.weight_decay},
        {"params": enc_params, "lr": cfg.encoder_lr_value, "weight_decay": 0.0},
    ])

    def forward(idx):
        return head(loc(lonlat[idx]))

    def val_loss():
        with torch.no_grad():
            return float(loss_fn(head(embed_points(loc, lonlat[val_t])), target[val_t]))

    return params, opt, forward, val_loss
