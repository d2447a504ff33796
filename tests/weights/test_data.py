"""The image vocabulary: real Fashion-MNIST and digits images, named views."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.zoo.data import (
    DEFAULT_VIEWS,
    GARMENTS,
    apply_view,
    category_pools,
    digits_28,
    fashion_mnist,
    vocabulary,
)


def test_vocabulary_has_at_least_50_named_categories():
    vocab = vocabulary()
    assert len(vocab) == len(GARMENTS) * len(DEFAULT_VIEWS) >= 50
    assert len({c.prompt for c in vocab}) == len(vocab)
    assert [c.index for c in vocab] == list(range(len(vocab)))
    assert vocab[7 * len(DEFAULT_VIEWS) + 1].prompt == "a photo of a sneaker with a white frame"
    assert vocab[9 * len(DEFAULT_VIEWS)].prompt == "a photo of an ankle boot"
    assert vocabulary(["original", "upside down"])[3].prompt == "a photo of a pair of trousers, upside down"


def test_unknown_view_is_refused():
    with pytest.raises(InputError, match="sideways-ish"):
        vocabulary(["original", "sideways-ish"])


def test_views_transform_real_images():
    images, labels = fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and set(labels) == set(range(10))
    x = images[:4].astype(np.float32) / 255.0
    np.testing.assert_allclose(apply_view(x, "upside down"), x[:, ::-1, :])
    np.testing.assert_allclose(apply_view(x, "inverted colours"), 1.0 - x, atol=1e-6)
    np.testing.assert_allclose(apply_view(x, "rotated sideways"), np.rot90(x, 1, axes=(1, 2)))
    zoomed_out = apply_view(x, "zoomed out")
    assert zoomed_out[:, :7].max() == 0 and zoomed_out[:, 7:21, 7:21].max() > 0.5
    zoomed_in = apply_view(x, "zoomed in")
    assert zoomed_in.shape == x.shape and not np.allclose(zoomed_in, x)


def test_marks_add_a_white_shape_and_keep_the_garment():
    x = fashion_mnist("test")[0][:8].astype(np.float32) / 255.0
    for view in DEFAULT_VIEWS[1:]:
        y = apply_view(x, view)
        changed = (y != x).any(0)
        assert (y[:, changed] == 1.0).all(), view  # the mark is white wherever it differs
        assert 10 <= changed.sum() <= 220, view  # a small shape, the same pixels in every image
        np.testing.assert_array_equal(y[:, ~changed], x[:, ~changed])
    frame = apply_view(x, "white frame")
    assert (frame[:, 0, :] == 1).all() and (frame[:, :, -1] == 1).all()


def test_digits_are_upscaled_real_digits():
    x, y = digits_28()
    assert x.shape == (1797, 28, 28) and 0 <= x.min() and x.max() <= 1 and set(y) == set(range(10))


def test_pools_are_disjoint_between_views_of_a_garment():
    vocab = vocabulary(["original", "upside down"])
    pools = category_pools(vocab, 30, split="test", seed=0)
    assert pools.shape == (20, 30, 28, 28)
    a = pools[0].reshape(30, -1)  # T-shirt, original
    b = pools[1][:, ::-1, :].reshape(30, -1)  # T-shirt upside down, flipped back
    assert not any((a == row).all(1).any() for row in b)
    with pytest.raises(InputError, match="per_category"):
        category_pools(vocab, 990, split="test")
