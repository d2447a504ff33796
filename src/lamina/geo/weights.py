"""The checkpoints shipped with lamina as an enum with structured metadata (as torchvision / TorchGeo weights enums).

    from lamina.geo.weights import ClimplicitWeights
    w = ClimplicitWeights.DEFAULT
    w.meta["variables"], w.meta["heldout_metrics"]["source"]        # what it encodes; whose held-out figures
    enc = w.load()                                                  # the NumPy-facing ClimateEncoder
    loc = w.module()                                                # the torch.nn.Module (LocationEncoder)
    lamina.geo.load(ClimplicitWeights.ERA5V1)                        # the members are "bundled:NAME" strings too

``meta`` is read from the checkpoint's ``config.json`` without loading its weights.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from lamina.errors import CheckpointError
from lamina.geo.encoder import BUNDLED, BUNDLED_PREFIX, ClimateEncoder, EncoderConfig, bundled_checkpoint_path

__all__ = ["ClimplicitWeights"]


class ClimplicitWeights(StrEnum):
    """The bundled climate encoders; each member's value is its ``"bundled:NAME"`` reference."""

    DEFAULT = "bundled:default"
    ELEVWARMV1 = "bundled:elevwarmv1"
    ELEVV1 = "bundled:elevv1"
    GRIDV1 = "bundled:gridv1"
    LAND70V2 = "bundled:land70v2"
    LAND70V1 = "bundled:land70v1"
    ERA5V1 = "bundled:era5v1"
    OFFLINE10 = "bundled:offline10"

    @property
    def bundled_name(self) -> str:
        return self.value[len(BUNDLED_PREFIX):]

    @property
    def path(self) -> Path:
        """The checkpoint folder inside the installed package."""
        return bundled_checkpoint_path(self.bundled_name)

    @property
    def meta(self) -> dict:
        """Structured metadata: ``name``, ``description``, ``sha256`` (weights), ``content_sha256`` (config and
        metadata), ``lamina_version``, ``variables`` (name -> units), ``embedding_dim``, ``architecture``,
        ``training`` (samples: all the weights saw, warm-restart parents included; steps, samples_this_run,
        init_from: the parent of a warm restart; minutes, command, stack), ``heldout_metrics`` (with ``source``:
        its own run, or the selection run of its recipe; ``per_variable``, or ``measures`` on land and sea read from
        the selection's results file where its run folder was not kept), ``insample_metrics`` (or None),
        ``input_contract``."""
        f = self.path / "config.json"
        try:
            doc = json.loads(f.read_text())
            cfg, md = EncoderConfig.from_dict(doc["config"]).to_dict(), doc["metadata"]
            training = md.get("training", {})
            if "heldout_metrics" in md:
                held = {"source": "this checkpoint's own held-out blocks", **md["heldout_metrics"]}
            elif "selection" in md:
                sel = md["selection"]
                held = {"source": f"the selection run of its recipe ({sel.get('candidate')}, {sel.get('results')})",
                        **sel.get("heldout_metrics", {})}
            else:
                held = None
            return {
                "name": self.bundled_name,
                "description": BUNDLED[self.bundled_name],
                "sha256": doc["sha256"],
                "content_sha256": doc.get("content_sha256"),
                "lamina_version": doc.get("lamina_version"),
                "variables": {v["name"]: v.get("units") for v in md.get("variables", [])},
                "embedding_dim": cfg["dim_embedding"],
                "architecture": {k: cfg.get(k) for k in ("num_layers", "dim_hidden", "dim_embedding",
                                                        "location_encoding", "residual", "grid_resolutions",
                                                        "grid_features", "terrain")},
                "training": {"samples": _samples_with_parents(training), "steps": training.get("steps"),
                             "samples_this_run": training.get("samples_seen"),
                             "init_from": (training.get("init_from") or {}).get("checkpoint"),
                             "minutes": round(training["elapsed_s"] / 60, 1) if "elapsed_s" in training else None,
                             "command": training.get("command"), "stack": training.get("stack")},
                "heldout_metrics": held,
                "insample_metrics": md.get("insample_metrics"),
                "input_contract": md.get("input_contract"),
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{f}: not the config of a bundled checkpoint ({type(exc).__name__}: {exc})") \
                from None

    def load(self) -> ClimateEncoder:
        """The encoder (digests checked), as ``lamina.geo.load(self)``."""
        return ClimateEncoder.from_checkpoint(self.path)

    def module(self, *, month: int | None = None):
        """The encoder as a torch module (:class:`~lamina.geo.location_encoder.LocationEncoder`)."""
        from lamina.geo.location_encoder import LocationEncoder

        return LocationEncoder(self.load(), month=month)


def _samples_with_parents(training: dict) -> int | None:
    """Samples the weights saw: this run's and, for a warm restart, its parents' (``training.init_from``)."""
    total, record = training.get("samples_seen"), training.get("init_from")
    while total is not None and isinstance(record, dict):
        total += record.get("samples_seen") or 0
        record = record.get("init_from")
    return total
