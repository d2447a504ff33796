"""Pretraining a ClimateEncoder to reconstruct a raster stack (Climplicit's recipe).

AdamW on the MSE of the z-scored variables (entries without data are masked out), a random month per sample,
optionally land pixels only, gradient clipping, a spatially held-out validation set (whole blocks), early
stopping on it, periodic checkpoints written atomically, and resume from the last checkpoint after any
interruption (also ``kill -9``): batches are a pure function of (seed, step, rank), so a resumed run continues
exactly as an uninterrupted one would.

Data-parallel: launched by ``torchrun --nproc-per-node N``, the same call trains with torch.distributed (gloo on
CPU); each rank draws its own share of every batch and rank 0 validates, checkpoints and reports.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lamina._io import atomic_path, clean_stale_temporaries, write_json_atomic
from lamina._process import torch_seed
from lamina._validation import check_bool, check_choice, check_positive_int, check_real, check_seed
from lamina.errors import CheckpointError, InputError
from lamina.geo.data.rasters import RasterStack
from lamina.geo.data.sampling import Batch, LandShareSampler, PixelSampler, SpatialSplit
from lamina.geo.data.transforms import forward_columns, inverse_columns
from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig

STATE_FILE = "state.pt"
STOP_REASONS = ("max_steps", "early_stopping", "max_minutes")


@dataclass
class PretrainConfig:
    """Hyperparameters of pretraining (paper: AdamW lr 1e-4, batch 8192, clip 0.5, patience 5).

    Attributes:
        max_steps: upper bound on optimiser steps.
        batch_size: samples per step, over all ranks.
        lr: AdamW learning rate (peak, with ``schedule="cosine"``).
        weight_decay: AdamW weight decay.
        schedule: ``"constant"`` (paper) or ``"cosine"`` (linear warm-up then cosine decay to 0 at max_steps).
        warmup_steps: warm-up length of the cosine schedule.
        grad_clip: max gradient norm.
        eval_every: steps between validations (one "epoch" for early stopping).
        patience: validations without improvement before stopping.
        checkpoint_every: steps between resumable checkpoints.
        max_minutes: wall-clock budget (None = unlimited); training stops cleanly when spent.
        land_only: draw land pixels only.
        land_share: draw this fraction of every batch from land pixels and the rest from sea (None: pixels as
            they come, about 29% land); cannot be combined with ``land_only``.
        val_fraction, val_block_deg: the spatial hold-out (fraction of blocks, block size in degrees). 0 trains
            on every pixel (a run to ship, after the recipe was chosen on held-out blocks): validation is then
            in-sample, on a fixed set of training pixels, and only monitors the fit.
        n_val: samples in the fixed validation set.
        n_windows, months_per_window: sampler settings (see :class:`~lamina.geo.data.sampling.PixelSampler`).
        stats_stride: read every k-th row and column when computing normalisation statistics.
        seed: everything random derives from it.
        grid_dropout: with a learned grid (``EncoderConfig.grid_resolutions``), the probability that a sample's
            grid features are set to 0 in a training step, so that the network also learns to answer from the
            location alone, as it must where no training sample reached the grid (held-out blocks). 0: never.
        init_from: a checkpoint (folder or ``bundled:NAME``) of the same architecture and variables to start from,
            with a fresh optimiser and schedule (a warm restart; its weights and normalisation are taken, and the
            run's metadata names it); None starts from the seed.
        target_weights: weight of a variable's error in the loss, by variable name (e.g. ``{"era5_t2m": 4,
            "era5_tp": 4}`` to spend more of the network on the variables ecologists read most), each in [0.001,
            1000]; unnamed variables weigh 1. The training loss, best-step selection and early stopping use the
            weighted mean over the valid entries; the recorded ``normalised_mse`` stays unweighted (comparable
            across runs), with the weighted one beside it. None (or empty): all weigh 1.
    """

    max_steps: int = 20_000
    batch_size: int = 8192
    lr: float = 1e-4
    weight_decay: float = 0.01
    schedule: str = "constant"
    warmup_steps: int = 200
    grad_clip: float = 0.5
    eval_every: int = 250
    patience: int = 5
    checkpoint_every: int = 250
    max_minutes: float | None = None
    land_only: bool = False
    land_share: float | None = None
    val_fraction: float = 0.1
    val_block_deg: float = 10.0
    n_val: int = 32_768
    n_windows: int = 64
    months_per_window: int = 12
    stats_stride: int = 1
    seed: int = 0
    grid_dropout: float = 0.0
    init_from: str | None = None
    target_weights: dict[str, float] | None = None

    def __post_init__(self):
        check_choice("schedule", self.schedule, ("constant", "cosine"))
        if self.init_from is not None:
            if isinstance(self.init_from, os.PathLike):
                self.init_from = os.fspath(self.init_from)
            if not isinstance(self.init_from, str) or not self.init_from.strip():
                raise InputError(f"init_from: expected a checkpoint folder or bundled:NAME, got {self.init_from!r}")
        for name in ("max_steps", "batch_size", "eval_every", "checkpoint_every", "n_val", "n_windows",
                     "months_per_window", "stats_stride", "patience"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("warmup_steps", self.warmup_steps, minimum=0)
        check_seed("seed", self.seed)
        for name in ("lr", "grad_clip", "val_block_deg"):
            check_real(name, getattr(self, name), low=0.0, low_open=True)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_real("max_minutes", self.max_minutes, low=0.0, low_open=True, allow_none=True)
        self.land_only = check_bool("land_only", self.land_only)
        check_real("val_fraction", self.val_fraction, low=0.0, high=1.0, high_open=True)
        check_real("grid_dropout", self.grid_dropout, low=0.0, high=1.0, high_open=True)
        self.target_weights = _check_target_weights(self.target_weights)
        if self.land_share is not None:
            check_real("land_share (the fraction of each batch drawn from land)", self.land_share, low=0.0,
                       low_open=True, high=1.0, high_open=True)
            if self.land_only:
                raise InputError("land_share: cannot be combined with land_only (which draws land pixels only)")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def in_sample_validation(self) -> bool:
        """True when no block is held out (``val_fraction == 0``): validation monitors the fit on training pixels."""
        return self.val_fraction == 0


TARGET_WEIGHT_RANGE = (1e-3, 1e3)


def _check_target_weights(weights) -> dict[str, float] | None:
    """``target_weights`` as a plain str -> float mapping (None when empty), each weight in TARGET_WEIGHT_RANGE."""
    if weights is None:
        return None
    if not isinstance(weights, Mapping):
        raise InputError(f"target_weights: expected a mapping of variable name -> weight, got {type(weights).__name__}")
    out = {}
    for name, w in weights.items():
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"target_weights: variable names must be non-empty strings, got {name!r}")
        low, high = TARGET_WEIGHT_RANGE
        out[str(name)] = check_real(f"target_weights[{name!r}]", w, low=low, high=high)
    return out or None


def loss_weights(weights: dict[str, float] | None, names: list[str]) -> np.ndarray | None:
    """The (V,) loss weight of each of ``names`` from a ``target_weights`` mapping (None: all weigh 1); a name
    that is not a variable of the stack is refused, naming the ones there are."""
    if not weights:
        return None
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise InputError(f"target_weights: {', '.join(map(repr, unknown))} not among the stack's variables "
                         f"({', '.join(names)})")
    return np.array([float(weights.get(n, 1.0)) for n in names])


RESUMABLE_CHANGES = ("max_minutes", "patience", "max_steps")
"""Pretraining settings a resumed run may change; any other change (data recipe, optimiser, schedule) is refused.
``max_steps`` may change only with the constant schedule (the cosine schedule's shape depends on it)."""


def check_resumable(saved: dict, config: PretrainConfig, path) -> None:
    """Refuse to continue a training state written with another recipe (naming the settings that differ)."""
    old = dict(saved)
    new = config.to_dict()
    old.setdefault("land_share", None)  # states written before land_share existed
    old.setdefault("grid_dropout", 0.0)  # ... and before grid_dropout
    old.setdefault("target_weights", None)  # ... and before target_weights
    allowed = set(RESUMABLE_CHANGES) - ({"max_steps"} if new["schedule"] == "cosine" else set())
    diff = sorted(k for k in new if k not in allowed and old.get(k) != new[k])
    if diff:
        pairs = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in diff)
        raise InputError(f"resume: {path} was trained with another recipe ({pairs}); continuing would mix them. "
                         "Use a new output folder, --no-resume, or the original settings")


