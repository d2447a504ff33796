"""Climate implicit embeddings (Climplicit): ``(lon, lat, month) -> embedding`` anywhere on Earth.

Reference: Dollinger et al., "Climplicit: Climatic Implicit Embeddings for Global Ecological Tasks", 2025.

Typical use::

    import lamina.geo
    enc = lamina.geo.load()                               # bundled default checkpoint, offline
    emb = enc.embed(lon=[8.55], lat=[47.37], month=6)     # (1, 256) float32
    emb4 = enc.embed(lon=[8.55], lat=[47.37])             # (1, 1024): months 3, 6, 9, 12 concatenated
    loc = lamina.geo.LocationEncoder.from_pretrained()    # the same as a torch.nn.Module: (B, 2) degrees -> (B, D)
    lamina.geo.ClimplicitWeights.DEFAULT.meta             # the bundled checkpoints, with structured metadata

    from lamina.geo.finetune import finetune              # fine-tuning on labelled points: docs/geo.md
    model = finetune("sites.csv", target="biome", train="last")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "ClimateEncoder": "lamina.geo.encoder",
    "EncoderConfig": "lamina.geo.encoder",
    "load": "lamina.geo.encoder",
    "LocationEncoder": "lamina.geo.location_encoder",
    "FineTunedEncoder": "lamina.geo.finetune_model",
    "FineTuneConfig": "lamina.geo.finetune",
    "embed_frame": "lamina.geo.points",
    "RasterStack": "lamina.geo.data.rasters",
    "ClimplicitWeights": "lamina.geo.weights",
}

__all__ = [  # sorted(_LAZY), written out so that tools read it (a test checks they agree)
    "ClimateEncoder", "ClimplicitWeights", "EncoderConfig", "FineTuneConfig", "FineTunedEncoder", "LocationEncoder",
    "RasterStack", "embed_frame", "load",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use (below)
    from lamina.geo.data.rasters import RasterStack
    from lamina.geo.encoder import ClimateEncoder, EncoderConfig, load
    from lamina.geo.finetune import FineTuneConfig
    from lamina.geo.finetune_model import FineTunedEncoder
    from lamina.geo.location_encoder import LocationEncoder
    from lamina.geo.points import embed_frame
    from lamina.geo.weights import ClimplicitWeights


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lamina.geo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
