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
