"""A fine-tuned climate encoder: the encoder, a one-layer head on its embedding, and their provenance.

:class:`FineTunedEncoder` is what :func:`lamina.geo.finetune.finetune` returns. Saved, it is one folder::

    DIR/config.json, DIR/model.safetensors        the fine-tuned encoder: lamina.geo.load(DIR), --checkpoint DIR
    DIR/head/config.json, DIR/head/model.safetensors   the head (kind geo.FineTunedHead)
    DIR/finetune.json                             provenance; links the two by the sha256 of their weights

The encoder's ``config.json`` records the fine-tuning's own provenance under ``metadata["finetune"]`` (training
data and its sha256, target, settings, seed, validation metrics) and the parent checkpoint (its sha256, name and
its own provenance, e.g. its pretraining run) under ``metadata["parent"]`` only. The folder is written complete
into a temporary sibling and renamed; loading checks every digest and the links between the parts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lamina._io import atomic_dir, dumps_json, load_checkpoint, write_checkpoint_files
from lamina._validation import check_lon_lat
from lamina.errors import CheckpointError, InputError
from lamina.geo.encoder import KIND as ENCODER_KIND
from lamina.geo.encoder import ClimateEncoder

HEAD_KIND = "geo.FineTunedHead"
HEAD_DIR = "head"
PROVENANCE_FILE = "finetune.json"
FORMAT = "lamina-finetuned-encoder"
FORMAT_VERSION = 1
PREDICT_CHUNK = 65_536  # points embedded at once by predict (bounds memory: 64 Ki x 1024 x 4 bytes = 256 MiB)


class Head(nn.Module):
    """Fixed standardisation of the embedding, then one linear layer.

    Shapes:
        ``forward(features: (B, dim_in)) -> (B, n_outputs)``: class logits, or z-scored regression targets.
    """

    def __init__(self, feature_mean, feature_std, n_outputs: int):
        super().__init__()
        mean = torch.as_tensor(np.asarray(feature_mean), dtype=torch.float32)
        std = torch.as_tensor(np.asarray(feature_std), dtype=torch.float32)
        self.register_buffer("feature_mean", mean)  # (dim_in,) from the parent's embedding of the training points
        self.register_buffer("feature_std", std)
        self.linear = nn.Linear(mean.numel(), int(n_outputs))
        with torch.no_grad():  # a zero head starts at the prior (uniform classes, the mean target)
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.feature_mean) / self.feature_std)  # (B, n_outputs)

    @torch.no_grad()
    def set_affine(self, weight, bias) -> None:
        """Make the head compute ``features @ weight.T + bias`` on the raw features (e.g. a fitted linear probe).

        The head's own standardisation is folded in, ``linear.weight = weight * feature_std`` and ``linear.bias =
        bias + weight @ feature_mean``, computed in float64 and stored in float32.

        Args:
            weight: (n_outputs, dim_in) on the raw features. bias: (n_outputs,).
        """
        w = np.asarray(weight, dtype=np.float64)
        b = np.asarray(bias, dtype=np.float64)
        if w.shape != tuple(self.linear.weight.shape) or b.shape != (w.shape[0],):
            raise InputError(f"weight, bias: expected shapes {tuple(self.linear.weight.shape)} and "
                             f"({self.linear.out_features},), got {w.shape} and {b.shape}")
        mean = self.feature_mean.double().numpy()
        std = self.feature_std.double().numpy()
        self.linear.weight.copy_(torch.from_numpy(w * std[None, :]))
        self.linear.bias.copy_(torch.from_numpy(b + w @ mean))


class FineTunedEncoder:
    """A climate encoder fine-tuned with a one-layer head for one target (classification or regression).

    Args:
        encoder: the fine-tuned :class:`~lamina.geo.encoder.ClimateEncoder` (its metadata holds the provenance).
        head: the :class:`Head` on its embedding.
        kind: ``"classification"`` or ``"regression"``.
        labels: the class labels (classification, in the order of the head's outputs) or the target names.
        month: the month whose embedding the head reads (1..12), or None (months 3, 6, 9, 12 concatenated).
        target_mean, target_std: (T,) standardisation of regression targets, in their units.
        train: what was trained: ``"head"``, ``"last"`` or ``"all"``.
    """

    def __init__(self, encoder: ClimateEncoder, head: Head, *, kind: str, labels, month: int | None = None,
                 target_mean=None, target_std=None, train: str = "head"):
        self.encoder, self.head = encoder, head.eval()
        self.kind, self.labels, self.month, self.train = kind, list(labels), month, train
        self.target_mean = None if target_mean is None else np.asarray(target_mean, dtype=np.float64)
        self.target_std = None if target_std is None else np.asarray(target_std, dtype=np.float64)

    def __repr__(self) -> str:
        what = f"{len(self.labels)} classes" if self.kind == "classification" else f"targets {self.labels}"
        return f"FineTunedEncoder({self.kind}, {what}, train={self.train!r}, {self.encoder!r})"

    @property
    def provenance(self) -> dict:
        """``{"finetune": this fine-tuning's record, "parent": the parent checkpoint and its own provenance}``."""
        return {k: self.encoder.metadata.get(k) for k in ("finetune", "parent")}

    @property
    def classes_(self) -> np.ndarray:
        """(K,) class labels, the columns of :meth:`predict_proba` (classification only)."""
        if self.kind != "classification":
            raise InputError("classes_: a regression model has no classes (see .labels for its target names)")
        return np.asarray(self.labels)

    def embed(self, *, lon, lat, month=None, wrap_lon: bool = False) -> np.ndarray:
        """Embeddings of the fine-tuned encoder: see :meth:`ClimateEncoder.embed`."""
        return self.encoder.embed(lon=lon, lat=lat, month=month, wrap_lon=wrap_lon)

    def decision(self, *, lon, lat, wrap_lon: bool = False) -> np.ndarray:
        """Head outputs: ``lon`` (N,) degrees east, ``lat`` (N,) degrees north -> (N, K) logits or (N, T) z-scores."""
        lon, lat = check_lon_lat(lon, lat, wrap=wrap_lon)
        out = np.empty((lon.size, self.head.linear.out_features), dtype=np.float64)
        with torch.inference_mode():
            for s in range(0, lon.size, PREDICT_CHUNK):
                feats = self.encoder.embed(lon=lon[s : s + PREDICT_CHUNK], lat=lat[s : s + PREDICT_CHUNK],
                                           month=self.month)  # (n, dim_in)
                out[s : s + len(feats)] = self.head(torch.from_numpy(feats)).double().numpy()
        return out

    def predict_proba(self, *, lon, lat, wrap_lon: bool = False) -> np.ndarray:
        """(N,) degrees, (N,) degrees -> (N, K) float64 class probabilities, columns ordered as :attr:`classes_`."""
        from scipy.special import softmax

        self.classes_  # noqa: B018 - refuses a regression model
        return softmax(self.decision(lon=lon, lat=lat, wrap_lon=wrap_lon), axis=1)

    def predict(self, *, lon, lat, wrap_lon: bool = False) -> np.ndarray:
        """(N,) degrees, (N,) degrees -> (N,) class labels, or regression targets in their units: (N,) for one
        target, (N, T) for several."""
        z = self.decision(lon=lon, lat=lat, wrap_lon=wrap_lon)
        if self.kind == "classification":
            return self.classes_[np.argmax(z, axis=1)]
        y = z * self.target_std + self.target_mean
        return y[:, 0] if y.shape[1] == 1 else y

    def predict_frame(self, *, lon, lat, wrap_lon: bool = False):
        """Predictions as a pandas DataFrame: ``lon``, ``lat`` and ``label`` plus one ``p_<class>`` column per
        class (classification), or one column per target (regression); the layout of ``lamina geo
        probe-predict``."""
        import pandas as pd

        lon, lat = check_lon_lat(lon, lat, wrap=wrap_lon)
        out = {"lon": lon, "lat": lat}
        z = self.decision(lon=lon, lat=lat)
        if self.kind == "classification":
            from scipy.special import softmax

            proba = softmax(z, axis=1)
            out["label"] = self.classes_[np.argmax(proba, axis=1)]
            for j, c in enumerate(self.labels):
                out[f"p_{c}"] = proba[:, j]
        else:
            y = z * self.target_std + self.target_mean
            for j, name in enumerate(self.labels):
                out[str(name)] = y[:, j]
        return pd.DataFrame(out)

    # ------------------------------------------------------------------ persistence
    def _head_config(self) -> dict:
        return {
            "kind": self.kind,
            "labels": self.labels,
            "month": self.month,
            "train": self.train,
            "dim_in": int(self.head.feature_mean.numel()),
            "n_outputs": int(self.head.linear.out_features),
            "target_mean": None if self.target_mean is None else self.target_mean.tolist(),
            "target_std": None if self.target_std is None else self.target_std.tolist(),
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the folder (encoder checkpoint, head, finetune.json) atomically: complete, or not at all.

        An existing folder is replaced only if it is empty or a fine-tuned folder itself (anything else is
        refused rather than deleted).
        """
        directory = Path(directory)
        check_output_folder(directory)
        enc = self.encoder
        with atomic_dir(directory) as tmp:
            enc_doc = write_checkpoint_files(tmp, enc.module.state_dict(), kind=ENCODER_KIND,
                                             config=enc.config.to_dict(),
                                             metadata=enc.checkpoint_metadata(self.provenance))
            (tmp / HEAD_DIR).mkdir()
            head_doc = write_checkpoint_files(tmp / HEAD_DIR, self.head.state_dict(), kind=HEAD_KIND,
                                              config=self._head_config(),
                                              metadata={"encoder_sha256": enc_doc["sha256"]})
            record = {"format": FORMAT, "format_version": FORMAT_VERSION, "encoder_sha256": enc_doc["sha256"],
                      "head_sha256": head_doc["sha256"],
                      "provenance": {k: enc_doc["metadata"].get(k) for k in ("finetune", "parent")}}
            (tmp / PROVENANCE_FILE).write_text(dumps_json(record), encoding="utf-8")  # published with the folder
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> FineTunedEncoder:
        """Load a folder written by :meth:`save`, checking the digests of both parts and the links between them.

        Raises:
            CheckpointError: not a fine-tuned folder, a corrupt or replaced part, parts of different saves.
        """
        from lamina.geo.raster import weights_sha256

        directory = Path(directory)
        doc = read_provenance_file(directory)
        encoder = ClimateEncoder.from_checkpoint(directory)  # checks the weights' sha256 and the config's digest
        tensors, head_doc = load_checkpoint(directory / HEAD_DIR, kind=HEAD_KIND)
        enc_sha = weights_sha256(encoder)
        links = (doc.get("encoder_sha256") == enc_sha, doc.get("head_sha256") == head_doc.get("sha256"),
                 head_doc.get("metadata", {}).get("encoder_sha256") == enc_sha,
                 _canonical(doc.get("provenance")) == _canonical({k: encoder.metadata.get(k)
                                                                 for k in ("finetune", "parent")}))
        if not all(links):
            raise CheckpointError(f"checkpoint: the parts of {directory} do not belong together (the encoder, the "
                                  f"head and {PROVENANCE_FILE} must come from one save); save the model again")
        cfg = head_doc["config"]
        try:
            head = Head(tensors["feature_mean"], tensors["feature_std"], cfg["n_outputs"])
            head.load_state_dict(tensors, strict=True)
            model = cls(encoder, head, kind=cfg["kind"], labels=cfg["labels"], month=cfg["month"],
                        target_mean=cfg["target_mean"], target_std=cfg["target_std"], train=cfg["train"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint: {directory / HEAD_DIR} is not a valid head ({exc})") from None
        n_months = 4 if model.month is None else 1
        if (cfg["dim_in"] != encoder.embedding_dim * n_months or len(model.labels) != cfg["n_outputs"]
                or cfg["kind"] not in ("classification", "regression")):
            raise CheckpointError(f"checkpoint: the head in {directory / HEAD_DIR} does not fit its encoder or labels")
        return model


def _canonical(obj) -> str:
    return json.dumps(json.loads(dumps_json(obj)), sort_keys=True)


def is_finetuned_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :meth:`FineTunedEncoder.save` (it holds ``finetune.json``)."""
    return (Path(path) / PROVENANCE_FILE).is_file()


def read_provenance_file(directory: Path) -> dict:
    """The ``finetune.json`` of a fine-tuned folder (CheckpointError if missing or not one)."""
    path = Path(directory) / PROVENANCE_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint: {directory} is not a fine-tuned encoder folder (no {PROVENANCE_FILE}; "
                              "written by lamina geo finetune)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint: {path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {path} is not a lamina fine-tuning record (no format={FORMAT!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint: {path} has format_version {doc.get('format_version')!r}; this lamina "
                              f"reads version {FORMAT_VERSION}")
    return doc


def check_output_folder(directory: Path) -> None:
    """Refuse an output that exists and is neither an empty folder nor a fine-tuned folder (it would be replaced
    as a whole)."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise InputError(f"output: {directory} exists and is not a folder; choose a new path")
    if any(directory.iterdir()) and not is_finetuned_folder(directory):
        raise InputError(f"output: {directory} exists and is not a fine-tuned encoder folder; choose a new path "
                         "(only an empty folder or an earlier fine-tuning output is replaced)")
