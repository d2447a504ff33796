"""Training a :class:`SingleLayerTransformer` by Adam on a target, and the baselines to report beside it.

``train(model, task, cfg) -> TrainResult`` follows the protocol of Hu et al.: a fixed training set (default 50,000
sequences) and a 2,000-sequence test set, or fresh samples at every step (``num_train=None``; the target is known,
so data are free). The learning rate warms up linearly and decays by a cosine; with a ``time_limit_s`` the decay
follows the elapsed fraction of the time budget, so a run that must stop early still ends at a small rate.
Checkpoints (model + optimiser as one atomic checkpoint, :mod:`lamina.seq.checkpoint`) are written every
``checkpoint_every`` steps when a directory is given, and a run started again with the same directory resumes from
the last one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from lamina._process import torch_seed, torch_threads
from lamina._validation import check_memory, check_positive_int, check_real, check_seed
from lamina.errors import InputError
from lamina.seq.checkpoint import has_state, load_state, save_state, train_info
from lamina.seq.model import SeqConfig, SingleLayerTransformer


@dataclass
class TrainConfig:
    """Hyperparameters of :func:`train`.

    Attributes:
        steps: optimiser steps (the run may stop earlier at ``time_limit_s``).
        batch_size: sequences per step.
        lr: peak learning rate of Adam(W).
        min_lr_ratio: the cosine decays to ``lr * min_lr_ratio``.
        warmup_steps: linear warm-up from 0.
        weight_decay: decoupled weight decay (AdamW).
        grad_clip: clip the global gradient norm (0: off).
        num_train: training sequences drawn once (Hu et al.: 50,000); ``None`` draws fresh ones every step.
        num_test: held-out sequences for the reported errors.
        eval_every: steps between evaluations on the test set.
        time_limit_s: stop after this many seconds of training (``None``: no limit).
        threads: torch CPU threads.
        seed: seeds the initialisation order, the data and the batches.
        checkpoint_every: steps between checkpoints when ``train`` gets a ``checkpoint_dir``.
    """

    steps: int = 20_000
    batch_size: int = 256
    lr: float = 3e-3
    min_lr_ratio: float = 0.01
    warmup_steps: int = 500
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    num_train: int | None = 50_000
    num_test: int = 2_000
    eval_every: int = 500
    time_limit_s: float | None = None
    threads: int = 2
    seed: int = 0
    checkpoint_every: int = 5_000

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "num_test", "eval_every", "threads", "checkpoint_every"):
            setattr(self, name, check_positive_int(name, getattr(self, name)))
        self.warmup_steps = check_positive_int("warmup_steps", self.warmup_steps, minimum=0)
        self.seed = check_seed("seed", self.seed)
        if self.num_train is not None:
            self.num_train = check_positive_int("num_train", self.num_train)
        self.lr = check_real("lr", self.lr, low=0.0, low_open=True)
        self.min_lr_ratio = check_real("min_lr_ratio", self.min_lr_ratio, low=0.0, high=1.0)
        self.weight_decay = check_real("weight_decay", self.weight_decay, low=0.0)
        self.grad_clip = check_real("grad_clip", self.grad_clip, low=0.0)
        self.time_limit_s = check_real("time_limit_s", self.time_limit_s, low=0.0, low_open=True, allow_none=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"train config: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model, the learning curve and the final test metrics."""

    model: SingleLayerTransformer
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


def scored(task, y: np.ndarray) -> np.ndarray:
    """The positions of ``y: (B, n, d_out)`` a task is scored on (all, or ``task.positions``)."""
    positions = getattr(task, "positions", None)
    return y if positions is None else y[:, list(positions)]


def relative_mse(y_pred, y_true) -> float:
    """``sum((y_pred - y)^2) / sum((y - mean(y))^2)``, the mean taken over samples per output component."""
    y_pred, y_true = np.asarray(y_pred, dtype=np.float64), np.asarray(y_true, dtype=np.float64)
    denom = np.sum((y_true - y_true.mean(axis=0, keepdims=True)) ** 2)
    return float(np.sum((y_pred - y_true) ** 2) / max(denom, 1e-300))


