"""The image vocabulary of lamina's model zoos: real images installed offline, crossed with named views.

Categories are Fashion-MNIST garment classes (Debian's ``dataset-fashion-mnist``) crossed with named views, so that
each category has a name that carries meaning for a text encoder (``"a photo of a sneaker with a white frame"``).
Two kinds of view exist:

- *marks* (the default vocabulary): a white shape drawn over the image ("white frame", "corner square", "diagonal
  line", "bottom bar", "side bar"). A marked image is the garment plus the mark, so a model fine-tuned on "a coat
  with a white frame" learns coat features and frame features, and both are written in its weights in a form shared
  with the other coats and the other framed garments. This is what makes categories never shown to a probe
  readable through their names (zero-shot);
- *transforms* ("upside down", "rotated sideways", "inverted colours", "zoomed in", "zoomed out"): pixel
  transformations. They give categories as distinct as marks, but a fine-tune on a transformed garment shares
  nothing readable with the same garment or the same transform elsewhere (zero-shot mAP 0.17 against a chance
  level of 0.14 on the earlier benchmark zoo built on them).

Root models are pretrained on other data: scikit-learn's bundled digits (upscaled to 28 x 28) or the Fashion-MNIST
test split with its original labels.

Images are ``(N, 28, 28) float32`` arrays in [0, 1] (0 = black background, 1 = white ink).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from lamina._validation import check_choice
from lamina.errors import InputError

FASHION_DIR_ENV = "LAMINA_FASHION_MNIST"
FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)

GARMENTS = (
    "T-shirt",
    "pair of trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

# view name -> the words the text encoder reads after "a photo of a GARMENT".
VIEWS = {
    "original": "",
    "white frame": "with a white frame",
    "corner square": "with a white square in the corner",
    "diagonal line": "with a white diagonal line",
    "bottom bar": "with a white bar along the bottom",
    "side bar": "with a white bar down the left side",
    "upside down": "upside down",
    "rotated sideways": "rotated sideways",
    "inverted colours": "with inverted colours",
    "zoomed in": "zoomed in",
    "zoomed out": "zoomed out, small in the middle",
}
# The default vocabulary: the plain photo and the five marks (60 categories).
DEFAULT_VIEWS = ("original", "white frame", "corner square", "diagonal line", "bottom bar", "side bar")
SIDE = 28


def _mark(view: str) -> np.ndarray | None:
    """The (28, 28) boolean mask a mark view sets to white; None for a transform view."""
    m = np.zeros((SIDE, SIDE), dtype=bool)
    if view == "white frame":
        m[:2], m[-2:], m[:, :2], m[:, -2:] = True, True, True, True
    elif view == "corner square":
        m[1:8, 1:8] = True
    elif view == "diagonal line":
        i = np.arange(3, SIDE - 3)
        m[i, i] = m[i[:-1], i[:-1] + 1] = True
    elif view == "bottom bar":
        m[23:26, 3:25] = True
    elif view == "side bar":
        m[3:25, 2:5] = True
    else:
        return None
    return m


@dataclass(frozen=True)
class Category:
    """One category of the vocabulary: a garment class seen through a view."""

    index: int
    garment: int
    view: str

    @property
    def name(self) -> str:
        """Short name, e.g. ``"sneaker | upside down"``."""
        return f"{GARMENTS[self.garment]} | {self.view}"

    @property
    def prompt(self) -> str:
        """Natural-language description read by the text encoder, e.g. ``"a photo of a sneaker, upside down"``."""
        article = "an" if GARMENTS[self.garment][0].lower() in "aeiou" else "a"
        base = f"a photo of {article} {GARMENTS[self.garment]}"
        extra = VIEWS[self.view]
        if not extra:
            return base
        return f"{base} {extra}" if extra.startswith("with ") else f"{base}, {extra}"


def vocabulary(views: list[str] | tuple[str, ...] | None = None) -> list[Category]:
    """All categories: every garment crossed with every view (garment-major order).

    Args:
        views: view names (keys of :data:`VIEWS`); default :data:`DEFAULT_VIEWS`.

    Returns:
        ``len(GARMENTS) * len(views)`` categories, indexed 0..C-1.
    """
    views = list(DEFAULT_VIEWS) if views is None else list(views)
    for v in views:
        if v not in VIEWS:
            raise InputError(f"views: unknown view {v!r}; choose from {sorted(VIEWS)}")
    return [Category(i * len(views) + j, i, v) for i in range(len(GARMENTS)) for j, v in enumerate(views)]


def _resize(img: np.ndarray, side: int) -> np.ndarray:
    """Bilinear resize of (N, H, W) images to (N, side, side)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[:, None]
    return F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)[:, 0].numpy()


