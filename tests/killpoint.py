"""Deterministic kill -9 for tests: a command that SIGKILLs itself right after a named function's N-th call.

Instead of racing a polling loop against a deadline, the subprocess runs the real command with one function
wrapped: after that function returns for the ``calls``-th time, the process sends itself SIGKILL, so the kill always
lands at the same point (after the 2nd checkpoint, the 3rd block, ...) however busy the machine is.
"""

from __future__ import annotations

import sys

_CODE = """
import functools, os, signal, sys, importlib
mod_name, attr, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
owner = importlib.import_module(mod_name)
path = attr.split(".")
for p in path[:-1]:
    owner = getattr(owner, p)
original = getattr(owner, path[-1])
count = [0]
@functools.wraps(original)
def wrapped(*args, **kwargs):
    out = original(*args, **kwargs)
    count[0] += 1
    if count[0] == calls:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(owner, path[-1], wrapped)
sys.argv = ["-c", *sys.argv[4:]]  # as the command would see them: argv[0] first
{run}
"""


def killed_cli(target: str, calls: int, cli_args: list[str]) -> list[str]:
    """``python -c ...`` running ``lamina CLI_ARGS`` that kills itself after ``target`` (``"module:attr"``, attr
    may be dotted: ``Class.method``) returned ``calls`` times."""
    return killed_code(target, calls, "from lamina.cli import main; sys.argv[0] = 'lamina'; main()", cli_args)


def killed_code(target: str, calls: int, code: str, args: list[str]) -> list[str]:
    """The same around arbitrary Python ``code`` (which sees ``sys.argv == ["-c", *args]``, as under ``-c``)."""
    mod, attr = target.split(":")
    return [sys.executable, "-c", _CODE.replace("{run}", code), mod, attr, str(calls), *args]
