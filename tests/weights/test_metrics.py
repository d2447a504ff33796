"""Multi-label metrics and their chance levels (synthetic labels)."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.probes.metrics import labels_matrix, multilabel_metrics


def test_perfect_and_random_scores():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 20)) < 0.2).astype(float)
    perfect = multilabel_metrics(y, y)
    assert perfect["map"] == 1.0 and perfect["auc"] == 1.0 and perfect["accuracy"] == 1.0
    rand = multilabel_metrics(y, rng.random(y.shape))
    assert abs(rand["map"] - rand["map_chance"]) < 0.05 and abs(rand["auc"] - 0.5) < 0.05
    assert rand["map_chance"] == pytest.approx(y.mean(), abs=1e-9)
    zeros = multilabel_metrics(y, np.zeros_like(y))
    assert zeros["accuracy"] == pytest.approx(zeros["accuracy_chance"])  # "never" = majority rule


def test_bad_shapes_and_labels_matrix():
    with pytest.raises(InputError, match="shape"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 3)))
    y = labels_matrix([[0, 2], [1]], 3)
    np.testing.assert_array_equal(y, [[1, 0, 1], [0, 1, 0]])
