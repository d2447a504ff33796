"""Fine-tuning the climate encoder on labelled points: a one-layer head on the embedding, and optionally the
encoder's last layers (``train="last"``) or all of it (``train="all"``) trained with the head.

    from lamina.geo.finetune import finetune, FineTunedEncoder
    model = finetune("sites.parquet", target="biome", train="last")          # a table with lon / lat columns
    model.predict(lon=[8.55], lat=[47.37])                                  # (1,) labels
    model.save("biome-encoder")          # lamina.geo.load("biome-encoder") is the fine-tuned encoder
    FineTunedEncoder.load("biome-encoder").predict_proba(lon=[8.55], lat=[47.37])    # (1, K)

Validation: whole spatial blocks of ``block_deg`` degrees (:class:`~lamina.geo.eval.splits.SpatialBlockSplit`)
until ``val_fraction`` of the points. The head starts as the cross-validated linear probe of ``lamina geo
evaluate`` fitted on the training blocks (``head_init="probe"``, :mod:`lamina.geo.finetune_probe`) or as a zero
head (``head_init="zero"``); training stops when the validation loss has not improved for ``patience`` epochs and
the best weights, the starting head included, are restored (:mod:`lamina.geo.finetune_loop`). The validation
metrics of the saved model are recorded in its provenance. Classification: cross-entropy over the classes found in
the data (labels kept as they are); regression: MSE on standardised targets (one column or several).
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from lamina._process import torch_seed, torch_threads
from lamina._validation import check_choice, check_lon_lat, check_positive_int, check_real, check_seed
from lamina.errors import InputError
from lamina.geo.finetune_model import FineTunedEncoder, Head
from lamina.geo.finetune_target import KINDS, Target, prepare_target

TRAIN_MODES = {
    "head": "encoder frozen; only the head is trained (a linear probe, refined by gradient descent)",
    "last": "the head, then the encoder's last sine layer and linear embedding layer with it",
    "all": "the head, then every weight of the encoder's network with it",
}
HEAD_INITS = {
    "probe": "the cross-validated linear probe of lamina geo evaluate, fitted on the training blocks",
    "zero": "a zero head (uniform classes, the mean target), trained from scratch",
}
MIN_ROWS, MAX_ROWS = 20, 1_000_000
__all__ = ["HEAD_INITS", "KINDS", "TRAIN_MODES", "FineTuneConfig", "FineTunedEncoder", "finetune"]


@dataclass
class FineTuneConfig:
    """Settings of a fine-tuning (saved in its provenance).

    Attributes:
        train: ``"head"``, ``"last"`` or ``"all"`` (:data:`TRAIN_MODES`).
        head_init: where the head starts (:data:`HEAD_INITS`): ``"zero"`` (default) or ``"probe"`` (the
            cross-validated linear probe of ``geo evaluate`` fitted on the training blocks; epoch 0, kept when no
            later epoch has a lower validation loss).
        month: the month whose embedding the head reads (1..12), or None (months 3, 6, 9, 12 concatenated).
        epochs: maximum epochs of each stage (head, then encoder). patience: epochs without improvement.
        lr: AdamW learning rate of the head. encoder_lr: of the encoder (None: ``lr / 10``).
        batch_size: points per step. weight_decay: AdamW decay of the head (the encoder gets none).
        block_deg: cell size (degrees) of the spatial-block validation split. val_fraction: its share of points.
        seed: seed of the split, the batch order and anything random. grad_clip: global gradient-norm limit.
    """

    train: str = "head"
    head_init: str = "zero"  # measured: see docs/geo.md, "Fine-tuning the encoder"
    month: int | None = None
    epochs: int = 50
    lr: float = 1e-3
    encoder_lr: float | None = None
    batch_size: int = 256
    weight_decay: float = 1e-4
    patience: int = 8
    block_deg: float = 10.0
    val_fraction: float = 0.2
    seed: int = 0
    grad_clip: float | None = 1.0

    def __post_init__(self):
        check_choice("train", self.train, TRAIN_MODES)
        check_choice("head_init", self.head_init, HEAD_INITS)
        if self.month is not None and (isinstance(self.month, bool) or not isinstance(self.month, int | np.integer)
                                       or not 1 <= self.month <= 12):
            raise InputError(f"month: expected None or an integer 1..12, got {self.month!r}")
        self.epochs = _bounded_int("epochs", self.epochs, 1, 100_000)
        self.patience = _bounded_int("patience", self.patience, 1, 100_000)
        self.batch_size = _bounded_int("batch_size", self.batch_size, 1, MAX_ROWS)
        self.lr = check_real("lr", self.lr, low=0.0, low_open=True, high=1.0)
        self.encoder_lr = check_real("encoder_lr", self.encoder_lr, low=0.0, low_open=True, high=1.0,
                                     allow_none=True)
        self.weight_decay = check_real("weight_decay", self.weight_decay, low=0.0, high=10.0)
        self.block_deg = check_real("block_deg", self.block_deg, low=0.0, low_open=True, high=180.0)
        self.val_fraction = check_real("val_fraction", self.val_fraction, low=0.0, low_open=True, high=0.5)
        self.seed = check_seed("seed", self.seed)
        self.grad_clip = check_real("grad_clip", self.grad_clip, low=0.0, low_open=True, allow_none=True)
        self.month = None if self.month is None else int(self.month)

    @property
    def encoder_lr_value(self) -> float:
        return self.lr / 10 if self.encoder_lr is None else self.encoder_lr

    def to_dict(self) -> dict:
        return {**asdict(self), "encoder_lr_used": self.encoder_lr_value}

    @classmethod
    def from_dict(cls, d: dict) -> FineTuneConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _bounded_int(name: str, value, low: int, high: int) -> int:
    value = check_positive_int(name, value, minimum=low)
    if value > high:
        raise InputError(f"{name}: expected an integer in [{low}, {high}], got {value}")
    return value


def finetune(data=None, *, target=None, lon=None, lat=None, y=None, lon_col: str = "lon", lat_col: str = "lat",
             kind: str = "auto", checkpoint=None, wrap_lon: bool = False, threads: int | None = None,
             progress: bool = True, config: FineTuneConfig | None = None, **settings) -> FineTunedEncoder:
    """Fine-tune a climate encoder with a one-layer head on labelled points.

    Args:
        data: a points table (path to CSV / Parquet / GeoParquet / GeoPackage, or a pandas / GeoPandas frame:
            see :func:`lamina.geo.tables.read_point_table`); or None with ``lon``, ``lat`` and ``y``.
        target: the target column name (classification or regression), or a list of names (regression on
            several columns); with arrays, optional names of ``y``'s columns.
        lon: (N,) degrees east in [-180, 180]. lat: (N,) degrees north in [-90, 90]. y: (N,) labels or values,
            or (N, T) values.
        lon_col, lat_col: coordinate columns of a table without a geometry column.
        kind: ``"auto"``, ``"classification"`` or ``"regression"`` (see :func:`~lamina.geo.finetune_target.
            prepare_target` for what ``"auto"`` decides).
        checkpoint: the parent encoder: None (bundled default), ``"bundled:NAME"``, a checkpoint folder (a
            fine-tuned folder too), or a :class:`~lamina.geo.encoder.ClimateEncoder` (copied, not changed).
        wrap_lon: wrap longitudes into [-180, 180) instead of refusing them.
        threads: torch threads for the call (restored afterwards); None keeps the current count.
        progress: show a progress bar.
        config: a :class:`FineTuneConfig`; or its fields as keywords (``train="last"``, ``epochs=20``, ...).

    Returns:
        The fitted :class:`~lamina.geo.finetune_model.FineTunedEncoder` (best validation weights), whose
        ``provenance`` records the parent, the data, the settings and the validation metrics.

    Raises:
        InputError: invalid settings, coordinates or targets (missing values, one class only, a constant target),
            too few or too many rows, a table without the columns, data covering fewer than two spatial blocks.
        CheckpointError: an unreadable parent checkpoint.
    """
    cfg = _config(config, settings)
    if threads is not None:
        threads = check_positive_int("threads", threads)
    check_choice("kind", kind, KINDS)
    t0 = time.perf_counter()
    lon, lat, columns, source = _read_inputs(data, target, lon, lat, y, lon_col, lat_col)
    lon, lat = check_lon_lat(lon, lat, wrap=wrap_lon)
    n = _check_rows(lon)
    tgt = prepare_target(columns, kind, n=n)
    if "sha256" not in source:  # not from a file: the digest of the values as used
        source["sha256"] = _values_sha256(lon, lat, tgt)
        source["sha256_of"] = "lon, lat (float64 degrees) and the target as used (class indices and labels, or values)"
    parent, parent_info = _parent(checkpoint)
    train_idx, val_idx, split, blocks = _split(lon, lat, cfg)
    with torch_threads(threads), torch_seed(cfg.seed):
        model, loop, init = _fit(parent, lon, lat, tgt, train_idx, val_idx, blocks, cfg, progress)
        metrics = _validation_metrics(model, lon[val_idx], lat[val_idx], tgt, val_idx)
    metrics["loss"] = loop.best_loss
    from lamina import __version__

    model.encoder.metadata = {
        "finetune": {
            "what": "climate encoder fine-tuned with a one-layer head (lamina.geo.finetune)",
            "lamina_version": __version__,
            "train": cfg.train,
            "train_description": TRAIN_MODES[cfg.train],
            "data": {**source, "rows_used": n, "target": tgt.names},
            "task": tgt.describe(),
            "settings": cfg.to_dict(),
            "head_init": init,
            "seed": cfg.seed,
            "split": split,
            "validation": {"metrics": metrics, "best_stage": loop.best_stage, "best_epoch": loop.best_epoch,
                           "epochs_run": loop.epochs_run, "stopped": loop.stopped},
            "history": loop.history,
            "seconds": round(time.perf_counter() - t0, 3),
            "reconstruction_head": "inherited from the parent and not trained: reconstruct() of an encoder "
                                   "fine-tuned with train='last' or 'all' no longer matches its embedding",
        },
        "parent": parent_info,
    }
    return model


def _config(config: FineTuneConfig | None, settings: dict) -> FineTuneConfig:
    if config is not None and not isinstance(config, FineTuneConfig):
        raise InputError(f"config: expected a FineTuneConfig, got {type(config).__name__}")
    unknown = sorted(set(settings) - set(FineTuneConfig.__dataclass_fields__))
    if unknown:
        raise InputError(f"finetune: unknown setting {unknown[0]!r}; settings are "
                         f"{', '.join(FineTuneConfig.__dataclass_fields__)}")
    if config is None:
        return FineTuneConfig(**settings)
    return FineTuneConfig(**{**asdict(config), **settings})


def _read_inputs(data, target, lon, lat, y, lon_col, lat_col):
    """(lon, lat, {target name: values}, source description) from a table or from arrays."""
    if data is not None:
        if lon is not None or lat is not None or y is not None:
            raise InputError("finetune: give a table (data) or arrays (lon, lat, y), not both")
        names = _target_names(target, required=True)
        from lamina.geo.tables import read_point_table

        table = read_point_table(data, columns=names, lon_col=lon_col, lat_col=lat_col, max_rows=MAX_ROWS)
        return table.lon, table.lat, table.columns, dict(table.source)
    if lon is None or lat is None or y is None:
        raise InputError("finetune: give a points table (data=...) or the arrays lon=, lat= and y=")
    values = np.asarray(y) if not hasattr(y, "iloc") else y.to_numpy()
    if values.ndim not in (1, 2):
        raise InputError(f"y: expected shape (N,) or (N, T), got {values.shape}")
    cols = [values] if values.ndim == 1 else [values[:, j] for j in range(values.shape[1])]
    names = _target_names(target, required=False) or (["y"] if len(cols) == 1 else [f"y{j}" for j in range(len(cols))])
    if len(names) != len(cols):
        raise InputError(f"target: {len(names)} names for {len(cols)} columns of y")
    return lon, lat, dict(zip(names, cols, strict=True)), {"source": "arrays"}


def _target_names(target, *, required: bool) -> list[str]:
    if target is None:
        if required:
            raise InputError("target: give the name of the target column (--target)")
        return []
    names = [target] if isinstance(target, str) else list(target) if isinstance(target, list | tuple) else None
    if not names or not all(isinstance(t, str) and t for t in names):
        raise InputError(f"target: expected a column name or a list of column names, got {target!r}")
    if len(set(names)) != len(names):
        raise InputError(f"target: the column names repeat: {names}")
    return names


def _check_rows(lon: np.ndarray) -> int:
    n = int(lon.size)
    if n < MIN_ROWS:
        raise InputError(f"data: {n} rows; fine-tuning needs at least {MIN_ROWS} (training and validation points)")
    if n > MAX_ROWS:
        raise InputError(f"data: {n:,} rows; at most {MAX_ROWS:,} (use a random subset)")
    return n


def _values_sha256(lon: np.ndarray, lat: np.ndarray, tgt: Target) -> str:
    """sha256 of the coordinates and targets as used (for data that did not come from a file)."""
    h = hashlib.sha256()
    for arr in (lon, lat, np.ascontiguousarray(tgt.values)):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(repr(tgt.labels).encode())
    return h.hexdigest()


def _parent(checkpoint):
    """The parent encoder (a private copy) and its record: reference, sha256 and its own provenance."""
    from lamina._io import read_checkpoint_config
    from lamina.geo.encoder import KIND, ClimateEncoder, resolve_checkpoint
    from lamina.geo.raster import weights_sha256

    if isinstance(checkpoint, ClimateEncoder):
        enc = copy.deepcopy(checkpoint)
        info = {"checkpoint": "a ClimateEncoder object (in memory)", "sha256": weights_sha256(enc),
                "content_sha256": None, "lamina_version": None}
    else:
        path = resolve_checkpoint(checkpoint)
        enc = ClimateEncoder.from_checkpoint(path)
        doc = read_checkpoint_config(path, kind=KIND)
        text = None if checkpoint is None else os.fspath(checkpoint)
        ref = "bundled:default" if text is None else text if text.startswith("bundled:") else str(path.resolve())
        info = {"checkpoint": ref, "sha256": doc["sha256"], "content_sha256": doc.get("content_sha256"),
                "lamina_version": doc.get("lamina_version")}
        if weights_sha256(enc) != doc["sha256"]:
            from lamina.errors import CheckpointError

            raise CheckpointError(f"checkpoint: {path} changed while it was read; try again")
    own = {k: v for k, v in enc.metadata.items() if k not in ("variables", "normalisation", "input_contract")}
    return enc, {**info, "provenance": own}


def _split(lon, lat, cfg: FineTuneConfig):
    from lamina.geo.eval.splits import SpatialBlockSplit

    splitter = SpatialBlockSplit(cfg.block_deg, n_folds=1, test_fraction=cfg.val_fraction, random_state=cfg.seed)
    X = np.column_stack([lon, lat])
    n_blocks = len(np.unique(splitter.blocks(X)))
    if n_blocks < 2:
        raise InputError(f"block_deg: all {len(lon)} points lie in one {cfg.block_deg:g}-degree block, so no block "
                         "can be held out for validation; give a smaller block_deg (--block-deg)")
    train_idx, val_idx = next(splitter.split(X))
    blocks = splitter.blocks(X)  # (N,) the same cells as the split: the groups of the probe's inner CV
    share = len(val_idx) / len(lon)
    if share > max(0.5, 2 * cfg.val_fraction) or len(train_idx) < MIN_ROWS // 2:
        raise InputError(f"block_deg: the points cover only {n_blocks} blocks of {cfg.block_deg:g} degrees and the "
                         f"smallest validation side holds {share:.0%} of them; give a smaller block_deg "
                         "(--block-deg)")
    info = {"kind": "spatial blocks (lamina.geo.eval.splits.SpatialBlockSplit)", "block_deg": cfg.block_deg,
            "val_fraction": cfg.val_fraction, "seed": cfg.seed, "n_blocks": n_blocks,
            "n_train": len(train_idx), "n_val": len(val_idx)}
    return train_idx, val_idx, info, blocks


def _fit(parent, lon, lat, tgt: Target, train_idx, val_idx, blocks, cfg: FineTuneConfig, progress: bool):
    """(model, loop result, record of the head's start): the head starts as ``cfg.head_init`` says, then
    :func:`lamina.geo.finetune_loop.run` trains it (and the encoder) with early stopping."""
    import torch

    from lamina.geo.encoder import ClimateEncoder
    from lamina.geo.finetune_loop import embed_points, run
    from lamina.geo.location_encoder import LocationEncoder

    loc = LocationEncoder(parent, month=cfg.month)
    lonlat = torch.from_numpy(np.column_stack([lon, lat]).astype(np.float32))  # (N, 2) degrees
    feats = embed_points(loc, lonlat)  # (N, D) of the parent encoder
    train_feats = feats[torch.from_numpy(train_idx)]
    std = train_feats.std(dim=0)
    head = Head(train_feats.mean(dim=0), torch.where(std > 1e-6, std, torch.ones_like(std)), tgt.n_outputs)
    init = {"kind": cfg.head_init, "description": HEAD_INITS[cfg.head_init]}
    if cfg.head_init == "probe":
        from lamina.geo.finetune_probe import probe_head

        init.update(probe_head(head, train_feats.numpy(), tgt.values[train_idx], tgt, blocks[train_idx],
                               seed=cfg.seed))
    if tgt.kind == "classification":
        target, loss_fn = torch.from_numpy(tgt.values.astype(np.int64)), torch.nn.CrossEntropyLoss()
    else:
        z = (tgt.values - tgt.mean) / tgt.std
        target, loss_fn = torch.from_numpy(z.astype(np.float32)), torch.nn.MSELoss()
    loop = run(loc, head, lonlat, target, train_idx, val_idx, loss_fn=loss_fn, cfg=cfg, features=feats,
               progress=progress)
    init["train_loss"], init["val_loss"] = loop.history[0]["train_loss"], loop.history[0]["val_loss"]  # epoch 0
    encoder = ClimateEncoder(parent.module, parent.variables, parent.mean, parent.std, {})
    model = FineTunedEncoder(encoder, head, kind=tgt.kind, labels=tgt.labels, month=cfg.month,
                             target_mean=tgt.mean, target_std=tgt.std, train=cfg.train)
    return model, loop, init


def _validation_metrics(model: FineTunedEncoder, lon, lat, tgt: Target, val_idx) -> dict:
    """Metrics of the returned model (its own prediction path) on the validation points."""
    from lamina.probe import classification_metrics, regression_metrics

    if tgt.kind == "regression":
        y = tgt.values[val_idx]
        out = regression_metrics(y, model.predict(lon=lon, lat=lat).reshape(y.shape), target_names=tgt.names)
        out["metric"] = "r2_mean"
        return out
    proba = model.predict_proba(lon=lon, lat=lat)
    y = tgt.values[val_idx]
    k = len(tgt.labels)
    out = classification_metrics(y, np.argmax(proba, axis=1), proba, classes=np.arange(k))
    out["metric"] = "roc_auc" if k == 2 else "f1_macro"
    return out
