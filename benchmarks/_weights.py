"""What the weights benchmark scripts share: their command line and one tree of a zoo read into arrays."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lamina.weights.eval.evaluate import default_heldout
from lamina.weights.layers import read_layer
from lamina.weights.probes.metrics import labels_matrix
from lamina.weights.zoo.catalogue import Catalogue


def tree_args(doc: str, results: str | None = None) -> argparse.Namespace:
    """Parse ``ZOO [--tree] [--layer] [--seeds]`` (and ``--results NAME``, default ``results``, where given);
    ``doc`` is the script's docstring (first line = description)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--tree", default="mlp-digits")
    ap.add_argument("--layer", default="fc1")
    ap.add_argument("--seeds", default="0,1,2")
    if results is not None:
        ap.add_argument("--results", default=results, help="name of the results files in benchmarks/results/")
    return ap.parse_args()


@dataclass
class Tree:
    """One tree: its layer matrices X (N, d_H, d_W), labels Y (N, C) over all categories, and the category split."""

    n_models: int
    vocab: list[dict]
    n_views: int
    seen: list[int]
    held: list[int]
    X: np.ndarray
    Y: np.ndarray


def load_tree(zoo: Path, tree: str, layer: str) -> Tree:
    with Catalogue(zoo) as cat:
        models = [m for m in cat.models() if m["tree"] == tree]
        vocab, zcfg = cat.get_meta("vocabulary"), cat.get_meta("config")
    if not models:
        raise SystemExit(f"error: zoo {zoo} has no tree {tree!r}")
    n_views = len(zcfg["views"])
    held = default_heldout(vocab, n_views)
    seen = [c for c in range(len(vocab)) if c not in set(held)]
    X = np.stack([read_layer(zoo / m["path"], layer) for m in models]).astype(np.float32)
    Y = labels_matrix([m["categories"] for m in models], len(vocab)).astype(np.float32)
    return Tree(len(models), vocab, n_views, seen, held, X, Y)
