"""Figures of lamina.seq (matplotlib, PNG written atomically).

Each figure is a :class:`matplotlib.figure.Figure` of its own (:func:`lamina._process.new_figure`): pyplot is never
imported and no backend is selected, so drawing leaves the process's matplotlib state as it found it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lamina._io import atomic_path
from lamina._process import new_figure


def _save(fig, path, dpi: int) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return Path(path)


def error_vs(path, x: Sequence[float], series: dict[str, Sequence[float]], *, xlabel: str, ylabel: str = "error",
             title: str = "", hlines: dict[str, float] | None = None, slopes: dict[str, float] | None = None,
             dpi: int = 100) -> Path:
    """Log-log plot of one or more error series against ``x`` (slopes in the legend, baselines as dashed lines)."""
    fig = new_figure(figsize=(5.2, 3.8))
    ax = fig.subplots()
    for label, ys in series.items():
        ys = np.asarray(ys, dtype=np.float64)
        slope = (slopes or {}).get(label)
        name = f"{label} (slope {slope:.2f})" if slope is not None and np.isfinite(slope) else label
        ax.plot(x, ys, "o-", label=name)
    for j, (label, value) in enumerate((hlines or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{len(series) + j}", label=f"{label} ({value:.3g})")
    ax.set_xscale("log", base=2 if all(float(v).is_integer() for v in x) else 10)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path, dpi)


def attention_maps(path, pattern: np.ndarray, *, title: str = "", max_heads: int = 8, dpi: int = 100) -> Path:
    """Heat maps of attention weights ``(n_heads, L, L)`` (query rows, key columns), one panel per head."""
    pattern = np.asarray(pattern)
    heads = min(len(pattern), max_heads)
    cols = min(heads, 4)
    rows = (heads + cols - 1) // cols
    fig = new_figure(figsize=(2.3 * cols, 2.3 * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    for h in range(rows * cols):
        ax = axes[h // cols][h % cols]
        if h >= heads:
            ax.axis("off")
            continue
        lo = min(0.0, float(pattern[:heads].min()))  # linear attention can be negative
        im = ax.imshow(pattern[h], vmin=lo, vmax=max(float(pattern[:heads].max()), lo + 1e-12), cmap="viridis")
        ax.set_title(f"head {h}", fontsize=8)
        ticks = np.arange(0, pattern.shape[-1], max(1, pattern.shape[-1] // 5))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xlabel("key", fontsize=7)
        if h % cols == 0:
            ax.set_ylabel("query", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes, shrink=0.8)
    if title:
        fig.suptitle(title + (f" (first {heads} of {len(pattern)} heads)" if len(pattern) > heads else ""),
                     fontsize=9)
    return _save(fig, path, dpi)


def learning_curve(path, history: list[dict], *, baselines: dict[str, float] | None = None, title: str = "",
                   dpi: int = 100) -> Path:
    """Test relative MSE against training time, with the baselines as dashed lines."""
    fig = new_figure(figsize=(5.2, 3.6))
    ax = fig.subplots()
    ax.plot([h["seconds"] for h in history], [h["rel_mse"] for h in history], "-", label="test relative MSE")
    for j, (label, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{j + 1}", label=f"{label} ({value:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("relative MSE")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path, dpi)


def bound_vs_measured(path, x: Sequence[float], certified: Sequence[float], measured: Sequence[float], *,
                      xlabel: str, title: str = "", dpi: int = 100) -> Path:
    """Certified bound and measured sup error against size, log-log."""
    return error_vs(path, x, {"certified bound": certified, "measured sup error": measured}, xlabel=xlabel,
                    ylabel="sup error", title=title, dpi=dpi)


def scatter_params(path, groups: dict[str, tuple[Sequence[float], Sequence[float]]], *, ylabel: str,
                   xlabel: str = "parameters", title: str = "", dpi: int = 100) -> Path:
    """Error against parameter count (or any size) for several groups, e.g. constructed and trained; log-log."""
    fig = new_figure(figsize=(5.2, 3.8))
    ax = fig.subplots()
    for j, (label, (params, err)) in enumerate(groups.items()):
        ax.plot(params, err, "o-" if j % 2 == 0 else "s--", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path, dpi)


def heatmap(path, values: np.ndarray, *, title: str = "", xlabel: str = "", ylabel: str = "", dpi: int = 100,
            extent=None) -> Path:
    """One heat map (e.g. an error map over a 2-D input box)."""
    fig = new_figure(figsize=(4.0, 3.3))
    ax = fig.subplots()
    im = ax.imshow(values, origin="lower", extent=extent, aspect="auto", cmap="magma", interpolation="nearest")
    fig.colorbar(im, ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, dpi)