def error_metrics(task, y_pred, y_true) -> dict:
    """Relative MSE, MSE and the largest absolute error over the scored positions."""
    p, t = scored(task, y_pred), scored(task, y_true)
    return {
        "rel_mse": relative_mse(p, t),
        "mse": float(np.mean((p - t) ** 2)),
        "sup_error": float(np.max(np.abs(p - t))),
    }


def _lstsq_rel_mse(f_train, y_train, f_test, y_test) -> float:
    a = np.concatenate([f_train, np.ones((len(f_train), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(a, y_train, rcond=None)
    pred = np.concatenate([f_test, np.ones((len(f_test), 1))], axis=1) @ coef
    return relative_mse(pred, y_test)


def baselines(task, x_train, y_train, x_test, y_test) -> dict:
    """Relative test MSE of two least-squares baselines fitted on the training set.

    - ``linear``: one affine map of the whole flattened input ``vec(X)`` to every scored output.
    - ``mean_field``: for each position ``i`` its own affine map of ``(x_i, mean_j x_j)`` -- what attention that
      does not single out positions (uniform weights) followed by a per-position readout can reach.

    Shapes:
        ``x_*: (N, n, d)``, ``y_*: (N, n, d_out)``.
    """
    yt, ys = scored(task, y_train), scored(task, y_test)
    b, b_test = len(x_train), len(x_test)
    linear = _lstsq_rel_mse(x_train.reshape(b, -1), yt.reshape(b, -1), x_test.reshape(b_test, -1),
                            ys.reshape(b_test, -1))
    positions = getattr(task, "positions", None)
    idx = list(range(x_train.shape[1])) if positions is None else list(np.arange(x_train.shape[1])[positions])
    mean_tr, mean_te = x_train.mean(axis=1), x_test.mean(axis=1)
    preds = []
    for k, i in enumerate(idx):
        coef_in = np.concatenate([x_train[:, i], mean_tr, np.ones((b, 1))], axis=1)
        coef, *_ = np.linalg.lstsq(coef_in, yt[:, k], rcond=None)
        preds.append(np.concatenate([x_test[:, i], mean_te, np.ones((b_test, 1))], axis=1) @ coef)
    mean_field = relative_mse(np.stack(preds, axis=1), ys)
    return {"linear": linear, "mean_field": mean_field}


def lr_at(cfg: TrainConfig, progress: float, step: int) -> float:
    """Learning rate after ``step`` steps at ``progress`` in [0, 1] of the run: linear warm-up, cosine decay."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(
    model: SingleLayerTransformer,
    task,
    cfg: TrainConfig | None = None,
    *,
    checkpoint_dir=None,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``task`` by AdamW with the mean squared error on the scored positions.

    Args:
        model: the network; its ``n_ctx >= task.n``, ``d_in == task.d``, ``d_out == task.d_out``.
        task: an object with ``n``, ``d``, ``d_out``, ``sample(num, rng) -> (X, Y)`` and optional ``positions``
            (a :class:`~lamina.seq.targets.Target` or :class:`~lamina.seq.icl.InContextRegression`).
        cfg: hyperparameters.
        checkpoint_dir: write model and optimiser state there as one atomic checkpoint (``state/``) every
            ``cfg.checkpoint_every`` steps, and resume from it if present (a corrupt one raises CheckpointError).
        progress: show a progress bar.
        callback: called with each evaluation record.

    Returns:
        :class:`TrainResult` with ``metrics``: test ``rel_mse``, ``mse``, ``sup_error``, ``steps``, ``seconds``,
        ``n_params`` and ``stopped_by`` (``"steps"`` or ``"time"``).
    """
    cfg = cfg or TrainConfig()
    c = model.config
    if c.n_ctx < task.n or c.d_in != task.d or c.d_out != task.d_out:
        raise InputError(f"model: config (n_ctx={c.n_ctx}, d_in={c.d_in}, d_out={c.d_out}) does not fit the task "
                         f"(n={task.n}, d={task.d}, d_out={task.d_out})")
    domain = getattr(task, "domain", None)
    if domain is not None and c.domain != tuple(domain):  # record the box the model is trained for
        model.config = c = replace(c, domain=tuple(domain))
    check_training_memory(c, task, cfg)
    with torch_threads(cfg.threads), torch_seed(cfg.seed):  # scoped: the caller's threads and RNG are restored
        return _train(model, task, cfg, checkpoint_dir, progress, callback)


def check_training_memory(c: SeqConfig, task, cfg: TrainConfig) -> None:
    """Refuse, before anything is allocated, a run whose weights (with gradients and AdamW's two moments), data
    and one batch's activations cannot fit in the memory available (a lower estimate)."""
    sequences = cfg.num_test + (cfg.num_train if cfg.num_train is not None else cfg.batch_size)
    data = sequences * task.n * (task.d + task.d_out) * (8 + 4)  # float64 samples and their float32 copies
    width = 6 * c.d_model + 4 * c.n_heads * c.d_head + 2 * c.d_ff + 2 * c.n_heads * task.n  # per token, forward
    activations = 2 * cfg.batch_size * task.n * width * 4  # float32, kept for the backward pass
    check_memory("train", 16 * c.n_params + data + activations,
                 f"training {c.n_params:.3g} parameters on {sequences:,} sequences of {task.n} x {task.d} in "
                 f"batches of {cfg.batch_size}", hint="use a smaller model, num_train, num_test, batch_size or n "
                 "(CLI: --d-model, --d-ff, --num-train, --num-test, --batch-size, --n)")


def _fixed_training_set(task, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The fixed training set, ``(x (num_train, n, d), scored y)`` float32, or None when every step samples."""
    if cfg.num_train is None:
        return None
    x_train, y_train = task.sample(cfg.num_train, np.random.default_rng([cfg.seed, 1]))
    return torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(scored(task, y_train), dtype=torch.float32)


def _batch(task, cfg: TrainConfig, step: int, fixed) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of ``step`` (a pure function of the seed and the step): drawn from the fixed training set, or
    sampled afresh."""
    rng = np.random.default_rng([cfg.seed, 3, step])
    if fixed is None:
        xb, yb = task.sample(cfg.batch_size, rng)
        return torch.as_tensor(xb, dtype=torch.float32), torch.as_tensor(scored(task, yb), dtype=torch.float32)
    idx = torch.as_tensor(rng.integers(0, cfg.num_train, size=cfg.batch_size))
    return fixed[0][idx], fixed[1][idx]


def _optimise(model, opt, task, cfg: TrainConfig, xb, yb, step: int, *, checkpointed: bool) -> float:
    """One AdamW step on the batch; its loss. A non-finite loss stops training (an ``InputError`` on ``lr``)."""
    pred = scored(task, model(xb))
    loss = torch.mean((pred - yb) ** 2)
    if not math.isfinite(value := loss.item()):  # diverged: stop before a NaN model is saved or reported
        kept = " (the last checkpoint before it is kept)" if checkpointed and step >= cfg.checkpoint_every else ""
        raise InputError(f"lr: training diverged at step {step + 1} (loss {value}) with lr {cfg.lr:g}; "
                         f"lower --lr{' or set --grad-clip' if cfg.grad_clip <= 0 else ''}{kept}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return value


def _train(model, task, cfg: TrainConfig, checkpoint_dir, progress: bool, callback) -> TrainResult:
    x_test, y_test = task.sample(cfg.num_test, np.random.default_rng([cfg.seed, 2]))
    fixed = _fixed_training_set(task, cfg)
    model = model.float()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    start_step, elapsed0 = 0, 0.0
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    task_info = task.describe() if hasattr(task, "describe") else {}
    run_info = train_info(cfg)
    if ckpt is not None and has_state(ckpt):  # refused when written for another architecture, task or config
        start_step, history, elapsed0 = load_state(ckpt, model, opt, task_info=task_info, train_info=run_info)

    def evaluate(step: int, elapsed: float, train_loss: float) -> dict:
        model.eval()
        rec = {"step": step, "seconds": round(elapsed, 2), "train_loss": train_loss,
               **error_metrics(task, model.predict(x_test), y_test)}
        model.train()
        history.append(rec)
        if callback is not None:
            callback(rec)
        return rec

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]train[/]"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[msg]}"), TimeElapsedColumn(), disable=not progress, transient=True)
    t0 = time.perf_counter() - elapsed0
    step, ema, stopped_by = start_step, float("nan"), "steps"
    model.train()
    with bar:
        bar_id = bar.add_task("train", total=cfg.steps, completed=start_step, msg="")
        while step < cfg.steps:
            elapsed = time.perf_counter() - t0
            if cfg.time_limit_s is not None and elapsed >= cfg.time_limit_s:
                stopped_by = "time"
                break
            frac = step / cfg.steps
            if cfg.time_limit_s is not None:
                frac = max(frac, elapsed / cfg.time_limit_s)
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, frac, step)
            xb, yb = _batch(task, cfg, step, fixed)
            value = _optimise(model, opt, task, cfg, xb, yb, step, checkpointed=ckpt is not None)
            step += 1
            ema = value if math.isnan(ema) else 0.98 * ema + 0.02 * value
            if step % cfg.eval_every == 0:
                rec = evaluate(step, time.perf_counter() - t0, ema)
                bar.update(bar_id, msg=f"test rel. MSE {rec['rel_mse']:.4g}")
            if ckpt is not None and step % cfg.checkpoint_every == 0:
                save_state(ckpt, model, opt, step=step, history=history, elapsed=time.perf_counter() - t0,
                           task_info=task_info, train_info=run_info)
            bar.update(bar_id, completed=step)
    elapsed = time.perf_counter() - t0
    if not history or history[-1]["step"] != step:
        evaluate(step, elapsed, ema)
    if ckpt is not None:
        save_state(ckpt, model, opt, step=step, history=history, elapsed=elapsed, task_info=task_info,
                   train_info=run_info)
    final = dict(history[-1])
    metrics = {k: final[k] for k in ("rel_mse", "mse", "sup_error")}
    metrics.update(steps=step, seconds=round(elapsed, 1), n_params=model.n_params, stopped_by=stopped_by)
    return TrainResult(model=model.eval(), history=history, metrics=metrics)


def gather_init(model: SingleLayerTransformer, *, beta: float = 4.0) -> SingleLayerTransformer:
    """Initialise the attention so that head ``h`` attends to position ``h mod n_ctx`` (the construction's gather).

    Only the query and key maps change: every head gets the constant query ``e_1`` (through the bias) and a key
    whose first coordinate is ``beta`` at its position and 0 at the others, whatever the token content -- solved
    by least squares through the (random) input projection. Values, output projection and the feed-forward layer
    keep their random initialisation, and everything stays trainable. Needs one-hot or learned positions and
    ``d_model >= n_ctx + d_in + 1`` (so positions can be separated from content).

    Returns:
        ``model``, modified in place.
    """
    c = model.config
    beta = check_real("beta", beta, low=0.0, low_open=True)
    if c.positional not in ("onehot", "learned") or c.d_model < c.n_ctx + c.d_in + 1:
        raise InputError(f"gather_init: needs positional onehot or learned and d_model >= n_ctx + d_in + 1 = "
                         f"{c.n_ctx + c.d_in + 1}, got {c.positional!r} and d_model {c.d_model}")
    with torch.no_grad():
        w_in = model.W_in.weight.double()  # (d_model, d_token)
        pos = w_in[:, c.d_in :] if c.positional == "onehot" else model.pos.double().T  # (d_model, n_ctx)
        content = torch.cat([w_in[:, : c.d_in], model.W_in.bias.double()[:, None]], dim=1)  # (d_model, d_in + 1)
        a = torch.cat([pos, content], dim=1).T  # (n_ctx + d_in + 1, d_model): the directions to control
        model.W_q.weight.zero_()
        model.W_q.bias.zero_()
        model.W_k.bias.zero_()
        for h in range(c.n_heads):
            target = torch.zeros(a.shape[0], dtype=torch.float64)
            target[h % c.n_ctx] = beta / c.attn_scale
            row = torch.linalg.lstsq(a, target[:, None]).solution[:, 0]  # (d_model,)
            model.W_k.weight[h * c.d_head] = row.float()
            model.W_q.bias[h * c.d_head] = 1.0
    return model
