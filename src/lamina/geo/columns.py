"""Names shared by every output of the encoder: the months of the default embedding and the embedding columns.

A leaf module (it imports nothing from lamina), so that the encoder, tables, points and rasters can all use the
same names without importing one another.
"""

from __future__ import annotations

EMBED_MONTHS = (3, 6, 9, 12)
"""Months whose embeddings are concatenated when no month is given (as in the paper)."""


def embedding_columns(encoder, month_given: bool) -> list[str]:
    """Output column (and band) names: ``emb_000..`` for one month, ``emb_m03_000..`` for months 3, 6, 9, 12.

    Args:
        encoder: anything with an ``embedding_dim`` (a ClimateEncoder).
        month_given: True when one month is embedded, False for the 4-month concatenation.
    """
    d = encoder.embedding_dim
    if month_given:
        return [f"emb_{i:03d}" for i in range(d)]
    return [f"emb_m{m:02d}_{i:03d}" for m in EMBED_MONTHS for i in range(d)]
