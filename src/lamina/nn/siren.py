"""Sinusoidal representation networks (SIREN) and the residual SIREN used by Climplicit.

References:
    Sitzmann et al., "Implicit Neural Representations with Periodic Activation Functions", NeurIPS 2020.
    Gao et al., "H-SIREN: Improving implicit neural representations with hyperbolic periodic functions", 2024.
    Dollinger et al., "Climplicit: Climatic Implicit Embeddings for Global Ecological Tasks", 2025 (ReSIREN).

A SIREN layer computes ``sin(w0 * (W x + b))``. Initialisation follows Sitzmann et al.: the first layer draws
``W ~ U(-1/fan_in, 1/fan_in)``, later layers ``W ~ U(-sqrt(c / fan_in) / w0, sqrt(c / fan_in) / w0)``, so that
pre-activations stay distributed the same from layer to layer. The H-SIREN first layer computes
``sin(w0 * sinh(2 z))`` instead. The residual variant (ReSIREN) averages each hidden layer's pre-activation with
the previous one: ``z_k = (W_k h_{k-1} + b_k + z_{k-1}) / 2``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Sine(nn.Module):
    """``sin(w0 * x)``, optionally ``sin(w0 * sinh(2 x))`` (H-SIREN)."""

    def __init__(self, w0: float = 1.0, hyperbolic: bool = False):
        super().__init__()
        self.w0 = float(w0)
        self.hyperbolic = bool(hyperbolic)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.hyperbolic:
            z = torch.sinh(2.0 * z)
        return torch.sin(self.w0 * z) if self.w0 != 1.0 else torch.sin(z)

    def extra_repr(self) -> str:
        return f"w0={self.w0}, hyperbolic={self.hyperbolic}"


class SineLayer(nn.Module):
    """Linear map followed by :class:`Sine`, with SIREN initialisation.

    Args:
        dim_in: input features.
        dim_out: output features.
        w0: frequency factor of the sine.
        is_first: use the first-layer initialisation ``U(-1/dim_in, 1/dim_in)``.
        c: constant of the hidden-layer initialisation ``U(-sqrt(c/dim_in)/w0, sqrt(c/dim_in)/w0)``.
        hyperbolic: H-SIREN activation ``sin(w0 * sinh(2 z))`` (meant for the first layer).
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        *,
        w0: float = 1.0,
        is_first: bool = False,
        c: float = 6.0,
        hyperbolic: bool = False,
    ):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.activation = Sine(w0, hyperbolic=hyperbolic)
        bound = 1.0 / dim_in if is_first else math.sqrt(c / dim_in) / w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)
            self.linear.bias.uniform_(-bound, bound)

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class SIREN(nn.Module):
    """SIREN network: ``num_layers`` sine layers of width ``dim_hidden`` and a linear output layer.

    Args:
        dim_in: input features (4 for direct lon/lat + cyclic month).
        dim_hidden: width of every hidden layer (paper: 512).
        dim_out: output features (paper: 256, the embedding).
        num_layers: number of hidden sine layers, the first included (paper: 16).
        w0: frequency factor of the hidden layers (paper: 1).
        w0_initial: frequency factor of the first layer (paper: 30).
        c: hidden-layer initialisation constant.
        residual: average each hidden pre-activation with the previous one (ReSIREN).
        hyperbolic_first: H-SIREN first layer, ``sin(w0_initial * sinh(2 z))``.

    Shapes:
        ``(B, dim_in) -> (B, dim_out)``.
    """

    def __init__(
        self,
        dim_in: int,
        dim_hidden: int = 512,
        dim_out: int = 256,
        num_layers: int = 16,
        *,
        w0: float = 1.0,
        w0_initial: float = 30.0,
        c: float = 6.0,
        residual: bool = True,
        hyperbolic_first: bool = True,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, got {num_layers}")
        self.residual = bool(residual)
        self.layers = nn.ModuleList(
            [SineLayer(dim_in, dim_hidden, w0=w0_initial, is_first=True, c=c, hyperbolic=hyperbolic_first)]
            + [SineLayer(dim_hidden, dim_hidden, w0=w0, c=c) for _ in range(num_layers - 1)]
        )
        self.last = nn.Linear(dim_hidden, dim_out)
        bound = math.sqrt(c / dim_hidden) / w0
        with torch.no_grad():
            self.last.weight.uniform_(-bound, bound)
            self.last.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.layers[0]
        z = first.linear(x)  # (B, H)
        h = first.activation(z)
        for layer in self.layers[1:]:
            z_new = layer.linear(h)  # (B, H)
            if self.residual:
                z_new = (z_new + z) * 0.5
            h = layer.activation(z_new)
            z = z_new
        return self.last(h)  # (B, dim_out)

    @torch.inference_mode()
    def forward_inference(
        self, x: torch.Tensor, *, chunk: int = 1024, dtype: torch.dtype | None = None, out: torch.Tensor | None = None,
        threads: int | None = None,
    ) -> torch.Tensor:
        """Forward pass for inference, in chunks of ``chunk`` rows with preallocated buffers.

        Gives the same result as :meth:`forward` (up to float rounding) but keeps activations in cache and
        allocates nothing per layer. With ``dtype=torch.bfloat16`` the hidden matrix products run in bfloat16
        (the first layer, whose ``w0`` amplifies rounding, and the accumulation of pre-activations stay float32).

        Parallelism: with ``threads`` > 1 (default: torch's thread count) and at least two chunks, the rows are
        split into ``threads`` contiguous parts, each run through its chunks on its own thread with single-threaded
        kernels. Independent parts keep going when a core is taken by another process, where splitting every
        small matrix product across threads would wait at each product for the slowest thread.

        Shapes:
            ``x: (B, dim_in) -> (B, dim_out)`` float32.
        """
        n = x.shape[0]
        if out is None:
            out = torch.empty(n, self.last.out_features, dtype=torch.float32)
        threads = torch.get_num_threads() if threads is None else max(1, int(threads))
        parts = min(threads, n // chunk)
        if parts < 2:
            self._rows(x, out, 0, n, chunk, dtype)
            return out
        from concurrent.futures import ThreadPoolExecutor

        from lamina._process import torch_threads

        per = -(-n // (parts * chunk)) * chunk  # whole chunks per part
        bounds = [(s, min(n, s + per)) for s in range(0, n, per)]
        with torch_threads(1), ThreadPoolExecutor(len(bounds)) as pool:
            done = [pool.submit(self._rows, x, out, s, e, chunk, dtype) for s, e in bounds]
            for f in done:
                f.result()
        return out

    @torch.inference_mode()  # per thread: each worker thread enters it itself
    def _rows(self, x: torch.Tensor, out: torch.Tensor, start: int, stop: int, chunk: int,
              dtype: torch.dtype | None) -> None:
        """Rows ``start:stop`` of :meth:`forward_inference`, chunk by chunk, with this call's own buffers."""
        first, hidden = self.layers[0], self.layers[1:]
        dim_h = first.linear.out_features
        low = dtype is not None and dtype != torch.float32
        weights = [
            (layer.linear.weight.t().to(dtype) if low else layer.linear.weight.t(), layer.linear.bias)
            for layer in hidden
        ]
        w_last = self.last.weight.t().to(dtype) if low else self.last.weight.t()
        z = torch.empty(min(chunk, stop - start), dim_h)
        zn = torch.empty_like(z)
        h = torch.empty_like(z)
        hl = torch.empty(z.shape, dtype=dtype) if low else None
        for s in range(start, stop, chunk):
            e = min(s + chunk, stop)
            m = e - s
            zc, znc, hc = z[:m], zn[:m], h[:m]
            torch.addmm(first.linear.bias, x[s:e], first.linear.weight.t(), out=zc)
            hc.copy_(first.activation(zc))
            for (wt, b), layer in zip(weights, hidden, strict=True):
                w0 = layer.activation.w0
                if low:
                    hl[:m].copy_(hc)
                    znc.copy_(torch.addmm(b.to(dtype), hl[:m], wt))
                else:
                    torch.addmm(b, hc, wt, out=znc)
                if self.residual:
                    znc.add_(zc).mul_(0.5)
                if w0 != 1.0:
                    torch.mul(znc, w0, out=hc)
                    hc.sin_()
                else:
                    torch.sin(znc, out=hc)
                zc, znc = znc, zc
            if low:
                hl[:m].copy_(hc)
                out[s:e] = torch.addmm(self.last.bias.to(dtype), hl[:m], w_last).float()
            else:
                torch.addmm(self.last.bias, hc, w_last, out=out[s:e])
