"""The bundled MiniLM text encoder (offline) and the weight-text aligner (synthetic representations)."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.text.aligner import TextAligner, embed_text


def test_minilm_embeds_offline_and_means_something():
    e = embed_text(["a photo of a sneaker, upside down", "a photo of a sneaker", "a photo of a dress, zoomed in"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2]  # the sneaker prompts are closer than sneaker vs dress
    with pytest.raises(InputError, match="non-empty"):
        embed_text([" "])


def test_texts_seen_before_are_not_encoded_again_and_the_memo_is_bounded(monkeypatch):
    from lamina.weights.text import aligner

    encoder = aligner._encoder()
    calls = []

    class Counting:
        def encode(self, texts, **kw):
            calls.append(list(texts))
            return encoder.encode(texts, **kw)

    monkeypatch.setattr(aligner, "_encoder", lambda: Counting())
    monkeypatch.setattr(aligner, "_MEMO", aligner.OrderedDict())
    monkeypatch.setattr(aligner, "_MEMO_SIZE", 3)
    first = embed_text(["a red coat", "a blue coat", "a red coat"])
    assert calls == [["a red coat", "a blue coat"]]  # each distinct text encoded once
    np.testing.assert_array_equal(first[0], first[2])
    again = embed_text(["a blue coat", "a green coat"])
    assert calls[-1] == ["a green coat"]  # only the new text
    np.testing.assert_array_equal(again[0], first[1])
    direct = encoder.encode(["a green coat"], normalize_embeddings=True)
    np.testing.assert_allclose(again[1], direct[0], atol=1e-6)
    again[0][:] = 0  # a caller's array is its own: the memo is not changed through it
    np.testing.assert_array_equal(embed_text(["a blue coat"])[0], first[1])
    embed_text(["one", "two", "three"])
    assert len(aligner._MEMO) == 3 and "a red coat" not in aligner._MEMO  # bounded: the oldest went first


def _pairs_world(seed: int = 0, n: int = 500, rate: float = 0.25):
    """Synthetic (unit tests only): categories "g | m" of 4 garments x 4 views (view 0 the plain one); a model
    trained on (g, m) has h_g u_m^T added to its probe responses; a category's text is the sum of its parts'."""
    rng = np.random.default_rng(seed)
    n_g, n_m, d_h, r_u = 4, 4, 24, 12
    h, u = rng.standard_normal((n_g, d_h)), rng.standard_normal((n_m, r_u))
    tg, tm = rng.standard_normal((n_g, 384)), rng.standard_normal((n_m, 384))
    pairs = [(g, m) for g in range(n_g) for m in range(n_m)]
    names = [f"garment{g} | view{m}" for g, m in pairs]
    text = np.stack([tg[g] + tm[m] for g, m in pairs])
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    y = (rng.random((n, len(pairs))) < rate).astype(np.float32)
    R = 0.3 * rng.standard_normal((n, d_h, r_u))
    for c, (g, m) in enumerate(pairs):
        R += y[:, c, None, None] * np.outer(h[g], u[m])[None]
    return names, text.astype(np.float32), y, R.astype(np.float32)


def test_aligner_reads_an_unseen_pair_of_seen_parts():
    # synthetic (see _pairs_world): the pair (3, 3) is never shown, but both of its parts are
    names, text, y, R = _pairs_world(n=900, rate=0.2)
    r_u = R.shape[2]
    held = len(names) - 1
    seen = list(range(held))
    al = TextAligner(k=8, rank=2, epochs=300).fit(R[:600], y[:600, seen], text[seen])
    s = al.decision_function(R[600:], text[held:])[:, 0]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[600:, held], s) > 0.8
    F = al.features(R[:3])
    assert F.shape == (3, 8 * r_u)
    np.testing.assert_allclose(al.decision_function_features(F, text[:2]), al.decision_function(R[:3], text[:2]),
                               rtol=1e-5, atol=1e-5)
    restored = TextAligner.from_state(al.state_tensors("a."), al.state_config(), "a.")
    np.testing.assert_allclose(restored.decision_function(R[:3], text), al.decision_function(R[:3], text), atol=1e-5)
    with pytest.raises(InputError, match="hidden units"):
        al.decision_function(R[:3, :5], text)
    with pytest.raises(InputError, match="hidden units, probes"):
        al.decision_function(R[:3, :, :5], text)
    with pytest.raises(InputError, match="384"):
        al.decision_function(R[:3], text[:, :10])
    with pytest.raises(InputError, match="features: expected"):
        al.decision_function_features(F[:, :5], text)
    with pytest.raises(InputError, match="not trained"):
        TextAligner().features(R[:3])
    old_doc = {k: v for k, v in al.state_config().items() if k != "rank"}
    with pytest.raises(InputError, match="older lamina"):
        TextAligner.from_state(al.state_tensors("a."), old_doc, "a.")


def test_category_folds_mimic_the_held_out_draw():
    from lamina.weights.eval.evaluate import default_heldout
    from lamina.weights.text.aligner import category_folds
    from lamina.weights.zoo.data import DEFAULT_VIEWS, vocabulary

    vocab = vocabulary()
    names = [c.name for c in vocab]
    held = default_heldout([{}] * len(vocab), len(DEFAULT_VIEWS))
    seen = [c for c in range(len(vocab)) if c not in held]
    folds = category_folds(names, seen)
    cats = [[seen[p] for p in f] for f in folds]
    assert len(folds) == len(DEFAULT_VIEWS) - 2  # one of the V - 1 patterns is the held-out draw itself
    for f in cats:  # one non-plain view per garment, none of them held out
        assert sorted(vocab[c].garment for c in f) == list(range(10))
        assert all(vocab[c].view != DEFAULT_VIEWS[0] and c not in held for c in f)
    flat = [c for f in cats for c in f]
    assert len(flat) == len(set(flat)) == 40  # disjoint, and every non-plain seen category is in one
    assert len(category_folds(names, list(range(len(vocab))))) == len(DEFAULT_VIEWS) - 1  # nothing held out
    with pytest.raises(InputError, match="named 'garment \\| view'"):
        category_folds(["a photo of a coat", "a coat | white frame"], [0, 1])
    with pytest.raises(InputError, match="at least two views"):
        category_folds(["coat | plain", "dress | plain"], [0, 1])


def test_choose_text_rank_scores_each_rank_by_zero_shot_on_seen_folds():
    from lamina.weights.probes.metrics import multilabel_metrics
    from lamina.weights.text.aligner import category_folds, choose_text_rank

    names, text, y, R = _pairs_world()
    held = 6  # "garment1 | view2": the evaluation's held-out pair, never passed in; positions != category indices
    seen = [c for c in range(len(names)) if c != held]
    folds = category_folds(names, seen)
    tr, va = slice(0, 350), slice(350, None)
    calls = []

    def refit(rest):  # the synthetic responses do not depend on an expert; the calls say what it would have seen
        calls.append(rest)
        return R[tr], R[va]

    kw = {"k": 8, "epochs": 150}
    Ytr, Yva = y[tr][:, seen], y[va][:, seen]
    rank, scores = choose_text_rank(refit, Ytr, Yva, text[seen], folds, [1, 2, 1], seed=3, **kw)
    assert list(scores) == [1, 2] and scores[rank] == max(scores.values())
    # one expert per fold, never shown the fold's categories
    assert len(calls) == len(folds)
    for fold, rest in zip(folds, calls, strict=True):
        assert sorted(rest + fold) == list(range(len(seen)))
    # a rank's score is the mean zero-shot mAP of its folds, each fitted without the fold's categories
    def by_hand(rank, folds):
        maps = []
        for fold in folds:
            rest = [i for i in range(len(seen)) if i not in fold]
            al = TextAligner(rank=rank, seed=3, **kw).fit(R[tr], Ytr[:, rest], text[seen][rest])
            maps.append(multilabel_metrics(Yva[:, fold], al.decision_function(R[va], text[seen][fold]))["map"])
        return np.mean(maps)

    assert scores[1] == pytest.approx(by_hand(1, folds), abs=1e-6)
    assert min(scores.values()) > Yva.mean() + 0.3  # the planted parts carry over to the folds' categories
    # a fold no validation model can score is left out (and its expert never fitted)
    Yva_part = Yva.copy()
    Yva_part[:, folds[0]] = 0
    calls.clear()
    _, part = choose_text_rank(refit, Ytr, Yva_part, text[seen], folds, [2], seed=3, **kw)
    assert len(calls) == len(folds) - 1 and part[2] == pytest.approx(by_hand(2, folds[1:]), abs=1e-6)
    # none can: the default rank where offered, else the first candidate, unscored
    for ranks, expected in (([1, 4], TextAligner().rank), ([2, 1], 2)):
        rank, scores = choose_text_rank(refit, Ytr, 0 * Yva, text[seen], folds, ranks, **kw)
        assert rank == expected and all(np.isnan(v) for v in scores.values())
    for ranks, folds_, message in (([], folds, "at least one rank"), ([0], folds, "text ranks"),
                                   ([1.5], folds, "text ranks"), ([1], [[99]], "folds"), ([1], [], "folds")):
        with pytest.raises(InputError, match=message):
            choose_text_rank(refit, Ytr, Yva, text[seen], folds_, ranks)
    with pytest.raises(InputError, match="columns"):
        choose_text_rank(refit, y[tr], Yva, text[seen], folds, [1])
    with pytest.raises(InputError, match="responses: expected a function"):
        choose_text_rank((R[tr], R[va]), Ytr, Yva, text[seen], folds, [1])
