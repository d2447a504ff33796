"""Single-layer Transformers as universal approximators: constructed with a certified error, and trained.

Reference: E. Gumaan, "Universal Approximation Theorem for a Single-Layer Transformer", arXiv 2507.10581 (2025).
One multi-head self-attention layer followed by one position-wise ReLU feed-forward layer approximates any
continuous sequence-to-sequence map on a compact box. lamina.seq builds such a transformer explicitly with a
certified sup-norm bound (:func:`construct`), trains one by Adam (:func:`train`), and measures both.

Typical use::

    from lamina.seq import construct, make_target, sup_error
    target = make_target("smooth-cummax", n=2, d=1)
    c = construct(target, eps=1e-2)                 # c.model: SingleLayerTransformer, c.certificate.total <= 0.01
    sup_error(c, target)["max"]                     # measured: random, corner and adversarial inputs

    from lamina.seq import SeqConfig, SingleLayerTransformer, TrainConfig, train
    mlp = make_target("random-mlp", n=20, d=5)      # the Hu et al. protocol target
    model = SingleLayerTransformer(SeqConfig(n_ctx=20, d_in=5, n_heads=4, d_model=64, d_ff=256))
    result = train(model, mlp, TrainConfig(time_limit_s=600))
"""

from __future__ import annotations

import importlib

_LAZY = {
    "SeqConfig": "lamina.seq.model",
    "SingleLayerTransformer": "lamina.seq.model",
    "forward_numpy": "lamina.seq.model",
    "save_model": "lamina.seq.model",
    "load_model": "lamina.seq.model",
    "construct": "lamina.seq.construct",
    "Construction": "lamina.seq.construct",
    "Certificate": "lamina.seq.construct",
    "Target": "lamina.seq.targets",
    "TARGETS": "lamina.seq.targets",
    "make_target": "lamina.seq.targets",
    "make_task": "lamina.seq.targets",
    "as_target": "lamina.seq.targets",
    "TrainConfig": "lamina.seq.train",
    "TrainResult": "lamina.seq.train",
    "train": "lamina.seq.train",
    "baselines": "lamina.seq.train",
    "gather_init": "lamina.seq.train",
    "sweep": "lamina.seq.sweep",
    "construct_vs_train": "lamina.seq.sweep",
    "power_law_slope": "lamina.seq.sweep",
    "sup_error": "lamina.seq.verify",
    "adversarial_search": "lamina.seq.verify",
    "InContextRegression": "lamina.seq.icl",
    "compare_with_gd": "lamina.seq.icl",
    "to_transformer_lens": "lamina.seq.export",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lamina.seq' has no attribute {name!r}")
