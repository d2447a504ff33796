"""Climate encoder with a learned multi-resolution grid (``grid_resolutions``) and grid dropout.

Networks here are UNTRAINED or trained for a few steps on SYNTHETIC CHELSA-named files (conftest.tiny_chelsa).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import lamina.geo
from lamina.errors import InputError
from lamina.geo.data.grid import Variable
from lamina.geo.data.sources.chelsa import chelsa_stack
from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig, bundled_checkpoint_path
from lamina.geo.pretrain import PretrainConfig, pretrain
from tests.geo.test_pretrain import _cfg as pretrain_cfg
from tests.geo.test_pretrain import _weights

GRID = dict(location_encoding="sphere", grid_resolutions=(20.0, 5.0), grid_features=2)
POINTS = dict(lon=[8.55, -179.9, 120.0], lat=[47.37, 60.0, -33.0])


def _encoder(**cfg) -> ClimateEncoder:
    variables = [Variable("t", "degC"), Variable("elevation", "m", monthly=False)]
    torch.manual_seed(0)
    config = EncoderConfig(n_variables=2, dim_hidden=32, num_layers=3, dim_embedding=8, static_variables=[1],
                           **{**GRID, **cfg})
    enc = ClimateEncoder(ClimateModule(config), variables, [10.0, 500.0], [5.0, 300.0])
    with torch.no_grad():  # grid values as after training (they start at zero)
        for t in enc.module.grid.tables:
            t.copy_(torch.randn(t.shape))
    return enc


def test_the_grid_changes_the_embedding_and_survives_save_and_load(tmp_path):
    enc = _encoder()
    assert enc.config.dim_in == 3 + 2 * 2 + 2
    with_grid = enc.embed(**POINTS, month=5)
    with torch.no_grad():
        for t in enc.module.grid.tables:
            t.zero_()
    assert not np.allclose(enc.embed(**POINTS, month=5), with_grid)  # the grid's features reach the network
    enc = _encoder()
    enc.save(tmp_path / "ck")
    again = lamina.geo.load(tmp_path / "ck")
    assert again.config.grid_resolutions == (20.0, 5.0) and again.config.grid_features == 2
    np.testing.assert_array_equal(again.embed(**POINTS, month=5), with_grid)
    np.testing.assert_array_equal(again.reconstruct(**POINTS, month=5), enc.reconstruct(**POINTS, month=5))
    json.loads((tmp_path / "ck" / "config.json").read_text())  # grid resolutions stored as JSON


def test_embed_matches_the_training_forward_and_the_torch_module():
    enc = _encoder()
    lon, lat = np.array(POINTS["lon"]), np.array(POINTS["lat"])
    x = enc.module.encode_inputs(torch.from_numpy(lon), torch.from_numpy(lat), torch.full((3,), 5))
    with torch.no_grad():
        emb, _ = enc.module(x)
    np.testing.assert_allclose(enc.embed(lon=lon, lat=lat, month=5), emb.numpy(), rtol=1e-5, atol=1e-5)
    from lamina.geo.location_encoder import LocationEncoder

    module = LocationEncoder(enc)
    with torch.no_grad():
        out = module(torch.tensor(np.column_stack([lon, lat])), month=5)
    np.testing.assert_allclose(out.numpy(), emb.numpy(), rtol=1e-5, atol=1e-5)


def test_grid_keep_zero_is_the_network_without_grid_features():
    enc = _encoder()
    x = enc.module.encode_inputs(torch.tensor([10.0, 20.0]), torch.tensor([0.0, 40.0]), torch.tensor([1, 7]))
    with torch.no_grad():
        dropped = enc.module(x, torch.tensor([0.0, 1.0]))[1]
        kept = enc.module(x)[1]
        for t in enc.module.grid.tables:
            t.zero_()
        bare = enc.module(x)[1]
    torch.testing.assert_close(dropped[0], bare[0])
    torch.testing.assert_close(dropped[1], kept[1])


@pytest.mark.parametrize(("kw", "match"), [
    (dict(grid_resolutions=(0.7,)), "does not divide 180"),
    (dict(grid_resolutions=(0.0,)), "grid_resolutions"),
    (dict(grid_resolutions=(float("nan"),)), "grid_resolutions"),
    (dict(grid_resolutions=(1.0, 1.0)), "distinct"),
    (dict(grid_resolutions="1,2"), "list of node spacings"),
    (dict(grid_resolutions=(90.0,) * 9), "at most 8"),
    (dict(grid_resolutions=(1.0,), location_encoding="direct"), "needs location_encoding 'sphere'"),
    (dict(grid_resolutions=(1.0,), location_encoding="sphere", grid_features=0), "grid_features"),
])
def test_bad_grid_settings_are_refused(kw, match):
    with pytest.raises(InputError, match=match):
        ClimateModule(EncoderConfig(n_variables=2, dim_hidden=8, num_layers=2, dim_embedding=4, **kw))


def test_the_grid_counts_in_the_memory_check(monkeypatch):
    monkeypatch.setattr("lamina._validation.available_memory", lambda: 64 << 20)  # a machine with 64 MiB free
    small = dict(n_variables=2, dim_hidden=8, num_layers=2, dim_embedding=4, location_encoding="sphere")
    ClimateModule(EncoderConfig(**small, grid_resolutions=(2.0,)))  # 16k values: fits
    with pytest.raises(InputError, match=r"config: a climate encoder of .* more than the 67.1 MB available; .*--grid"):
        ClimateModule(EncoderConfig(**small, grid_resolutions=(0.25,), grid_features=32))  # 33 M values, 133 MB


def _cfg(**kw):
    return pretrain_cfg(**{"max_steps": 40, "eval_every": 20, "checkpoint_every": 20, "grid_dropout": 0.3, **kw})


def test_pretraining_with_grid_dropout_learns_and_resumes_exactly(tiny_chelsa, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "bio1"])
    cfg = EncoderConfig(n_variables=2, dim_hidden=32, num_layers=3, dim_embedding=8, static_variables=[1], **GRID)
    pretrain(stack, cfg, _cfg(), tmp_path / "straight", progress=False)
    hist = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    trained = _weights(tmp_path / "straight" / "final")
    assert torch.count_nonzero(trained["grid.tables.1"]) > 0  # the grid learned
    # 20 steps, then 20 more (the constant schedule may grow max_steps): the same masks, the same weights
    pretrain(stack, cfg, _cfg(max_steps=20), tmp_path / "split", progress=False)
    pretrain(stack, cfg, _cfg(max_steps=40), tmp_path / "split", progress=False)
    for k, v in _weights(tmp_path / "split" / "final").items():
        torch.testing.assert_close(v, trained[k], rtol=0, atol=0)
    with pytest.raises(InputError, match=r"another recipe \(grid_dropout: 0.3 -> 0.1\)"):
        pretrain(stack, cfg, _cfg(max_steps=60, grid_dropout=0.1), tmp_path / "split", progress=False)


def test_grid_dropout_needs_a_grid_and_a_probability(tiny_chelsa, tmp_path):
    for bad in (1.0, -0.1, float("nan"), "0.2", True):
        with pytest.raises(InputError, match="grid_dropout"):
            PretrainConfig(grid_dropout=bad)
    stack = chelsa_stack(tiny_chelsa, ["tas", "bio1"])
    plain = EncoderConfig(n_variables=2, dim_hidden=8, num_layers=2, dim_embedding=4, location_encoding="sphere")
    with pytest.raises(InputError, match="grid_dropout: 0.3 needs a learned grid"):
        pretrain(stack, plain, _cfg(), tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(("args", "match"), [
    (["--grid", "1,x"], "--grid: expected node spacings"),
    (["--grid", "0.7"], "does not divide 180"),
    (["--grid", "1", "--location-encoding", "direct"], "needs location_encoding 'sphere'"),
    (["--grid-dropout", "0.2", "--location-encoding", "sphere"], "needs a learned grid"),
])
def test_cli_grid_errors_are_one_line_and_make_nothing(tiny_chelsa, tmp_path, args, match):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lamina.cli", "geo", "pretrain", "--stack", f"chelsa:{tiny_chelsa}", "-o", str(out),
           "--layers", "2", "--hidden", "8", "--dim", "4", "--steps", "2", "--no-progress", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert __import__("re").search(match, lines[0]), lines[0]
    assert not out.exists()


def test_checkpoints_and_states_written_before_the_grid_still_warm_start_and_resume(tiny_chelsa, tmp_path):
    from lamina.geo.pretrain import _parent_record

    old = lamina.geo.load("bundled:land70v2")  # written before grid_resolutions existed: no such key in its config
    raw = json.loads((bundled_checkpoint_path("land70v2") / "config.json").read_text())["config"]
    assert "grid_resolutions" not in raw
    record = _parent_record("bundled:land70v2", old.config, old.variable_names)
    assert record["sha256"] and record["checkpoint"] == "bundled:land70v2"
    # a training state of that age: its encoder config lacks the grid keys, its recipe lacks grid_dropout
    stack = chelsa_stack(tiny_chelsa, ["tas", "bio1"])
    cfg = EncoderConfig(n_variables=2, dim_hidden=16, num_layers=2, dim_embedding=8, location_encoding="sphere")
    pretrain(stack, cfg, _cfg(max_steps=10, grid_dropout=0.0), tmp_path / "r", progress=False)
    state = torch.load(tmp_path / "r" / "state.pt", weights_only=True)
    for k in ("grid_resolutions", "grid_features", "terrain"):
        del state["encoder_config"][k]
    del state["pretrain_config"]["grid_dropout"]
    torch.save(state, tmp_path / "r" / "state.pt")
    pretrain(stack, cfg, _cfg(max_steps=20, grid_dropout=0.0), tmp_path / "r", progress=False)
    assert json.loads((tmp_path / "r" / "history.json").read_text())[-1]["step"] == 20


def test_lon_lat_recovery_is_exact_near_the_poles_and_differentiable():
    from lamina.geo.encoder import lon_lat_of, unit_vector

    lat = torch.tensor([89.99, -89.999, 45.0, 0.0, 90.0, -90.0], dtype=torch.float64)
    lon = torch.tensor([12.5, -170.0, 179.99, -180.0, 0.0, 33.0], dtype=torch.float64)
    got_lon, got_lat = lon_lat_of(unit_vector(lon, lat).float())
    torch.testing.assert_close(got_lat.double(), lat, rtol=0, atol=1e-4)
    torch.testing.assert_close(got_lon.double()[:4], lon[:4], rtol=0, atol=1e-3)  # (at a pole any lon is right)
    # gradients to the input coordinates stay finite, also at the poles
    enc = _encoder()
    from lamina.geo.location_encoder import LocationEncoder

    lonlat = torch.tensor([[10.0, 90.0], [-20.0, -90.0], [5.0, 45.0]], requires_grad=True)
    LocationEncoder(enc, month=4)(lonlat).sum().backward()
    assert torch.isfinite(lonlat.grad).all()


def test_a_low_precision_module_looks_the_grid_up_in_float32():
    from lamina.geo.location_encoder import LocationEncoder

    enc = _encoder()
    lonlat = torch.tensor([[8.55, 47.37], [-70.2, -15.3], [150.1, 60.7]])
    ref = LocationEncoder(enc, month=6)(lonlat).detach()
    half = LocationEncoder(_encoder(), month=6).to(torch.bfloat16)
    got = half(lonlat).detach().float()
    # bfloat16 weights round the result (~1%), but a wrong grid cell would move it by far more
    assert torch.allclose(got, ref, rtol=0.05, atol=0.05 * ref.abs().max().item())
