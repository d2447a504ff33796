"""Figures of an encoder: the embedding as a world map (PCA -> RGB) and reconstruction next to the source."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lamina._io import atomic_path
from lamina._process import new_figure
from lamina.errors import InputError
from lamina.geo.data.rasters import RasterStack
from lamina.geo.embed import grid_points
from lamina.geo.encoder import ClimateEncoder


def pca_rgb(emb: np.ndarray) -> np.ndarray:
    """First three principal components of ``(..., D)`` embeddings as RGB in [0, 1] (1-99 percentile stretch)."""
    flat = emb.reshape(-1, emb.shape[-1]).astype(np.float64)
    flat = flat - flat.mean(axis=0)
    rng = np.random.default_rng(0)
    fit = flat[rng.choice(flat.shape[0], min(flat.shape[0], 20_000), replace=False)]
    _, _, vt = np.linalg.svd(fit, full_matrices=False)
    pcs = flat @ vt[:3].T
    lo, hi = np.percentile(pcs, [1, 99], axis=0)
    rgb = np.clip((pcs - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    return rgb.reshape(*emb.shape[:-1], 3)


def _land(grid):
    """Land fraction on the map grid for coastlines (None if the GLOBE mask is unavailable)."""
    try:
        from lamina.geo.data.landmask import land_fraction

        return land_fraction(grid)
    except (ImportError, OSError):
        return None


def map_figure(encoder: ClimateEncoder, path: str | os.PathLike, *, month: int = 6, variable: str | None = None,
               stack: RasterStack | None = None, resolution_deg: float = 1.0, dpi: int = 110) -> Path:
    """Write a PNG: the embedding (PCA RGB) and, for ``variable``, reconstruction, source field and error.

    Args:
        encoder: the encoder to show.
        path: output PNG, written atomically.
        month: month 1..12 shown.
        variable: variable to reconstruct (default: the first of the encoder's); needs ``stack`` for the source
            and error panels.
        stack: the source fields (None: only the embedding and reconstruction panels).
        resolution_deg: grid spacing of the map.
    """
    names = encoder.variable_names
    variable = variable or names[0]
    if variable not in names:
        raise InputError(f"variable: {variable!r} is not one of the encoder's variables {names}")
    j = names.index(variable)
    units = encoder.variables[j].units
    grid, lon, lat = grid_points(resolution_deg)
    shape = grid.shape
    emb = encoder.embed(lon=lon, lat=lat, month=month)
    recon = encoder.reconstruct(lon=lon, lat=lat, month=month)[:, j].reshape(shape)  # NaN outside its support
    source = None
    if stack is not None and variable in stack.names:
        source = stack.select([variable]).values_at(lon=lon, lat=lat, month=month)[:, 0].reshape(shape)
    extent = (-180, 180, -90, 90)
    n_panels = 2 if source is None else 4
    fig = new_figure(figsize=(13, 3.4 * ((n_panels + 1) // 2)))  # not registered with pyplot: no backend is chosen
    axes = fig.subplots((n_panels + 1) // 2, 2, squeeze=False)
    axes = axes.ravel()
    axes[0].imshow(pca_rgb(emb.reshape(*shape, -1)), extent=extent, interpolation="nearest")
    axes[0].set_title(f"embedding, month {month}: first 3 principal components as RGB")
    if source is not None:
        finite = source[np.isfinite(source)]
        vmin, vmax = (np.percentile(finite, [1, 99]) if finite.size else (np.nanmin(recon), np.nanmax(recon)))
    else:
        vmin, vmax = np.nanpercentile(recon, [1, 99])
    im = axes[1].imshow(recon, extent=extent, vmin=vmin, vmax=vmax, cmap="viridis", interpolation="nearest")
    axes[1].set_title(f"{variable} reconstructed by the encoder [{units}]")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    if source is not None:
        im = axes[2].imshow(source, extent=extent, vmin=vmin, vmax=vmax, cmap="viridis", interpolation="nearest")
        axes[2].set_title(f"{variable} source field [{units}] (white: no data)")
        fig.colorbar(im, ax=axes[2], shrink=0.8)
        err = recon - source
        ok = np.isfinite(err)
        lim = float(np.percentile(np.abs(err[ok]), 99)) if ok.any() else 1.0
        rmse = float(np.sqrt(np.mean(err[ok] ** 2))) if ok.any() else float("nan")
        im = axes[3].imshow(err, extent=extent, vmin=-lim, vmax=lim, cmap="RdBu_r", interpolation="nearest")
        axes[3].set_title(f"reconstruction - source [{units}], RMSE {rmse:.3g}")
        fig.colorbar(im, ax=axes[3], shrink=0.8)
    coast = _land(grid)
    for ax in axes[:n_panels]:
        if coast is not None:
            ax.contour(grid.lons, grid.lats, coast, levels=[0.5], colors="k", linewidths=0.4, alpha=0.6)
        ax.set_xlabel("lon [deg]")
        ax.set_ylabel("lat [deg]")
    for ax in axes[n_panels:]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"output: {path} must end in .png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path
