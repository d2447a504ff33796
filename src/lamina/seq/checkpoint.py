"""Training checkpoints of lamina.seq: model and optimiser state as ONE atomic lamina checkpoint.

``checkpoint_dir/state/`` is a lamina checkpoint directory (``model.safetensors`` + ``config.json`` with its
sha256, written to a temporary sibling and renamed by :func:`lamina._io.save_checkpoint`), so a run killed while
saving leaves the previous state or the new one, never a model of one step with the optimiser of another. It holds

- tensors ``model.<name>`` (the model's state dict) and ``optimizer.<param index>.<key>`` (the optimiser's
  per-parameter tensors, e.g. Adam's moments and step counts);
- ``config``: the model's :class:`~lamina.seq.model.SeqConfig`;
- ``metadata``: ``step``, ``history``, ``elapsed_s``, ``task`` (the task's ``describe()``), ``train`` (the
  :class:`~lamina.seq.train.TrainConfig` less the fields a resumed run may change, :data:`MAY_CHANGE`), and
  ``optimizer``: its ``param_groups`` and any per-parameter value that is not a tensor (plain JSON).

Resuming checks that the checkpoint was written for the same architecture, task and training configuration: a run
of ``sort`` never silently continues in a directory that holds ``moving-average``.

Nothing is pickled. A checkpoint written by earlier versions (``model/`` + ``optimizer.pt``) is still read, with
``torch.load(weights_only=True)``. Whatever is wrong with a checkpoint (truncated, random bytes, empty, another
kind or architecture) is a :class:`~lamina.errors.CheckpointError` (or an :class:`~lamina.errors.InputError` for a
checkpoint of another architecture), never a traceback from a reader.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from lamina.errors import CheckpointError, InputError
from lamina.seq.model import SeqConfig, config_from_doc

KIND = "seq.TrainState"
STATE_DIR = "state"
MAY_CHANGE = ("steps", "time_limit_s", "threads", "checkpoint_every", "eval_every")
"""TrainConfig fields a resumed run may set anew: how long it runs and how it reports, not what it learns."""


def train_info(cfg) -> dict:
    """What a checkpoint records of a :class:`~lamina.seq.train.TrainConfig`: all but :data:`MAY_CHANGE`."""
    return {k: v for k, v in cfg.to_dict().items() if k not in MAY_CHANGE}


def save_state(directory, model, opt: torch.optim.Optimizer, *, step: int, history: list, elapsed: float,
               task_info: dict, train_info: dict | None = None) -> Path:
    """Write model and optimiser state as one atomic checkpoint ``directory/state``; returns its path."""
    from lamina._io import save_checkpoint

    tensors = {f"model.{k}": v.detach() for k, v in model.state_dict().items()}
    full = opt.state_dict()
    plain = {}
    for idx, entries in full["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{idx}.{key}"] = value.detach()
            else:
                plain[f"{idx}.{key}"] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in full["param_groups"]]
    meta = {"step": int(step), "history": history, "elapsed_s": float(elapsed), "task": task_info,
            "train": train_info or {}, "optimizer": {"param_groups": groups, "plain": plain}}
    return save_checkpoint(Path(directory) / STATE_DIR, tensors, kind=KIND, config=model.config.to_dict(),
                           metadata=meta)


def has_state(directory) -> bool:
    """True when ``directory`` holds a training checkpoint (this layout or the earlier one)."""
    directory = Path(directory)
    legacy = (directory / "optimizer.pt").exists() and (directory / "model").exists()
    return (directory / STATE_DIR).exists() or legacy


def _same_architecture(saved: SeqConfig, model, directory: Path) -> None:
    if replace(saved, domain=model.config.domain) != model.config:
        raise InputError(f"checkpoint_dir: {directory} holds a model of another architecture; use a new directory")


def _plain(value):
    """``value`` as it reads back from JSON (tuples become lists), so saved and current descriptions compare."""
    return json.loads(json.dumps(value))


def _same_run(meta, task_info: dict | None, train_info: dict | None, directory: Path) -> None:
    """Refuse a checkpoint written for another task or training configuration (a record it lacks is not checked:
    checkpoints of earlier versions)."""
    if not isinstance(meta, dict):
        return
    for what, saved, now in (("task", meta.get("task"), task_info), ("config", meta.get("train"), train_info)):
        if not saved or not now:
            continue
        now = _plain(now)
        if saved != now:
            keys = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k)) if isinstance(saved, dict) \
                else []
            diff = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in keys[:4])
            raise InputError(f"checkpoint_dir: {directory} was trained on another {what} ({diff}); use a new directory")


def load_state(directory, model, opt: torch.optim.Optimizer, *, task_info: dict | None = None,
               train_info: dict | None = None) -> tuple[int, list, float]:
    """Load model and optimiser state in place from ``directory``; returns ``(step, history, elapsed_s)``.

    ``task_info`` (the task's ``describe()``) and ``train_info`` (:func:`train_info`) must match what the
    checkpoint recorded, or an :class:`~lamina.errors.InputError` asks for a new directory.
    """
    from lamina._io import load_checkpoint

    directory = Path(directory)
    where = directory / STATE_DIR
    if not where.exists():
        return _load_legacy(directory, model, opt, task_info)
    tensors, doc = load_checkpoint(where, kind=KIND)
    _same_architecture(config_from_doc(doc, where), model, directory)
    meta = doc.get("metadata", {})
    _same_run(meta, task_info, train_info, directory)
    try:
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict({k: v.to(model.dtype) for k, v in model_state.items()}, strict=True)
        state: dict[int, dict] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, idx, key = name.split(".", 2)
                state.setdefault(int(idx), {})[key] = value
        for name, value in meta["optimizer"]["plain"].items():
            idx, key = name.split(".", 1)
            state.setdefault(int(idx), {})[key] = value
        opt.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
        return int(meta["step"]), list(meta.get("history", [])), float(meta.get("elapsed_s", 0.0))
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint: {where} does not fit this model and optimiser ({exc})") from None


def _load_legacy(directory: Path, model, opt: torch.optim.Optimizer, task_info: dict | None) -> tuple[int, list, float]:
    """The layout of earlier versions: ``model/`` (a lamina checkpoint) and ``optimizer.pt`` (torch.save)."""
    from lamina.seq.model import load_model

    loaded, meta = load_model(directory / "model")
    _same_architecture(loaded.config, model, directory)
    _same_run(meta, task_info, None, directory)
    try:
        saved = torch.load(directory / "optimizer.pt", weights_only=True, map_location="cpu")
    except Exception as exc:  # damaged bytes fail anywhere in the unpickler (IndexError, EOFError, ...)
        raise CheckpointError(f"checkpoint: cannot resume from {directory / 'optimizer.pt'} "
                              f"({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict({k: v.to(model.dtype) for k, v in loaded.state_dict().items()}, strict=True)
        opt.load_state_dict(saved["optimizer"])
        return int(saved["step"]), list(meta.get("history", [])), float(meta.get("elapsed_s", 0.0))
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"checkpoint: cannot resume from {directory / 'optimizer.pt'} ({exc})") from None
