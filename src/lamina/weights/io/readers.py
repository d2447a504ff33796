"""One reader of model files: whatever the format, a model is a mapping of tensor names to arrays.

Formats (:func:`model_format` tells which one a path is):

==================  ==========================================================================================
``safetensors``     a ``.safetensors`` file (lamina's zoos write these)
``torch``           a PyTorch state dict (``.pt``, ``.pth``, ``.bin``), read with ``torch.load(weights_only=True)``
                    (a dict of tensors, or one under ``"state_dict"`` / ``"model"``); nothing is unpickled beyond
                    tensors and plain containers
``hf-folder``       a Hugging Face model folder: ``config.json`` and ``model.safetensors``, or shards listed by
                    ``model.safetensors.index.json`` (also ``pytorch_model.bin`` and its index)
``peft-adapter``    a PEFT LoRA adapter folder: ``adapter_config.json`` and ``adapter_model.safetensors`` (or
                    ``.bin``)
==================  ==========================================================================================

Names are normalised to lamina's convention, so that a model routes to its tree whichever library wrote it:
PEFT's prefix ``base_model.model.`` is dropped, a LoRA pair ``NAME.lora_A.weight`` / ``NAME.lora_B.weight`` becomes
``NAME.lora_A`` / ``NAME.lora_B`` with the adapter's scaling folded into B (``lora_alpha / r``, or
``lora_alpha / sqrt(r)`` with ``use_rslora``; per-module ``rank_pattern`` / ``alpha_pattern`` as PEFT matches them),
and ``modules_to_save`` copies keep their module's name. Tensors come back as float32 NumPy arrays.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lamina.errors import CheckpointError, InputError

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
FILE_SUFFIXES = (".safetensors", *TORCH_SUFFIXES)
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
PEFT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_PREFIX = "base_model.model."
FORMATS = ("safetensors", "torch", "hf-folder", "peft-adapter")

Wanted = Callable[[str], bool] | None
"""A filter on normalised tensor names (None: every tensor)."""


def model_format(path: str | os.PathLike) -> str:
    """Which of :data:`FORMATS` ``path`` is.

    Raises:
        CheckpointError: the path does not exist, or is a file or folder of no known model format (the message
            says what each format needs).
    """
    path = Path(path)
    if path.is_dir():
        if (path / "adapter_config.json").is_file() and any((path / w).is_file() for w in PEFT_WEIGHTS):
            return "peft-adapter"
        if any((path / w).is_file() for w in HF_WEIGHTS):
            return "hf-folder"
        raise CheckpointError(
            f"{path}: a folder, but not a model folder (a Hugging Face folder holds {' or '.join(HF_WEIGHTS[:2])}; "
            f"a PEFT adapter folder adapter_config.json and {PEFT_WEIGHTS[0]})")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file or folder")
    if path.suffix == ".safetensors":
        return "safetensors"
    if path.suffix in TORCH_SUFFIXES:
        return "torch"
    raise CheckpointError(f"{path}: unknown model file type {path.suffix!r} (expected one of "
                          f"{', '.join(FILE_SUFFIXES)}, or a model folder)")


def is_model_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a model file or model folder of a known format."""
    try:
        model_format(path)
    except CheckpointError:
        return False
    return True


def find_models(folder: str | os.PathLike) -> list[Path]:
    """Every model under ``folder``, sorted: model files, and model folders counted once (not their files).

    A folder that is a model (Hugging Face or PEFT) is one entry; files inside it (shards, tokenizer, config) are
    not listed separately. Hidden files and folders (names starting with ``.``) are skipped.
    """
    folder = Path(folder)
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(root)
        if here != folder and is_model_path(here):
            found.append(here)
            dirs[:] = []
            continue
        if here == folder and is_model_path(here):
            return [here]
        found += [here / f for f in sorted(files) if not f.startswith(".") and Path(f).suffix in FILE_SUFFIXES
                  and not _is_shard(here / f)]
    return sorted(found)


def _is_shard(path: Path) -> bool:
    """A shard of a sharded checkpoint (``model-00001-of-00002.safetensors``): part of its folder's model."""
    return re.fullmatch(r".*-\d{5}-of-\d{5}\.(safetensors|bin)", path.name) is not None


# readers of the containers -------------------------------------------------------------------------------------


def _safetensors(path: Path, wanted: Wanted, rename: Callable[[str], str] = lambda k: k) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            return {rename(k): fh.get_tensor(k) for k in fh.keys() if wanted is None or wanted(rename(k))}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        if "bfloat16" in str(exc) or "bf16" in str(exc).lower():  # NumPy has no bfloat16: read through torch
            return _safetensors_torch(path, wanted, rename)
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _safetensors_torch(path: Path, wanted: Wanted, rename) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {rename(k): fh.get_tensor(k).float().numpy() for k in fh.keys() if wanted is None or wanted(rename(k))}


def _torch(path: Path, wanted: Wanted, rename: Callable[[str], str] = lambda k: k) -> dict[str, np.ndarray]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign or damaged file
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch state dict ({reason})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state dict (a mapping of names to tensors)")
    out = {}
    for k, v in obj.items():
        if isinstance(v, torch.Tensor) and (wanted is None or wanted(rename(str(k)))):
            out[rename(str(k))] = v.detach().to(torch.float32).numpy()
    return out


