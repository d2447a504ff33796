import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lamina import __version__
from lamina.cli import app

runner = CliRunner()


def test_help_lists_the_three_parts():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for part in ("geo", "weights", "seq"):
        assert part in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "lamina.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert __version__ in out.stdout


def test_a_missing_extra_is_named_with_its_install_command(monkeypatch):
    """In an install without the weights extra, a command that needs it says what to install (one line, exit 2)."""
    import builtins

    import typer

    from lamina.cli._common import LaminaGroup

    real_import = builtins.__import__

    def without_text_encoder(name, *args, **kwargs):
        if name.split(".")[0] == "sentence_transformers":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    demo = typer.Typer(cls=LaminaGroup)

    @demo.command()
    def search() -> None:
        from sentence_transformers import SentenceTransformer  # noqa: F401

    @demo.command()
    def other() -> None:
        import not_a_lamina_dependency  # noqa: F401

    monkeypatch.setattr(builtins, "__import__", without_text_encoder)
    r = runner.invoke(demo, ["search"])
    assert r.exit_code == 2 and "\n" not in r.stderr.strip()
    assert "needs the 'weights' extra" in r.stderr and "pip install 'lamina[weights]'" in r.stderr
    r = runner.invoke(demo, ["other"])  # a module no extra provides is a bug: its traceback is kept
    assert isinstance(r.exception, ModuleNotFoundError)


def test_help_shows_defaults_written_in_help_strings():
    """Help text is shown as written: a "[default: ...]" inside a help string is not eaten as rich markup."""
    from typer.testing import CliRunner

    from lamina.cli import app

    r = CliRunner().invoke(app, ["weights", "train", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "[default: ProbeXConfig's, 64]" in r.output


def _commands(group, path=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer bundles its own click)
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_one_progress_switch_spelled_the_same_everywhere():
    """Every command with a progress bar takes --quiet, -q and --no-progress; -v is not taken by an option (it
    stays free for verbosity); the root offers shell completion."""
    import typer.main

    from lamina.cli import app

    root = typer.main.get_command(app)
    switches = 0
    for path, cmd in _commands(root):
        for p in cmd.params:
            names = set(p.opts) | set(getattr(p, "secondary_opts", []))
            assert "-v" not in names, f"lamina {' '.join(path)}: -v is taken by {p.name}"
            if p.name in ("progress", "quiet"):
                switches += 1
                assert {"--quiet", "-q", "--no-progress"} <= names, f"lamina {' '.join(path)}: {sorted(names)}"
    assert switches >= 9
    assert "--install-completion" in {o for p in root.params for o in p.opts}


def test_bytes_that_are_not_utf8_are_refused_in_one_line(tmp_path):
    """A CSV header in another encoding, an output name or a search query with non-UTF-8 bytes (arguments arrive as
    surrogate escapes, PEP 383): one line, exit code 2, nothing written."""
    from typer.testing import CliRunner

    from lamina.cli import app

    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"l\xffon,lat\n8.5,47.3\n")
    r = runner.invoke(app, ["geo", "embed", str(bad), "-o", str(tmp_path / "o.parquet"), "--no-progress"])
    assert r.exit_code == 2 and "column name is not UTF-8 text (byte 0xff" in r.output, r.output
    good = tmp_path / "ok.csv"
    good.write_text("lon,lat\n8.5,47.3\n")
    name = str(tmp_path / "out") + b"\xff".decode("utf-8", "surrogateescape") + ".parquet"
    r = runner.invoke(app, ["geo", "embed", str(good), "-o", name])
    assert r.exit_code == 2 and "not UTF-8 text" in r.output
    r = runner.invoke(app, ["weights", "search", "a " + b"\xfe".decode("utf-8", "surrogateescape") + " coat",
                            "--zoo", str(tmp_path)])
    assert r.exit_code == 2 and "argument 3" in r.output and "not UTF-8" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "ok.csv"]


# The commands that write no file: they print their answer and nothing else. Every other command writes files and
# prints what it wrote as one JSON object on stdout (lamina.cli._common.echo_written): messages for people go to
# stderr, so `lamina ... | jq` always reads JSON.
WRITES_NOTHING = {"geo info", "geo sources", "weights search", "seq targets"}


def _command_names() -> list[str]:
    import typer.main

    return [" ".join(path) for path, _ in _commands(typer.main.get_command(app))]


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory):
    """An UNTRAINED tiny encoder, a points table with a target column, a fine-tuned folder on them and a tiny model
    file: inputs for small real runs of the file-writing commands."""
    import numpy as np
    import pandas as pd
    import torch
    from safetensors.torch import save_file

    from lamina.geo.finetune import finetune

    from .geo.test_encoder import tiny_encoder

    root = tmp_path_factory.mktemp("inputs")
    tiny_encoder().save(root / "enc")
    rng = np.random.default_rng(0)
    lat = rng.uniform(-60, 70, 60)
    pd.DataFrame({"lon": rng.uniform(-180, 180, 60), "lat": lat, "temp": 30 * np.cos(np.deg2rad(lat))}).to_csv(
        root / "pts.csv", index=False)
    finetune(root / "pts.csv", target="temp", checkpoint=root / "enc", epochs=1, threads=1, progress=False).save(
        root / "ft")
    g = torch.Generator().manual_seed(0)
    save_file({"fc1.weight": torch.randn(16, 64, generator=g), "fc1.bias": torch.zeros(16),
               "fc2.weight": torch.randn(4, 16, generator=g), "fc2.bias": torch.zeros(4)}, str(root / "m.safetensors"))
    return root


