"""Issue 27 (items 1 and 11) for lamina weights: ProbeX sizes checked against memory before a zoo is read;
``index add`` that adds nothing fails like ``index build``."""

import pytest
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import InputError
from lamina.weights.experts import ProbeXMixture
from lamina.weights.probes.probex import ProbeXConfig
from lamina.weights.serve.index import build_index
from lamina.weights.serve.predict import catalogue_sources

runner = CliRunner()


def _fails_cleanly(result, *fragments):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ") and "Traceback" not in result.output, result.output
    for f in fragments:
        assert f in err, err
    return err


@pytest.mark.parametrize("option", ["--r-u", "--r-v", "--r-t"])
def test_probex_sizes_beyond_memory_are_refused_before_the_zoo_is_read(tiny_zoo, tmp_path, option):
    out = tmp_path / "probe"
    r = runner.invoke(app, ["weights", "train", str(tiny_zoo), "-o", str(out), "--layer", "fc1", "--epochs", "1",
                            option, "99999999999"])
    _fails_cleanly(r, "r_u, r_v, r_t:", "of memory", "99999999999")
    assert not out.exists()
    with pytest.raises(InputError, match="of memory"):
        ProbeXConfig(r_u=100_000, r_v=100_000)


def test_index_add_that_adds_nothing_exits_non_zero(tiny_zoo, tiny_probe, tmp_path):
    ix, _ = build_index(ProbeXMixture.load(tiny_probe), catalogue_sources(tiny_zoo)[:4])
    path = ix.save(tmp_path / "models.index")
    before = path.read_bytes()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    r = runner.invoke(app, ["weights", "index", "add", str(path), str(junk), "--quiet"])  # skipped: nothing added
    _fails_cleanly(r, "nothing was added", "1 models skipped")
    assert path.read_bytes() == before
