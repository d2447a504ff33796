"""What every CLI sub-app shares: turning lamina's errors into one line and exit code 2."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from lamina.errors import LaminaError

EXIT_BAD_INPUT = 2


def fail(message: str) -> typer.Exit:
    """Print ``error: <message>`` on stderr and return the exit (code 2) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=EXIT_BAD_INPUT)


class LaminaGroup(TyperGroup):
    """Top-level group: a :class:`LaminaError` (or unreadable path) raised by any command becomes one line on
    stderr and exit code 2, with no traceback. Other exceptions are bugs and keep their traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LaminaError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            name = getattr(exc, "filename", None)
            raise fail(f"{name}: {exc.strerror}" if name else str(exc)) from None


def new_app(help: str) -> typer.Typer:
    """A Typer sub-app with lamina's settings."""
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)


def echo_json(obj) -> None:
    """Print ``obj`` as JSON on stdout."""
    from lamina._io import dumps_json

    sys.stdout.write(dumps_json(obj))
