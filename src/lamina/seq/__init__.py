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

# Eager imports: the functions construct, train and sweep share their names with their modules, and a lazy
# attribute would be shadowed by the submodule once it is imported.
from lamina.seq.construct import Certificate, Construction, construct
from lamina.seq.icl import InContextRegression, compare_with_gd
from lamina.seq.model import (
    OutOfDomainWarning,
    SeqConfig,
    SingleLayerTransformer,
    forward_numpy,
    load_model,
    save_model,
)
from lamina.seq.sweep import construct_vs_train, power_law_slope, sweep
from lamina.seq.targets import TARGETS, Target, as_target, make_target, make_task
from lamina.seq.train import TrainConfig, TrainResult, baselines, gather_init, train
from lamina.seq.verify import LipschitzWarning, adversarial_search, lipschitz_lower_bound, sup_error

__all__ = [
    "TARGETS",
    "Certificate",
    "Construction",
    "InContextRegression",
    "LipschitzWarning",
    "OutOfDomainWarning",
    "SeqConfig",
    "SingleLayerTransformer",
    "Target",
    "TrainConfig",
    "TrainResult",
    "adversarial_search",
    "as_target",
    "baselines",
    "compare_with_gd",
    "construct",
    "construct_vs_train",
    "forward_numpy",
    "gather_init",
    "lipschitz_lower_bound",
    "load_model",
    "make_target",
    "make_task",
    "power_law_slope",
    "save_model",
    "sup_error",
    "sweep",
    "to_transformer_lens",
    "train",
]


def __getattr__(name: str):
    if name == "to_transformer_lens":  # optional dependency: imported on first use
        from lamina.seq.export import to_transformer_lens

        return to_transformer_lens
    raise AttributeError(f"module 'lamina.seq' has no attribute {name!r}")
