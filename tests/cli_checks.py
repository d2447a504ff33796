"""Checks shared by the CLI tests: a refusal is one line on stderr with exit code 2, and what a folder holds after."""

from __future__ import annotations


def fails_cleanly(result, *fragments) -> str:
    """Assert a CliRunner result is a clean refusal (exit 2, one ``error:`` line, no traceback) naming every
    fragment; return the line."""
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in result.output, result.output
    for f in fragments:
        assert f in err, err
    return err


def only(folder, *names) -> None:
    """Assert ``folder`` holds exactly the entries ``names``."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
