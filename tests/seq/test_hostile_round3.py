"""Hostile inputs of round 3 for lamina.seq: eps below float64 resolution, a diverging learning rate, sweeps
through repeated values, mixed float dtypes."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import InputError
from lamina.seq.construct import construct, rounding_floor
from lamina.seq.targets import MovingAverage, Sort

runner = CliRunner()


def test_eps_below_the_float64_floor_is_refused_and_the_floor_is_in_the_certificate(tmp_path):
    floor = rounding_floor(Sort(2, 1))
    assert 1e-15 < floor < 1e-13
    with pytest.raises(InputError, match="below the float64 rounding floor"):
        construct(Sort(2, 1), eps=1e-300)
    r = runner.invoke(app, ["seq", "construct", "sort", "--n", "2", "--eps", "1e-300", "-o", str(tmp_path / "c")])
    assert r.exit_code == 2 and "rounding floor" in r.output
    assert not (tmp_path / "c").exists()
    c = construct(Sort(2, 1), eps=1e-2)
    assert c.certificate.rounding_floor == pytest.approx(floor)


def test_diverging_training_stops_with_an_error_and_saves_no_model(tmp_path):
    out = tmp_path / "t"
    r = runner.invoke(app, ["seq", "train", "sort", "--n", "3", "--steps", "200", "--eval-every", "100",
                            "--lr", "1e6", "--threads", "1", "--num-test", "64", "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert "diverged" in r.output and "lower --lr" in r.output
    assert not (out / "model").exists() and not (out / "train.json").exists()


@pytest.mark.parametrize("values", ["2,2", "1"])
def test_sweep_needs_two_distinct_values(tmp_path, values):
    r = runner.invoke(app, ["seq", "sweep", "moving-average", "--vary", "heads", "--values", values, "--steps", "5",
                            "-o", str(tmp_path / "s")])
    assert r.exit_code == 2 and "two or more distinct" in r.output, r.output


def test_mixed_float_dtypes_run_in_the_models_dtype():
    c = construct(MovingAverage(3, 1), eps=5e-2)
    x64 = torch.rand(4, 3, 1, dtype=torch.float64)
    y64 = c.model(x64)
    y32 = c.model(x64.float())  # float32 data into a float64 construction
    assert y32.dtype == c.model.dtype == torch.float64
    np.testing.assert_allclose(y32.detach().numpy(), y64.detach().numpy(), atol=1e-6)
    m32 = c.model.float()
    assert m32(x64).dtype == torch.float32  # and float64 data into a float32 model
