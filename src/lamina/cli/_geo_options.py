"""Options shared by the ``lamina geo`` commands."""

from __future__ import annotations

import typer

CHECKPOINT = typer.Option(None, "--checkpoint", "-c", help="Encoder checkpoint directory, or bundled:NAME "
                          "(bundled:offline10 = the previous default); default: the bundled one.")
WRAP = typer.Option(False, "--wrap-lon", help="Wrap longitudes outside [-180, 180] instead of rejecting them.")