@dataclass
class TrainState:
    step: int = 0
    best_val: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    elapsed_s: float = 0.0
    samples_seen: int = 0
    history: list = field(default_factory=list)
    finished: str = ""


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the entries where ``valid`` is true. Shapes: (B, V) each. With ``weights`` (V,),
    the weighted mean: each entry counts its variable's weight, in the sum and in the count."""
    diff = torch.where(valid, pred - target, torch.zeros((), dtype=pred.dtype))
    if weights is None:
        return diff.square().sum() / valid.sum().clamp_min(1)
    w = valid * weights.to(pred.dtype)
    return (w * diff.square()).sum() / w.sum().clamp_min(1e-12)


def _dist():
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def _lr_at(cfg: PretrainConfig, step: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lr
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _tensors(module: ClimateModule, batch: Batch, mean: np.ndarray, std: np.ndarray, transforms=()):
    x = module.encode_inputs(torch.from_numpy(batch.lon), torch.from_numpy(batch.lat), torch.from_numpy(batch.month))
    z = (forward_columns(transforms, batch.values.astype(np.float64)) - mean) / std
    valid = np.isfinite(z)
    return x, torch.from_numpy(np.nan_to_num(z).astype(np.float32)), torch.from_numpy(valid)


@torch.no_grad()
def evaluate(module: ClimateModule, batch: Batch, mean: np.ndarray, std: np.ndarray, chunk: int = 8192,
             transforms=(), weights: np.ndarray | torch.Tensor | None = None) -> dict:
    """Masked MSE (normalised: ``loss``; with ``weights`` (V,) also ``weighted_loss``, the training objective) and
    per-variable RMSE / R^2 in physical units on a fixed set of samples."""
    module.eval()
    preds = []
    x, z_true, _ = _tensors(module, batch, mean, std, transforms)
    for s in range(0, x.shape[0], chunk):
        preds.append(module(x[s : s + chunk])[1].double().numpy())
    module.train()
    z_pred = np.concatenate(preds)  # (N, V) normalised
    pred = inverse_columns(transforms, z_pred * std + mean)  # (N, V) physical
    truth = batch.values.astype(np.float64)
    valid = np.isfinite(truth)
    z_err = np.where(valid, z_pred - z_true.double().numpy(), 0.0)
    out = {"loss": float((z_err**2).sum() / max(valid.sum(), 1)), "rmse": [], "r2": [], "n": []}
    if weights is not None:
        w = valid * np.asarray(weights, np.float64)[None, :]
        out["weighted_loss"] = float((w * z_err**2).sum() / max(w.sum(), 1e-12))
    for j in range(truth.shape[1]):
        ok = valid[:, j]
        if ok.sum() < 2:
            out["rmse"].append(None), out["r2"].append(None), out["n"].append(int(ok.sum()))
            continue
        err = pred[ok, j] - truth[ok, j]
        var = truth[ok, j].var()
        out["rmse"].append(float(np.sqrt(np.mean(err**2))))
        out["r2"].append(float(1.0 - np.mean(err**2) / var) if var > 0 else None)
        out["n"].append(int(ok.sum()))
    return out


def _save_state(path: Path, module: nn.Module, opt: torch.optim.Optimizer, st: TrainState, extra: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": module.state_dict(), "optimizer": opt.state_dict(), "state": asdict(st), **extra}, tmp)


def _load_state(path: Path) -> dict:
    """Read a resumable training state, refusing anything that is not a complete one (tensors and plain data)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated, random or foreign file
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"resume: {path} is not a readable training state ({reason}); delete it to start "
                              "over, or use another output folder") from None
    needed = {"model", "optimizer", "state", "encoder_config", "variables", "mean", "std"}
    if not isinstance(saved, dict) or not needed <= set(saved):
        raise CheckpointError(f"resume: {path} is not a lamina pretraining state (missing "
                              f"{sorted(needed - set(saved) if isinstance(saved, dict) else needed)})")
    return saved


def _agree(stop: str, dist) -> str:
    """Rank 0's stop decision, the same on every rank at the same step (a no-op without torch.distributed)."""
    if dist is None:
        return stop
    codes = ("", *STOP_REASONS)
    flag = torch.tensor([codes.index(stop)])
    dist.broadcast(flag, src=0)
    return codes[int(flag)]


def pretrain(stack: RasterStack, encoder_config: EncoderConfig | None = None, config: PretrainConfig | None = None,
             out_dir: str | Path = "runs/pretrain", *, resume: bool = True, progress: bool = True) -> ClimateEncoder:
    """Pretrain a climate encoder on ``stack``; return the best encoder (by held-out validation loss).

    Writes into ``out_dir``: ``state.pt`` (resumable training state), ``best/`` (the best checkpoint so far, a
    lamina checkpoint directory), ``history.json`` (losses, samples/s) and, at the end, ``final/`` (the best
    weights with held-out metrics in their metadata). With ``resume`` an existing ``state.pt`` is continued.
    """
    run = _Run.start(stack, encoder_config, config, Path(out_dir), resume=resume)
    sampler, val_set = _samplers(run)
    stop_reason, loss_ema = _train_steps(run, sampler, val_set, progress=progress)
    return _finish(run, val_set, stop_reason, loss_ema)


@dataclass
class _Run:
    """One pretraining run as the steps of :func:`pretrain` share it: the model, its optimiser and training state,
    the normalisation, the process's place in torch.distributed, and what every checkpoint records."""

    stack: RasterStack
    encoder_config: EncoderConfig
    config: PretrainConfig
    out_dir: Path
    dist: object  # torch.distributed, or None in a single process
    rank: int
    world: int
    module: ClimateModule
    opt: torch.optim.Optimizer
    st: TrainState = field(default_factory=TrainState)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    train_mod: nn.Module | None = None  # the module, wrapped for data parallelism when distributed
    provenance: dict = field(default_factory=dict)
    weights: torch.Tensor | None = None  # (V,) loss weight of each variable; None: all 1

    @classmethod
    def start(cls, stack: RasterStack, encoder_config: EncoderConfig | None, config: PretrainConfig | None,
              out_dir: Path, *, resume: bool) -> _Run:
        """Check the arguments, prepare ``out_dir``, and build the model: continued from ``state.pt`` (with
        ``resume``) or initialised from the seed, with the stack's normalisation statistics."""
        encoder_config = encoder_config or EncoderConfig(n_variables=len(stack.fields))
        config = config or PretrainConfig()
        if encoder_config.n_variables != len(stack.fields):
            raise InputError(f"n_variables: the encoder regresses {encoder_config.n_variables} variables, "
                             f"the stack has {len(stack.fields)} ({stack.names})")
        if config.grid_dropout and not encoder_config.grid_resolutions:
            raise InputError(f"grid_dropout: {config.grid_dropout:g} needs a learned grid (grid_resolutions)")
        weights = loss_weights(config.target_weights, stack.names)  # unknown names refused before any work
        weights = None if weights is None else torch.from_numpy(weights).float()
        dist, rank, world = _dist()
        if config.batch_size % world:
            raise InputError(f"batch_size: {config.batch_size} is not divisible by the {world} processes")
        with torch_seed(config.seed):  # initialisation from the seed, the caller's random stream untouched
            module = ClimateModule(encoder_config)  # (sizes beyond memory refused here, before out_dir is made)
        parent = (_parent_record(config.init_from, encoder_config, stack.names)  # matching, or refused here
                  if config.init_from is not None else None)
        if rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            for name in (STATE_FILE, "history.json", "best", "final"):  # left by an interrupted run
                clean_stale_temporaries(out_dir / name)
        opt = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        run = cls(stack, encoder_config, config, out_dir, dist, rank, world, module, opt, weights=weights)
        run.restore(resume)
        if dist is not None:
            for p in module.parameters():  # identical start on every rank
                dist.broadcast(p.data, src=0)
        run.train_mod = _data_parallel(module) if dist is not None else module
        run.provenance = {
            "stack": stack.name, "stack_description": stack.description, "pretrain_config": config.to_dict(),
            "world_size": world, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "validation": ("in-sample: a fixed set of training pixels (val_fraction 0, no held-out blocks)"
                           if config.in_sample_validation else
                           f"held-out {config.val_block_deg:g}-degree blocks ({config.val_fraction:.0%})")}
        if parent is not None:  # a warm restart names its parent (also when resumed)
            run.provenance["init_from"] = parent
        return run

    @property
    def state_path(self) -> Path:
        return self.out_dir / STATE_FILE

    @property
    def transforms(self) -> list[str]:
        """The normalising transform of each variable (log1p for precipitation)."""
        return [v.transform for v in self.stack.variables]

    def restore(self, resume: bool) -> None:
        """Continue the training state in ``state.pt`` (refusing one of another encoder, stack or recipe), or
        start afresh with the stack's normalisation statistics."""
        saved = _load_state(self.state_path) if resume and self.state_path.exists() else None
        if saved is None and self.config.init_from is not None:
            self._warm_start()
            return
        if saved is None:
            stats = self.stack.statistics(land_only=self.config.land_only, stride=self.config.stats_stride)
            self.mean, self.std = stats.mean, stats.std
            if self.module.terrain is not None:  # a fresh start builds the fixed terrain table (a resumed or
                from lamina.geo.data.terrain import terrain_table  # warm-started run keeps its own)

                self.module.terrain.fill(terrain_table(columns=self.encoder_config.terrain_columns))
            return
        if (_with_defaults(saved["encoder_config"]) != self.encoder_config.to_dict()
                or saved["variables"] != self.stack.names):
            raise InputError(f"resume: {self.state_path} belongs to another encoder or stack; use a new output "
                             "folder or --no-resume")
        if isinstance(saved.get("pretrain_config"), dict):
            check_resumable(saved["pretrain_config"], self.config, self.state_path)
        self.module.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        st = self.st = TrainState(**saved["state"])
        more_time = self.config.max_minutes is None or st.elapsed_s < 60 * self.config.max_minutes
        if st.finished in ("max_minutes", "max_steps") and more_time and st.step < self.config.max_steps:
            st.finished = ""  # stopped by a budget: a rerun with a larger one (time, or steps) continues it
        self.mean, self.std = np.asarray(saved["mean"]), np.asarray(saved["std"])

    def _warm_start(self) -> None:
        """Start from the weights and normalisation of the checkpoint ``config.init_from`` (checked by
        :func:`_parent_record` to match), with a fresh optimiser and schedule: a warm restart."""
        from lamina.geo.encoder import load

        parent = load(self.config.init_from)
        self.module.load_state_dict(parent.module.state_dict())
        self.mean, self.std = np.asarray(parent.mean, np.float64), np.asarray(parent.std, np.float64)

    def save_state(self) -> None:
        """Write the resumable state and the history (rank 0)."""
        extra = {"encoder_config": self.encoder_config.to_dict(), "variables": self.stack.names,
                 "mean": self.mean.tolist(), "std": self.std.tolist(), "pretrain_config": self.config.to_dict()}
        _save_state(self.state_path, self.module, self.opt, self.st, extra)
        write_json_atomic(self.out_dir / "history.json", self.st.history)

    def checkpoint_best(self, metrics: dict) -> None:
        """Save the current weights as ``best/``, with their validation metrics."""
        meta = {"training": {**self.provenance, "step": self.st.step, "samples_seen": self.st.samples_seen}}
        enc = ClimateEncoder(ClimateModule(self.encoder_config), self.stack.variables, self.mean, self.std, meta)
        enc.module.load_state_dict(self.module.state_dict())
        enc.save(self.out_dir / "best", extra_metadata={"validation": metrics})


def _data_parallel(module: nn.Module) -> nn.Module:
    """``module`` under DistributedDataParallel without a broadcast of its buffers at every step: they (the terrain
    table, the static mask) never change in training. (torch 2.13 names the switch ``forward_sync_buffers`` and
    warns on the older ``broadcast_buffers``; earlier versions know only the latter.)"""
    import inspect

    ddp = nn.parallel.DistributedDataParallel
    name = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
            else "broadcast_buffers")
    return ddp(module, **{name: False})


def _with_defaults(config: dict) -> dict:
    """An encoder config as saved, with the defaults of fields added since (a checkpoint or state written before
    ``grid_resolutions`` existed has none); as saved where it does not parse (then it differs from any config)."""
    try:
        return EncoderConfig.from_dict(config).to_dict()
    except (InputError, CheckpointError, TypeError):
        return config


def _parent_record(source: str, encoder_config: EncoderConfig, names: list[str]) -> dict:
    """What a warm-started run records of the checkpoint it starts from (where, its digest, its training), after
    checking that it has the run's architecture and variables."""
    from lamina._io import read_checkpoint_config
    from lamina.geo.encoder import resolve_checkpoint

    doc = read_checkpoint_config(resolve_checkpoint(source))
    mine, theirs = encoder_config.to_dict(), _with_defaults(doc.get("config", {}))
    diff = [f"{k}: {theirs.get(k)!r} -> {mine[k]!r}" for k in sorted(mine) if theirs.get(k) != mine[k]]
    if diff:
        raise InputError(f"init_from: {source} is another architecture ({', '.join(diff)}); pass its settings or "
                         "start from the seed")
    meta = doc.get("metadata", {})
    theirs_names = [v.get("name") for v in meta.get("variables", [])]
    if theirs_names != list(names):
        raise InputError(f"init_from: {source} regresses {theirs_names}, the stack has {list(names)}")
    training = meta.get("training", {})
    return {"checkpoint": str(source), "sha256": doc.get("sha256"),
            **{k: training[k] for k in ("steps", "samples_seen", "command", "init_from") if k in training}}


def _samplers(run: _Run) -> tuple[PixelSampler | LandShareSampler, Batch | None]:
    """This rank's training batches and (rank 0) the fixed validation set: held-out blocks as the pixels come
    (land only with ``land_only``), or training pixels when no block is held out."""
    config, stack, world = run.config, run.stack, run.world
    split = SpatialSplit(config.val_block_deg, config.val_fraction, config.seed)
    kw = dict(split=split, n_windows=max(1, config.n_windows // world), months_per_window=config.months_per_window,
              seed=config.seed)
    if config.land_share is not None:
        sampler = LandShareSampler(stack, land_share=config.land_share, batch_size=config.batch_size // world,
                                   part="train", rank=run.rank, **kw)
    else:
        sampler = PixelSampler(stack, batch_size=config.batch_size // world, part="train", rank=run.rank,
                               land_only=config.land_only, **kw)
    val_part = "train" if config.in_sample_validation else "val"
    val_set = (PixelSampler(stack, batch_size=8192, part=val_part, land_only=config.land_only, **kw)
               .fixed_set(config.n_val) if run.rank == 0 else None)
    return sampler, val_set


def _optimise(run: _Run, batch: Batch, step: int) -> float:
    """One AdamW step on ``batch`` at the schedule's learning rate; the batch's loss."""
    for g in run.opt.param_groups:
        g["lr"] = _lr_at(run.config, step)
    x, z, valid = _tensors(run.module, batch, run.mean, run.std, run.transforms)
    _, pred = run.train_mod(x, _grid_keep(run, step, x.shape[0]))
    loss = masked_mse(pred, z, valid, run.weights)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.module.parameters(), run.config.grad_clip)
    run.opt.step()
    return loss.item()


def _grid_keep(run: _Run, step: int, n: int) -> torch.Tensor | None:
    """The (n,) 0 / 1 grid-dropout mask of this rank's batch at ``step`` (None without grid dropout): drawn from
    a generator seeded by (seed, step, rank), so a resumed run draws what an uninterrupted one would."""
    p = run.config.grid_dropout
    if not p:
        return None
    gen = torch.Generator().manual_seed((run.config.seed * 1_000_003 + step) * 64 + run.rank)
    return (torch.rand(n, generator=gen) >= p).float()


def _train_steps(run: _Run, sampler, val_set: Batch | None, *, progress: bool) -> tuple[str, float | None]:
    """Train until a stop (max_steps, early_stopping, max_minutes), validating and checkpointing on the way;
    return the stop reason ("" when the batches ran out) and the smoothed training loss."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    config, st = run.config, run.st
    bar = Progress(TextColumn("[bold]pretrain"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), disable=not progress or run.rank != 0)
    t_start = time.perf_counter() - st.elapsed_s
    t_window, n_window, loss_ema = time.perf_counter(), 0, None
    stop_reason = st.finished
    run.module.train()
    # closing the batch iterator stops and joins its prefetch thread before the process goes on (or exits)
    it = sampler.iterate(st.step) if not stop_reason else (b for b in ())
    with bar, contextlib.closing(it):
        task = bar.add_task("train", total=config.max_steps, completed=st.step, info="")
        for step, batch in it:
            if step >= config.max_steps:
                stop_reason = "max_steps"
                break
            loss_val = _optimise(run, batch, step)
            st.step = step + 1
            st.samples_seen += config.batch_size
            n_window += config.batch_size
            loss_ema = loss_val if loss_ema is None else 0.95 * loss_ema + 0.05 * loss_val
            now = time.perf_counter()
            st.elapsed_s = now - t_start
            rate = n_window / max(now - t_window, 1e-9)
            bar.update(task, completed=st.step, info=f"loss {loss_ema:.4f}  best val {st.best_val:.4f}  "
                                                     f"{rate:,.0f} samples/s")
            if st.step % config.eval_every == 0 or st.step == config.max_steps:
                stop_reason = _validate(run, val_set, rate, loss_ema)
                t_window, n_window = time.perf_counter(), 0
            over_time = config.max_minutes is not None and st.elapsed_s > 60 * config.max_minutes
            if over_time and not stop_reason:
                stop_reason = "max_minutes"
            stop_reason = _agree(stop_reason, run.dist)  # rank 0's clock and validation decide for every rank
            if stop_reason or st.step % config.checkpoint_every == 0:
                st.finished = stop_reason
                if run.rank == 0:
                    run.save_state()
            if stop_reason:
                break
    return stop_reason, loss_ema


def _finish(run: _Run, val_set: Batch | None, stop_reason: str, loss_ema: float | None) -> ClimateEncoder:
    """Record the stop, make sure a best checkpoint exists, and write ``final/`` (the best weights with their
    held-out, or in-sample, metrics); return the best encoder."""
    stop_reason = stop_reason or "max_steps"
    if run.dist is not None:
        run.dist.barrier()
    run.st.finished = stop_reason
    if run.rank == 0:
        if not (run.out_dir / "best").exists():  # never validated (tiny runs): validate now
            _validate(run, val_set, 0.0, loss_ema or math.nan)
        run.save_state()
    if run.dist is not None:
        run.dist.barrier()
    best = ClimateEncoder.from_checkpoint(run.out_dir / "best")
    if run.rank == 0:
        st, stack = run.st, run.stack
        final_metrics = evaluate(best.module, val_set, run.mean, run.std, transforms=run.transforms,
                                 weights=run.weights)
        best.save(run.out_dir / "final", extra_metadata={
            "training": {**run.provenance, "stopped": stop_reason, "best_step": st.best_step,
                         "steps": st.step, "samples_seen": st.samples_seen, "elapsed_s": round(st.elapsed_s, 1)},
            ("insample_metrics" if run.config.in_sample_validation else "heldout_metrics"):
                _named(final_metrics, stack.names, stack.variables),
        })
    return best


def _validate(run: _Run, val_set: Batch | None, rate: float, loss_ema: float) -> str:
    """Rank 0: validate, record the history, checkpoint a new best; "early_stopping" after ``patience``
    validations without progress, else ""."""
    stop = ""
    if run.rank == 0:
        st = run.st
        m = evaluate(run.module, val_set, run.mean, run.std, transforms=run.transforms, weights=run.weights)
        objective = m.get("weighted_loss", m["loss"])  # what training minimises
        st.history.append({"step": st.step, "train_loss": loss_ema, "val_loss": m["loss"],
                           **({"val_weighted_loss": objective} if "weighted_loss" in m else {}),
                           "samples_per_s": rate, "elapsed_s": round(st.elapsed_s, 1)})
        if objective < st.best_val - 1e-6:
            st.best_val, st.best_step, st.bad_evals = objective, st.step, 0
            run.checkpoint_best(m)
        else:
            st.bad_evals += 1
        if st.bad_evals >= run.config.patience:
            stop = "early_stopping"
    return stop


def _named(metrics: dict, names, variables) -> dict:
    return {
        "normalised_mse": metrics["loss"],
        **({"weighted_mse": metrics["weighted_loss"]} if "weighted_loss" in metrics else {}),
        "per_variable": {
            n: {"units": v.units, "rmse": metrics["rmse"][j], "r2": metrics["r2"][j], "n": metrics["n"][j]}
            for j, (n, v) in enumerate(zip(names, variables, strict=True))
        },
    }