def apply_view(images: np.ndarray, view: str) -> np.ndarray:
    """Apply a named view to images.

    Args:
        images: (N, 28, 28) float32 in [0, 1].
        view: a key of :data:`VIEWS`.

    Returns:
        (N, 28, 28) float32 in [0, 1].
    """
    x = np.asarray(images, dtype=np.float32)
    mark = _mark(view)
    if mark is not None:
        out = np.where(mark, np.float32(1.0), x)
    elif view == "original":
        out = x
    elif view == "upside down":
        out = x[:, ::-1, :]
    elif view == "rotated sideways":
        out = np.rot90(x, k=1, axes=(1, 2))
    elif view == "inverted colours":
        out = 1.0 - x
    elif view == "zoomed in":
        out = _resize(x[:, 5:23, 5:23], SIDE)
    elif view == "zoomed out":
        small = _resize(x, 14)
        out = np.zeros_like(x)
        out[:, 7:21, 7:21] = small
    else:
        raise InputError(f"view: unknown view {view!r}; choose from {sorted(VIEWS)}")
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def _find_fashion_dir() -> Path:
    candidates = [os.environ[FASHION_DIR_ENV]] if os.environ.get(FASHION_DIR_ENV) else []
    candidates += list(FASHION_DIRS)
    for c in candidates:
        p = Path(c)
        if (p / "train-images-idx3-ubyte.gz").is_file():
            return p
    raise InputError(
        "fashion-mnist: not found in " + ", ".join(candidates) + " (install Debian's dataset-fashion-mnist, "
        f"or set {FASHION_DIR_ENV} to a folder holding train-images-idx3-ubyte.gz)"
    )


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"fashion-mnist: cannot read {path} ({exc})") from None
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise InputError(f"fashion-mnist: {path} is truncated ({data.size} values, header says {dims})")
    return data.reshape(dims)


@lru_cache(maxsize=2)
def fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST from the Debian package.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).

    Returns:
        ``(images, labels)``: (N, 28, 28) uint8 and (N,) int64 garment indices into :data:`GARMENTS`.
    """
    check_choice("split", split, ("train", "test"))
    d = _find_fashion_dir()
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(d / f"{prefix}-images-idx3-ubyte.gz")
    labels = _read_idx(d / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return images, labels


@lru_cache(maxsize=1)
def digits_28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (1,797 images of 8 x 8) upscaled to 28 x 28.

    Returns:
        ``(images, labels)``: (1797, 28, 28) float32 in [0, 1] and (1797,) int64 digits 0..9.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    img = d.images.astype(np.float32) / 16.0
    big = np.zeros((img.shape[0], SIDE, SIDE), dtype=np.float32)
    big[:, 2:26, 2:26] = _resize(img, 24)  # digits fill the frame like MNIST's centred 20x20 box plus margin
    return np.clip(big, 0.0, 1.0), d.target.astype(np.int64)


def category_pools(
    categories: list[Category], per_category: int, *, split: str = "train", seed: int = 0
) -> np.ndarray:
    """Draw a pool of images for every category, disjoint between the views of one garment.

    Args:
        categories: the vocabulary.
        per_category: images per category (at most ``6000 / number of views`` for the train split).
        split: Fashion-MNIST split to draw from.
        seed: seed of the draw.

    Returns:
        (C, per_category, 28, 28) uint8 images with each category's view applied.
    """
    images, labels = fashion_mnist(split)
    rng = np.random.default_rng(seed)
    views = sorted({c.view for c in categories}, key=list(VIEWS).index)
    out = np.zeros((len(categories), per_category, SIDE, SIDE), dtype=np.uint8)
    for g in sorted({c.garment for c in categories}):
        idx = rng.permutation(np.flatnonzero(labels == g))
        if per_category * len(views) > idx.size:
            raise InputError(
                f"per_category: {per_category} images x {len(views)} views exceeds the {idx.size} "
                f"{split} images of {GARMENTS[g]!r}"
            )
        for c in categories:
            if c.garment != g:
                continue
            j = views.index(c.view)
            sel = idx[j * per_category : (j + 1) * per_category]
            viewed = apply_view(images[sel].astype(np.float32) / 255.0, c.view)
            out[c.index] = np.round(viewed * 255.0).astype(np.uint8)
    return out
