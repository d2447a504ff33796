import subprocess
import sys

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
