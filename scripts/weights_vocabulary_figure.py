"""Draw the default zoo vocabulary: one real Fashion-MNIST image per garment under each of the six views.

    python scripts/weights_vocabulary_figure.py -o docs/figures/weights/vocabulary.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from lamina._io import atomic_path
from lamina.weights.zoo.data import DEFAULT_VIEWS, GARMENTS, apply_view, fashion_mnist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/figures/weights/vocabulary.png"))
    args = ap.parse_args()
    images, labels = fashion_mnist("test")
    first = [int(np.flatnonzero(labels == g)[0]) for g in range(len(GARMENTS))]
    x = images[first].astype(np.float32) / 255.0
    fig, axes = plt.subplots(len(DEFAULT_VIEWS), len(GARMENTS), figsize=(1.1 * len(GARMENTS), 1.2 * len(DEFAULT_VIEWS)))
    for j, view in enumerate(DEFAULT_VIEWS):
        viewed = apply_view(x, view)
        for g in range(len(GARMENTS)):
            ax = axes[j, g]
            ax.imshow(viewed[g], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_title(GARMENTS[g], fontsize=7)
            if g == 0:
                ax.set_ylabel(view, fontsize=7)
    fig.suptitle("60 categories: 10 Fashion-MNIST garments x 6 views", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
