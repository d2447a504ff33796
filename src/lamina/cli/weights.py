"""``lamina weights``: learning on model weights (ProbeX)."""

from __future__ import annotations

from lamina.cli._common import new_app

app = new_app("Learning on model weights (ProbeX): what a model was trained on, from one layer.")
