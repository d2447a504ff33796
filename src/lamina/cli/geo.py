"""``lamina geo``: climate implicit embeddings (Climplicit)."""

from __future__ import annotations

from lamina.cli._common import new_app

app = new_app("Climate implicit embeddings: (lon, lat, month) -> embedding anywhere on Earth.")
