"""The stack specification of ``--stack`` is parsed by the library; the CLI registers its commands explicitly."""

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from lamina.errors import InputError
from lamina.geo.data.sources import (
    BUNDLED_VARIABLES,
    SOURCES,
    parse_stack_spec,
    sources_table,
    training_stack_spec,
)

runner = CliRunner()


def test_offline_and_chelsa_specs(tiny_chelsa):  # tiny_chelsa: SYNTHETIC CHELSA-named GeoTIFFs (conftest)
    assert parse_stack_spec(None) is None
    st = parse_stack_spec("offline:elevation,wind_u")
    assert st.names == ["elevation", "wind_u"] and st.name == "offline"
    ch = parse_stack_spec(f"chelsa:{tiny_chelsa}")
    assert ch.name == "chelsa" and ch.names == ["bio1", "pr", "tas"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("defaults", "stack: expected 'default', 'offline:VAR,VAR,...' or 'chelsa:FOLDER', got 'defaults'"),
        ("offline:elevation,nope", "variables: unknown ['nope']"),
        ("chelsa:/nonexistent/folder", "folder: /nonexistent/folder is not a directory"),
    ],
)
def test_bad_specs_are_input_errors(spec, message):
    with pytest.raises(InputError) as err:
        parse_stack_spec(spec)
    assert message in str(err.value)


def test_sources_table_lists_every_offline_variable():
    table = sources_table()
    assert list(table) == list(SOURCES)
    assert [k for k, v in table.items() if v["in_default"]] == sorted(BUNDLED_VARIABLES, key=list(SOURCES).index)
    assert table["elevation"]["units"] == "m" and table["elevation"]["shape"] == [2161, 4320]
    assert table["sst"]["grid_deg"] == 2.0 and table["sst"]["monthly"] is True


def test_cli_commands_are_registered_explicitly_in_order():
    from lamina.cli import app
    from lamina.cli.geo import COMMANDS
    from lamina.cli.geo import app as geo_app

    names = [c.name for c in geo_app.registered_commands]
    assert names == [n for n, _ in COMMANDS]
    assert names == ["embed", "reconstruct", "raster", "map", "pretrain", "info", "sources", "evaluate", "probe-fit",
                     "probe-predict", "finetune"]  # fmt: skip
    r = runner.invoke(app, ["geo", "pretrain", "--out", "unused", "--stack", "bogus"])
    assert r.exit_code == 2 and "stack: expected 'default'" in r.stderr


def test_training_stack_spec_names_the_offline_fields_only():
    offline = SimpleNamespace(metadata={"training": {"stack": "offline-default"}}, variable_names=["sst", "elevation"])
    assert training_stack_spec(offline) == "offline:sst,elevation"
    chelsa = SimpleNamespace(metadata={"training": {"stack": "chelsa"}}, variable_names=["tas"])
    assert training_stack_spec(chelsa) is None
    assert training_stack_spec(SimpleNamespace(metadata={}, variable_names=["t"])) is None
