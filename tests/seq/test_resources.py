"""Sizes that set an allocation are checked against the memory available before anything is allocated; a failed
torch allocation reads as the CLI's out-of-memory line; overflowing boxes are refused (issue 27, items 1 and 11)."""

import pytest
from typer.testing import CliRunner

from lamina.cli import app

from ..cli_checks import fails_cleanly as _fails_cleanly

runner = CliRunner()


@pytest.mark.parametrize("args, words", [
    (["train", "sort", "--d-model", "100000000000", "--steps", "2"], ["config:", "d_model 100000000000", "of memory"]),
    (["train", "sort", "--n", "100000000000000000000", "--steps", "2"], ["config:", "of memory", "--n"]),
    (["train", "sort", "--positional", "none", "--n", "10000000000", "--steps", "2"], ["train:", "of memory"]),
    (["sweep", "sort", "--vary", "d_model", "--values", "2,100000000000", "--steps", "2"], ["train:", "of memory"]),
    (["compare", "sort", "--n", "2", "--widths", "4,100000000000000", "--steps", "2"], ["train:", "of memory"]),
    (["construct", "sort", "--n", "100000000000000000000"], ["n: a construction for n=", "max_params"]),
    (["construct", "sort", "--n", "2", "--verify-random", "99999999999"], ["--verify-random", "of memory"]),
    (["construct", "sort", "--domain", "-1e308", "1e308"], ["domain:", "overflows float64"]),
])
def test_absurd_sizes_are_refused_before_anything_is_allocated_or_written(tmp_path, args, words):
    out = tmp_path / "out"
    r = runner.invoke(app, ["seq", *args, "-o", str(out)])
    _fails_cleanly(r, *words)
    assert not out.exists()


def test_a_failed_torch_allocation_is_the_one_line_out_of_memory_error(tmp_path, monkeypatch):
    """torch raises RuntimeError ("DefaultCPUAllocator: can't allocate memory"), not MemoryError; with the memory
    check out of the way (an OS that does not say what is available), the CLI still answers in one line."""
    monkeypatch.setattr("lamina._validation.available_memory", lambda: None)
    out = tmp_path / "out"
    r = runner.invoke(app, ["seq", "train", "sort", "--d-model", "1000000000000000", "--steps", "1", "-o", str(out)])
    _fails_cleanly(r, "out of memory")
    assert not (out / "model").exists() and not (out / "train.json").exists()
