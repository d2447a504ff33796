"""The ``lamina`` command line: thin wrappers that parse, call the library, and print or write.

Sub-apps: ``lamina geo`` (climate implicit embeddings), ``lamina weights`` (learning on model weights),
``lamina seq`` (single-layer transformers). Bad input prints one ``error: ...`` line and exits with code 2.
"""

from __future__ import annotations

import typer

from lamina import __version__
from lamina.cli._common import LaminaGroup
from lamina.cli.geo import app as geo_app
from lamina.cli.seq import app as seq_app
from lamina.cli.weights import app as weights_app

app = typer.Typer(
    cls=LaminaGroup,
    help="lamina: learned representations read out by a single layer.",
    no_args_is_help=True,
    add_completion=True,  # lamina --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)
app.add_typer(geo_app, name="geo")
app.add_typer(weights_app, name="weights")
app.add_typer(seq_app, name="seq")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lamina {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """lamina: learned representations read out by a single layer."""


def main() -> None:
    app()