def _small_run(name: str, inp, out) -> list[str] | None:
    """Arguments of a small real run of command ``name`` (seconds), or None for the commands whose runs need a
    trained zoo or minutes (their own modules run them end to end)."""
    enc, pts = ["-c", str(inp / "enc")], str(inp / "pts.csv")
    seq_model = ["--n", "3", "--d", "1", "--d-model", "8", "--heads", "2", "--d-ff", "8", "--batch-size", "16",
                 "--num-train", "64", "--num-test", "16", "--threads", "1", "--steps", "4"]
    return {
        "geo embed": ["geo", "embed", pts, "-o", str(out / "e.csv"), "-m", "6", *enc, "-q"],
        "geo reconstruct": ["geo", "reconstruct", pts, "-o", str(out / "r.parquet"), "-m", "6", *enc, "-q"],
        "geo raster": ["geo", "raster", "--bbox", "5", "45", "7", "46", "-r", "0.5", "-m", "6", "-o",
                       str(out / "r.tif"), *enc, "-q"],
        "geo finetune": ["geo", "finetune", pts, "-t", "temp", "-o", str(out / "ft"), "--epochs", "1", "--threads",
                         "1", *enc, "-q"],
        "geo probe-predict": ["geo", "probe-predict", str(inp / "ft"), pts, "-o", str(out / "p.parquet")],
        "geo probe-fit": ["geo", "probe-fit", "city-temperature", "--n", "40", "-o", str(out / "probe"), *enc],
        "geo evaluate": ["geo", "evaluate", "--quick", "--tasks", "city-temperature", "--encoders", "lonlat",
                         "--splits", "random", "--seeds", "1", "--jobs", "1", "-o", str(out / "ev"), *enc],
        "geo pretrain": ["geo", "pretrain", "-o", str(out / "run"), "--stack", "offline:elevation", "--layers", "1",
                         "--hidden", "8", "--dim", "4", "--steps", "2", "--batch-size", "64", "--eval-every", "2",
                         "-q"],
        "weights catalogue add": ["weights", "catalogue", "add", str(out / "cat"), str(inp / "m.safetensors"),
                                  "--categories", "bird,fish"],
        "seq construct": ["seq", "construct", "smooth-cummax", "--n", "2", "--d", "1", "--eps", "0.05", "--param",
                          "tau=5", "--verify-random", "200", "-o", str(out / "c")],
        "seq train": ["seq", "train", "moving-average", *seq_model, "--eval-every", "2", "-o", str(out / "t")],
        "seq sweep": ["seq", "sweep", "moving-average", *seq_model, "--values", "1,2", "-o", str(out / "s")],
        "seq compare": ["seq", "compare", "smooth-cummax", "--eps", "0.1", "--widths", "4", "--steps", "10",
                        "--threads", "1", "-o", str(out / "cmp")],
    }.get(name)


@pytest.mark.parametrize("name", _command_names())
def test_every_command_that_writes_files_prints_json_of_what_it_wrote(name, small_inputs, tmp_path):
    """The rule of issue 26: a command that writes files prints one JSON object on stdout naming what it wrote
    (`written`: paths), its counts and provenance (`command`, `lamina_version`, the checkpoint / probe / model
    sha256 where one made the output). Every command is either listed in WRITES_NOTHING (and takes no output
    option) or reports through `echo_written`; the cheap ones are also run for real here. A new command that writes
    files without the JSON fails this test."""
    import inspect
    import json
    from pathlib import Path

    import typer.main

    cmd = dict((" ".join(p), c) for p, c in _commands(typer.main.get_command(app)))[name]
    outputs = {o for p in cmd.params for o in p.opts} & {"-o", "--out", "--output"}
    reports = "echo_written" in inspect.unwrap(cmd.callback).__code__.co_names
    if name in WRITES_NOTHING:
        assert not outputs and not reports, f"lamina {name} writes files: take it out of WRITES_NOTHING"
        return
    assert reports, f"lamina {name}: print what was written with lamina.cli._common.echo_written (or, if it " \
                    "writes no file, add it to WRITES_NOTHING)"
    args = _small_run(name, small_inputs, tmp_path)
    if args is None:
        return
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # stdout is the JSON and nothing else (progress bars and messages: stderr)
    assert doc["command"] == name and doc["lamina_version"] == __version__
    assert doc["written"] and all(Path(p).exists() for p in doc["written"]), doc["written"]
    assert any(isinstance(v, int) and not isinstance(v, bool) for v in doc.values()), "no count"
    if name.startswith("geo "):
        assert any(k.endswith("sha256") and v for k, v in doc.items()), "no checkpoint / probe sha256"
