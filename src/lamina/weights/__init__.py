"""Learning on model weights (ProbeX): what a model was trained on, read from one layer of its weights.

Reference: Horwitz et al., "Learning on Model Weights using Tree Experts", CVPR 2025 (arXiv 2410.13569).

Typical use::

    from lamina.weights import ZooConfig, build_zoo, ProbeXMixture, TrainConfig, search_text
    build_zoo(ZooConfig.load("small"), "zoo/", workers=2)          # real images, offline
    mix = ProbeXMixture(TrainConfig()).fit_zoo("zoo/")               # trees from weights, one expert each
    mix.predict_file("zoo/models/mlp-digits/mlp-digits-00001.safetensors")["probabilities"]   # (60,)
    search_text(mix, "a photo of a sneaker with a white frame", top=5)

Modules: ``data`` (image vocabulary), ``models`` (zoo architectures), ``zoo`` and ``catalogue`` (building and
storing zoos), ``layers`` (reshape rules, reading layers), ``probex`` (the expert), ``trees`` (discovery, routing),
``experts`` (mixture of experts), ``predict`` (batched prediction over many files), ``text``, ``search`` and
``index`` (a search index file that grows by appending), ``baselines``, ``metrics``, ``evaluate`` and ``report``.
"""

from __future__ import annotations

import importlib

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

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lamina.weights' has no attribute {name!r}")
