"""The bundled MiniLM text encoder (offline) and the weight-text aligner (synthetic representations)."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.text import TextAligner, embed_text


def test_minilm_embeds_offline_and_means_something():
    e = embed_text(["a photo of a sneaker, upside down", "a photo of a sneaker", "a photo of a dress, zoomed in"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2]  # the sneaker prompts are closer than sneaker vs dress
    with pytest.raises(InputError, match="non-empty"):
        embed_text([" "])


def test_aligner_reads_an_unseen_pair_of_seen_parts():
    # synthetic: categories are (garment, mark) pairs; a model trained on pair (g, m) has the probe response
    # h_g u_m^T added (hidden signature of the garment x input pattern of the mark), and a category's text is the
    # sum of its parts' texts. The pair (3, 3) is never shown, but both of its parts are.
    rng = np.random.default_rng(0)
    n_g, n_m, d_h, r_u, n = 4, 4, 24, 12, 900
    h, u = rng.standard_normal((n_g, d_h)), rng.standard_normal((n_m, r_u))
    tg, tm = rng.standard_normal((n_g, 384)), rng.standard_normal((n_m, 384))
    pairs = [(g, m) for g in range(n_g) for m in range(n_m)]
    text = np.stack([tg[g] + tm[m] for g, m in pairs])
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    y = (rng.random((n, len(pairs))) < 0.2).astype(np.float32)
    R = 0.3 * rng.standard_normal((n, d_h, r_u))
    for c, (g, m) in enumerate(pairs):
        R += y[:, c, None, None] * np.outer(h[g], u[m])[None]
    held = len(pairs) - 1
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
