"""What every CLI sub-app shares: turning lamina's errors into one line and exit code 2."""

from __future__ import annotations

import sys

import click
import typer
from typer.core import TyperGroup

from lamina.errors import LaminaError

EXIT_BAD_INPUT = 2


class CLIError(click.ClickException):
    """A user-caused failure: printed as ``error: <message>`` on stderr, exit code 2, no traceback."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class LaminaGroup(TyperGroup):
    """Top-level group: any :class:`LaminaError` (or unreadable path) raised by a command becomes a CLIError."""

    def invoke(self, ctx: click.Context):
        # Typer vendors its own click, whose main loop does not catch ``click.ClickException``: print and exit here.
        try:
            return super().invoke(ctx)
        except CLIError as exc:
            exc.show()
        except LaminaError as exc:
            CLIError(str(exc)).show()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            name = getattr(exc, "filename", None)
            CLIError(f"{name}: {exc.strerror}" if name else str(exc)).show()
        sys.exit(EXIT_BAD_INPUT)


def new_app(help: str) -> typer.Typer:
    """A Typer sub-app with lamina's settings."""
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)


def echo_json(obj) -> None:
    """Print ``obj`` as JSON on stdout."""
    from lamina._io import dumps_json

    sys.stdout.write(dumps_json(obj))
