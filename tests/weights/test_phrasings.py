"""Training phrasings of the categories, the held-out paraphrases that measure search, and training on phrasings."""

import json
from pathlib import Path

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.text.aligner import TextAligner, embed_phrasings, embed_text
from lamina.weights.text.phrasings import GARMENT_WORDS, VIEW_WORDS, category_phrasings, has_phrasings, phrasings
from lamina.weights.zoo.data import DEFAULT_VIEWS, VIEWS, vocabulary

PARAPHRASES = json.loads((Path(__file__).parent / "paraphrases.json").read_text())


def _norm(text: str) -> str:
    return " ".join(text.lower().replace(",", " ").split())


def test_every_category_of_the_vocabulary_has_phrasings():
    cats = vocabulary(list(VIEWS))
    assert all(has_phrasings(c.name) for c in cats)
    p = phrasings("coat | white frame")
    assert len(p) >= 20 and len(set(p)) == len(p)
    assert all("  " not in s and not s.endswith(",") for s in p)
    assert any("jacket" in s for s in p) and any("border" in s for s in p)
    both = category_phrasings(["coat | white frame", "cat | hat"], ["a photo of a coat with a white frame", "a cat"])
    assert both[0][0] == "a photo of a coat with a white frame" and len(both[0]) > 1
    assert both[1] == ["a cat"]  # a category without phrasings keeps its prompt
    with pytest.raises(InputError, match="no phrasings"):
        phrasings("cat | hat")
    with pytest.raises(InputError, match="2 names but 1 prompts"):
        category_phrasings(["a", "b"], ["a"])


def test_heldout_paraphrases_are_not_training_phrasings():
    cats = vocabulary(list(DEFAULT_VIEWS))
    names = {c.name for c in cats}
    training = {_norm(c.prompt) for c in cats} | {_norm(s) for c in cats for s in phrasings(c.name)}
    view_words = {_norm(w) for words in VIEW_WORDS.values() for w in words if len(w.split()) >= 2}
    queries = PARAPHRASES["heldout"] + PARAPHRASES["tuning"]
    assert len(PARAPHRASES["heldout"]) >= 30
    for query, target in queries:
        assert target in names, target
        q = _norm(query)
        assert q not in training, query  # never verbatim
        assert not [w for w in view_words if w in q], query  # nor any multi-word view wording inside it
    assert len({_norm(q) for q, _ in queries}) == len(queries)
    assert set(GARMENT_WORDS) == {c.name.split(" | ")[0] for c in cats}


def test_embed_phrasings_keeps_the_categories_apart_and_checks_input():
    out = embed_phrasings([["a photo of a coat", "a jacket"], ["a bag"]])
    assert [e.shape for e in out] == [(2, 384), (1, 384)]
    np.testing.assert_allclose(out[1][0], embed_text("a bag")[0], atol=1e-5)
    for bad in ([], [[]], "a coat"):
        with pytest.raises(InputError, match="phrasings"):
            embed_phrasings(bad)
    for bad in ([1, 2], None, ["ok", 3]):
        with pytest.raises(InputError, match="text"):
            embed_text(bad)


def _synthetic(rng, n=700):
    # categories are (garment, mark) pairs; a model trained on pair (g, m) has h_g u_m^T added to its responses. Each
    # part has several "phrasings" (noisy versions of the part's text direction); a category's text is the sum.
    n_g, n_m, d_h, r_u = 3, 4, 16, 8
    h, u = rng.standard_normal((n_g, d_h)), rng.standard_normal((n_m, r_u))
    tg, tm = rng.standard_normal((n_g, 384)), rng.standard_normal((n_m, 384))
    pairs = [(g, m) for g in range(n_g) for m in range(n_m)]
    y = (rng.random((n, len(pairs))) < 0.25).astype(np.float32)
    R = 0.3 * rng.standard_normal((n, d_h, r_u))
    for c, (g, m) in enumerate(pairs):
        R += y[:, c, None, None] * np.outer(h[g], u[m])[None]

    def texts(c, k, noise):
        g, m = pairs[c]
        t = tg[g] + tm[m] + noise * rng.standard_normal((k, 384))
        return (t / np.linalg.norm(t, axis=1, keepdims=True)).astype(np.float32)

    return R.astype(np.float32), y, pairs, texts


def test_training_on_phrasings_reads_reworded_texts_better_than_one_prompt():
    rng = np.random.default_rng(0)
    R, y, pairs, texts = _synthetic(rng)
    prompt = np.concatenate([texts(c, 1, 1.5) for c in range(len(pairs))])  # one arbitrary wording per category
    phrased = [texts(c, 12, 1.5) for c in range(len(pairs))]
    queries = np.concatenate([texts(c, 1, 1.5) for c in range(len(pairs))])  # new wordings, never trained on
    tr, te = slice(0, 500), slice(500, None)

    def p_at_10(al):
        s = al.decision_function(R[te], queries)
        return np.mean([y[te][np.argsort(-s[:, c])[:10], c].mean() for c in range(len(pairs))])

    one = TextAligner(k=8, rank=2, epochs=150).fit(R[tr], y[tr], prompt)
    many = TextAligner(k=8, rank=2, epochs=150, phrasing_epochs=300).fit(R[tr], y[tr], phrased)
    assert p_at_10(many) > p_at_10(one) + 0.1
    # one phrasing per category is the old training, exactly
    again = TextAligner(k=8, rank=2, epochs=150).fit(R[tr], y[tr], [p[None] for p in prompt])
    np.testing.assert_array_equal(again.decision_function(R[te], queries), one.decision_function(R[te], queries))
    # training draws phrasings from its own seeded generator: the same fit twice gives the same readout, and the
    # caller's global random state is untouched
    import torch

    before = torch.random.get_rng_state()
    twice = TextAligner(k=8, rank=2, epochs=150, phrasing_epochs=300).fit(R[tr], y[tr], phrased)
    assert torch.equal(before, torch.random.get_rng_state())
    np.testing.assert_array_equal(twice.decision_function(R[te], queries), many.decision_function(R[te], queries))
    restored = TextAligner.from_state(many.state_tensors("a."), many.state_config(), "a.")
    np.testing.assert_allclose(restored.decision_function(R[:3], queries), many.decision_function(R[:3], queries),
                               atol=1e-5)
    with pytest.raises(InputError, match="Y: expected"):
        TextAligner(epochs=2).fit(R[tr], y[tr], phrased[:-1])
    with pytest.raises(InputError, match="384"):
        TextAligner(epochs=2).fit(R[tr], y[tr], [p[:, :10] for p in phrased])
    with pytest.raises(InputError, match="phrasing"):
        TextAligner(epochs=2).fit(R[tr], y[tr], "texts")
    with pytest.raises(InputError, match="prompt_share"):
        TextAligner(prompt_share=1.5).fit(R[tr], y[tr], phrased)
    old_doc = {k: v for k, v in many.state_config().items() if k not in ("phrasing_epochs", "prompt_share")}
    assert TextAligner.from_state(many.state_tensors("a."), old_doc, "a.").prompt_share == 0.5  # saved before
