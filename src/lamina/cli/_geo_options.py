"""Options (and the checkpoint provenance) shared by the ``lamina geo`` commands."""

from __future__ import annotations

import typer

CHECKPOINT = typer.Option(None, "--checkpoint", "-c", help="Encoder checkpoint directory, or bundled:NAME "
                          "(bundled:elevwarmv1 = the previous default); default: the bundled one.")
WRAP = typer.Option(False, "--wrap-lon", help="Wrap longitudes outside [-180, 180] instead of rejecting them.")


def checkpoint_provenance(checkpoint) -> dict:
    """``{"checkpoint", "checkpoint_sha256"}`` of an encoder checkpoint (None: the bundled default) for the JSON of a
    command that wrote files; reads its config.json only, no weights."""
    from lamina._io import read_checkpoint_config
    from lamina.geo.encoder import resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    return {"checkpoint": str(path), "checkpoint_sha256": read_checkpoint_config(path)["sha256"]}
