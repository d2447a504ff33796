"""``lamina seq``: single-layer transformers as universal approximators."""

from __future__ import annotations

from lamina.cli._common import new_app

app = new_app("Single-layer transformers: constructed with a certified error, and trained.")
