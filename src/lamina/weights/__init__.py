"""Learning on model weights (ProbeX): what a model was trained on, read from one layer of its weights.

Reference: Horwitz et al., "Learning on Model Weights using Tree Experts", CVPR 2025 (arXiv 2410.13569).

Typical use::

    from lamina.weights import ZooConfig, build_zoo, ProbeXMixture, TrainConfig, search_text
    build_zoo(ZooConfig.load("small"), "zoo/", workers=2)          # real images, offline
    mix = ProbeXMixture(TrainConfig()).fit_zoo("zoo/")               # trees from weights, one expert each
    mix.predict_file("zoo/models/mlp-digits/mlp-digits-00001.safetensors")["probabilities"]   # (60,)
    search_text(mix, "a photo of a sneaker with a white frame", top=5)

Layout by role: ``zoo/`` (building zoos: configs, catalogue, image and WordNet vocabularies, MLP / CNN / ViT and
MiniLM fine-tunes), ``io/`` (one reader of model files), ``layers`` and ``trees`` (reading layers, fingerprints,
discovery, routing), ``probes/`` (ProbeX, linear baselines, metrics), ``experts`` (the mixture of experts),
``text/`` (text readout), ``serve/`` (prediction, search index, search) and ``eval/`` (evaluation and report).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "ZooConfig": "lamina.weights.zoo.build",
    "build_zoo": "lamina.weights.zoo.build",
    "Catalogue": "lamina.weights.zoo.catalogue",
    "ProbeX": "lamina.weights.probes.probex",
    "ProbeXConfig": "lamina.weights.probes.probex",
    "ProbeXMixture": "lamina.weights.experts",
    "TrainConfig": "lamina.weights.experts",
    "discover_trees": "lamina.weights.trees",
    "fingerprint_files": "lamina.weights.trees",
    "adjusted_rand": "lamina.weights.trees",
    "Router": "lamina.weights.trees",
    "embed_text": "lamina.weights.text.aligner",
    "TextAligner": "lamina.weights.text.aligner",
    "search_text": "lamina.weights.serve.search",
    "search_like": "lamina.weights.serve.search",
    "iter_predictions": "lamina.weights.serve.predict",
    "write_predictions": "lamina.weights.serve.predict",
    "ModelIndex": "lamina.weights.serve.index",
    "build_index": "lamina.weights.serve.index",
    "add_to_index": "lamina.weights.serve.index",
    "multilabel_metrics": "lamina.weights.probes.metrics",
    "read_layer": "lamina.weights.layers",
    "reshape_weight": "lamina.weights.layers",
    "EvalConfig": "lamina.weights.eval.evaluate",
    "evaluate_zoo": "lamina.weights.eval.evaluate",
}

__all__ = [  # sorted(_LAZY), written out so that tools read it (a test checks they agree)
    "Catalogue", "EvalConfig", "ModelIndex", "ProbeX", "ProbeXConfig", "ProbeXMixture", "Router", "TextAligner",
    "TrainConfig", "ZooConfig", "add_to_index", "adjusted_rand", "build_index", "build_zoo", "discover_trees",
    "embed_text", "evaluate_zoo", "fingerprint_files", "iter_predictions", "multilabel_metrics", "read_layer",
    "reshape_weight", "search_like", "search_text", "write_predictions",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use (below)
    from lamina.weights.eval.evaluate import EvalConfig, evaluate_zoo
    from lamina.weights.experts import ProbeXMixture, TrainConfig
    from lamina.weights.layers import read_layer, reshape_weight
    from lamina.weights.probes.metrics import multilabel_metrics
    from lamina.weights.probes.probex import ProbeX, ProbeXConfig
    from lamina.weights.serve.index import ModelIndex, add_to_index, build_index
    from lamina.weights.serve.predict import iter_predictions, write_predictions
    from lamina.weights.serve.search import search_like, search_text
    from lamina.weights.text.aligner import TextAligner, embed_text
    from lamina.weights.trees import Router, adjusted_rand, discover_trees, fingerprint_files
    from lamina.weights.zoo.build import ZooConfig, build_zoo
    from lamina.weights.zoo.catalogue import Catalogue


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lamina.weights' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
