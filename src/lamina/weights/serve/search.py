"""Search a zoo's models by text, or by likeness to another model.

- Text: the query is embedded by MiniLM and scored against every indexed model by its tree's text aligner; the
  score is the aligned probability that the model was trained on what the query describes. Queries need not name
  a category any probe was trained on (zero-shot). On a tree whose root is a text encoder (the MiniLM tree), a
  query far from every seen category is read by the root readout instead
  (:mod:`lamina.weights.text.root_response`: how each model's change answers the root's own reading of the query),
  through the probe's own index; an index built with ``lamina weights index`` keeps the text readout only.
- Likeness: models are compared by the cosine similarity of their predicted category-probability vectors, a space
  shared by all trees (so a CNN can be "like" an MLP trained on the same categories).

The probe a zoo is searched with is the one ``lamina weights train ZOO -o DIR`` recorded in the zoo's catalogue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lamina.errors import InputError
from lamina.weights.experts import ProbeXMixture, check_top
from lamina.weights.io.readers import is_model_path
from lamina.weights.zoo.catalogue import Catalogue


def register_probe(zoo: str | Path, probe: str | Path) -> None:
    """Record ``probe`` as the zoo's default probe (used by search when no probe is given)."""
    with Catalogue(zoo) as cat:
        cat.set_meta("probe", str(Path(probe).resolve()))


def probe_of(zoo: str | Path) -> Path:
    """The probe folder recorded for a zoo; InputError if the zoo was never trained."""
    with Catalogue(zoo) as cat:
        p = cat.get_meta("probe")
    if not p or not Path(p).is_dir():
        raise InputError(f"zoo: {zoo} has no trained probe; run `lamina weights train {zoo} -o PROBE/` first")
    return Path(p)


def _rows(ids: list[str], trees, order: np.ndarray, scores: np.ndarray, top: int) -> list[dict]:
    return [{"rank": r + 1, "id": ids[i], "tree": trees[i], "score": round(float(scores[i]), 4)}
            for r, i in enumerate(order[:top])]


def _index(mix: ProbeXMixture, index):
    """The rows searched: ``index`` (checked against the probe), else the probe's own."""
    from lamina.weights.serve.index import ModelIndex

    if index is None:
        return None, mix.index_ids_, mix.index_trees_, mix.index_probs_
    if not isinstance(index, ModelIndex):
        raise InputError(f"index: expected a ModelIndex, got {type(index).__name__}")
    index.check_probe(mix)
    return index, index.ids, _TreeNames(index), index.probs


class _TreeNames:
    """Tree name of row i, looked up only for the rows returned."""

    def __init__(self, index):
        self.index = index

    def __getitem__(self, i: int) -> str:
        return self.index.tree_names[int(self.index.tree_codes[i])]


def _top_order(s: np.ndarray, top: int) -> np.ndarray:
    """Indices of the ``top`` highest finite scores, best first (ties: the lower index first)."""
    finite = np.flatnonzero(np.isfinite(s))
    if finite.size > 4 * top:  # partial selection first: sorting 100k scores per query is most of its time
        cut = np.partition(-s[finite], top - 1)[top - 1]
        finite = finite[-s[finite] <= cut]
    return finite[np.argsort(-s[finite], kind="stable")]


def search_text(mix: ProbeXMixture, query: str, *, top: int = 10, index=None) -> list[dict]:
    """Models ranked by how likely they were trained on what ``query`` describes.

    Args:
        index: a :class:`~lamina.weights.serve.index.ModelIndex` built with ``mix`` (default: the probe's own index).

    Returns:
        ``[{"rank", "id", "tree", "score"}]``, best first; score is a probability in [0, 1].
    """
    if not isinstance(query, str) or not query.strip():
        raise InputError("query: expected a non-empty text")
    top = check_top(top)
    ix, ids, trees, _ = _index(mix, index)
    s = mix.text_scores(query, ix)
    return _rows(ids, trees, _top_order(s, top), s, top)


def search_like(mix: ProbeXMixture, model: str | Path, *, top: int = 10, index=None) -> list[dict]:
    """Models most like ``model`` (an indexed model id, or a model file), by predicted categories.

    Args:
        index: a :class:`~lamina.weights.serve.index.ModelIndex` built with ``mix`` (default: the probe's own index).

    Returns:
        ``[{"rank", "id", "tree", "score"}]``, best first; score is a cosine similarity in [-1, 1].
    """
    top = check_top(top)
    _, ids_list, trees, P = _index(mix, index)
    ids = {m: i for i, m in enumerate(ids_list)}
    if str(model) in ids:
        self_i = ids[str(model)]
        v = np.asarray(P[self_i], np.float32)
    elif is_model_path(model):
        self_i = -1
        v = mix.predict_file(model)["probabilities"]
    else:
        raise InputError(f"like: {model!r} is neither a model id of the index nor a model file or folder")
    P = np.asarray(P, np.float32)
    s = (P @ v) / (np.linalg.norm(P, axis=1) * np.linalg.norm(v) + 1e-12)
    if self_i >= 0:
        s[self_i] = -np.inf
    return _rows(ids_list, trees, _top_order(s, top), s, top)