def _read_file(path: Path, wanted: Wanted, rename=lambda k: k) -> dict[str, np.ndarray]:
    return _safetensors(path, wanted, rename) if path.suffix == ".safetensors" else _torch(path, wanted, rename)


def _hf_folder(path: Path, wanted: Wanted) -> dict[str, np.ndarray]:
    for name in HF_WEIGHTS:
        f = path / name
        if not f.is_file():
            continue
        if not name.endswith(".index.json"):
            return _read_file(f, wanted)
        try:
            weight_map = json.loads(f.read_text())["weight_map"]
            if not isinstance(weight_map, dict):
                raise TypeError("weight_map is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{f}: not a readable shard index ({exc})") from None
        shards = sorted({str(s) for k, s in weight_map.items() if wanted is None or wanted(k)})
        out: dict[str, np.ndarray] = {}
        for s in shards:
            shard = (path / s).resolve()
            if path.resolve() not in shard.parents or not shard.is_file():
                raise CheckpointError(f"{f}: shard {s!r} is missing (or lies outside the folder)")
            out.update(_read_file(shard, wanted))
        return out
    raise CheckpointError(f"{path}: no weights file ({', '.join(HF_WEIGHTS)})")


# PEFT ----------------------------------------------------------------------------------------------------------


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's per-module override: the first pattern that matches the end of the module's name."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _peft_config(path: Path) -> dict:
    f = path / "adapter_config.json"
    try:
        cfg = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{f}: not readable JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{f}: expected a JSON object")
    kind = cfg.get("peft_type", "LORA")
    if kind != "LORA":
        raise InputError(f"{f}: peft_type {kind!r}; lamina reads LoRA adapters only")
    if cfg.get("use_dora"):
        raise InputError(f"{f}: a DoRA adapter (use_dora); its weights are not B @ A, lamina reads plain LoRA only")
    for key in ("r", "lora_alpha"):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise CheckpointError(f"{f}: {key} must be a positive number, got {v!r}")
    return cfg


_LORA_KEY = re.compile(r"\.lora_([AB])(\.[^.]+)?\.weight$")
_SAVED_MODULE = re.compile(r"\.modules_to_save(\.[^.]+)?\.")


def peft_name(key: str) -> str:
    """A PEFT adapter's tensor name in lamina's convention (no ``base_model.model.``, ``NAME.lora_A`` / ``_B``)."""
    k = key.removeprefix(PEFT_PREFIX)
    m = _LORA_KEY.search(k)  # with or without the adapter's name
    if m:
        k = f"{k[: m.start()]}.lora_{m.group(1)}"
    return _SAVED_MODULE.sub(".", k)


def _peft_adapter(path: Path, wanted: Wanted) -> dict[str, np.ndarray]:
    cfg = _peft_config(path)
    f = next(path / w for w in PEFT_WEIGHTS if (path / w).is_file())
    # a LoRA half is needed whenever its pair is (the scale needs A's rank)
    pair = (lambda k: wanted(k) or wanted(_partner(k))) if wanted is not None else None
    state = _read_file(f, pair, rename=peft_name)
    for k in [k for k in state if k.endswith(".lora_B")]:
        module = k.removesuffix(".lora_B")
        a = state.get(module + ".lora_A")
        if a is None:
            raise CheckpointError(f"{f}: {module} has lora_B but no lora_A")
        rank = a.shape[0]
        alpha = float(_pattern_value(cfg.get("alpha_pattern"), module, cfg["lora_alpha"]))
        scale = alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank
        state[k] = (state[k] * np.float32(scale)).astype(np.float32)
    if wanted is not None:
        state = {k: v for k, v in state.items() if wanted(k)}
    return state


def _partner(key: str) -> str:
    if key.endswith(".lora_A"):
        return key[:-1] + "B"
    if key.endswith(".lora_B"):
        return key[:-1] + "A"
    return key


# the public reader ---------------------------------------------------------------------------------------------


def read_model(path: str | os.PathLike, wanted: Wanted = None) -> dict[str, np.ndarray]:
    """The tensors of a model file or folder, by normalised name, as float32 arrays.

    Args:
        path: a file or folder of one of :data:`FORMATS`.
        wanted: a filter on normalised names: only those tensors are read (a LoRA pair is read whole).

    Raises:
        CheckpointError: missing, unreadable or of no known format (the message names the path).
        InputError: a PEFT adapter lamina does not read (not LoRA, or DoRA).
    """
    path = Path(path)
    fmt = model_format(path)
    if fmt == "safetensors":
        state = _safetensors(path, wanted)
    elif fmt == "torch":
        state = _torch(path, wanted)
    elif fmt == "hf-folder":
        state = _hf_folder(path, wanted)
    else:
        state = _peft_adapter(path, wanted)
    return {k: (v if v.dtype == np.float32 else np.asarray(v, dtype=np.float32)) for k, v in state.items()}


def model_name(path: str | os.PathLike) -> str:
    """A short name for a model path: a file's name without its suffix, a folder's name."""
    p = Path(path)
    return p.name if p.is_dir() else p.name.removesuffix(p.suffix)


def model_digest(path: str | os.PathLike) -> str:
    """sha256 of a model: of the file's bytes, or for a model folder of the sorted list of its files' relative
    names and sha256 (hidden files left out), so that changing, adding or removing any file changes it."""
    import hashlib

    from lamina._io import sha256_file

    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not any(x.startswith(".") for x in
                                                                          p.relative_to(path).parts)):
        h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()
