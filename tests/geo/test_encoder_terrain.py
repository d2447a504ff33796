"""Terrain inputs of the climate encoder (``EncoderConfig.terrain``): the fixed elevation / land-fraction table.

The table is the real one (ETOPO5 from ferret-datasets, the GLOBE land mask); networks here are UNTRAINED or
trained for a few steps on SYNTHETIC CHELSA-named files (conftest.tiny_chelsa).
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
from lamina.geo.data.terrain import ELEVATION_SCALE_M, terrain_table
from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig
from lamina.geo.pretrain import pretrain
from tests.geo.test_pretrain import _cfg as pretrain_cfg
from tests.geo.test_pretrain import _weights

# Lhasa (3,650 m), Quito (2,850 m), the open Pacific, Amsterdam (about sea level), the Amazon at Manaus (90 m)
PLACES = dict(lon=[91.13, -78.47, -150.0, 4.90, -60.02], lat=[29.65, -0.18, 0.0, 52.37, -3.12])


@pytest.fixture(scope="module")
def table():
    return terrain_table()


def _encoder(table, **cfg) -> ClimateEncoder:
    variables = [Variable("t", "degC"), Variable("elevation", "m", monthly=False)]
    torch.manual_seed(0)
    config = EncoderConfig(n_variables=2, dim_hidden=32, num_layers=3, dim_embedding=8, static_variables=[1],
                           location_encoding="sphere", terrain=True, **cfg)
    enc = ClimateEncoder(ClimateModule(config), variables, [10.0, 500.0], [5.0, 300.0])
    enc.module.terrain.fill(table)
    return enc


def test_the_terrain_table_holds_the_real_relief_and_coasts(table):
    from lamina.nn import FixedLatLonGrid

    grid = FixedLatLonGrid(0.25, 2)
    grid.fill(table)
    got = grid(torch.tensor(PLACES["lon"]), torch.tensor(PLACES["lat"])).numpy()
    elevation_m, land = got[:, 0] * ELEVATION_SCALE_M, (got[:, 1] + 1) / 2
    assert elevation_m[0] > 3500 and 2000 < elevation_m[1] < 4000  # the Tibetan plateau, the Andes at Quito
    assert elevation_m[2] == 0 and land[2] == 0  # open sea
    assert elevation_m[3] < 50 and land[3] > 0.8  # Amsterdam: land near sea level (and lakes)
    assert 20 < elevation_m[4] < 200 and land[4] > 0.7  # lowland beside the river
    # sea floor and land below sea level count as 0 m
    assert np.isfinite(table).all() and table[:, 0].min() == 0 and -1 <= table[:, 1].min() <= table[:, 1].max() <= 1
    # about 29% of the globe's area is land: the cell fractions, weighted by cos(lat), agree
    rows = np.repeat(np.linspace(-90, 90, 721), 1440)
    w = np.cos(np.radians(rows))
    assert 0.27 < float(np.sum(w * (table[:, 1] + 1) / 2) / w.sum()) < 0.31


def test_the_table_holds_exact_cell_means_of_both_sources(table):
    """Against an independent pixel-index computation: each node's values are the area means of the 0.25-degree
    cell centred on it (ETOPO5 points on multiples of 5', GLOBE pixels with their edges there)."""
    from lamina.geo.data.sources.ferret import etopo5
    from lamina.geo.data.sources.globe import globe_land_fraction

    relief = etopo5().reader.data  # (2161, 4320): rows from 90 S northwards, columns from 0 E
    globe = globe_land_fraction().reader.data  # (2160, 4320): rows from 90 N southwards, columns from 180 W
    t = table.reshape(721, 1440, 2)
    rng = np.random.default_rng(5)
    half = np.array([0.5, 1.0, 1.0, 0.5])
    for i, j in zip(rng.integers(2, 719, 200), rng.integers(0, 1440, 200), strict=True):
        lat, lon = -90.0 + 0.25 * i, -180.0 + 0.25 * j
        r, c = round((lat + 90) * 12), round((lon % 360) * 12)
        window = relief[r - 1 : r + 2][:, [(c + k) % 4320 for k in (-1, 0, 1)]]
        assert t[i, j, 0] * ELEVATION_SCALE_M == pytest.approx(np.clip(window, 0, None).mean(), rel=1e-3, abs=0.5)
        e, c = round((90 - lat) * 12), round((lon + 180) * 12)
        cell = globe[e - 2 : e + 2][:, [(c + k) % 4320 for k in (-2, -1, 0, 1)]]
        assert (t[i, j, 1] + 1) / 2 == pytest.approx(float(half @ cell @ half) / 9, abs=1e-6)


def test_terrain_reaches_the_network_survives_save_and_load_and_stays_with_the_untrained_twin(table, tmp_path):
    enc = _encoder(table)
    assert enc.config.dim_in == 3 + 2 + 2 and list(enc.module.terrain.parameters()) == []
    with_terrain = enc.embed(**PLACES, month=4)
    bare = enc.module.terrain.table.clone()
    enc.module.terrain.table.zero_()
    assert not np.allclose(enc.embed(**PLACES, month=4), with_terrain)  # the values reach the network
    enc.module.terrain.table.copy_(bare)
    enc.save(tmp_path / "ck")
    again = lamina.geo.load(tmp_path / "ck")
    assert again.config.terrain is True
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["config"]["terrain"] is True
    np.testing.assert_array_equal(again.embed(**PLACES, month=4), with_terrain)
    np.testing.assert_array_equal(again.reconstruct(**PLACES, month=4), enc.reconstruct(**PLACES, month=4))
    twin = again.untrained(seed=3)  # terrain is data: the untrained network reads the same table
    torch.testing.assert_close(twin.module.terrain.table, again.module.terrain.table, rtol=0, atol=0)
    assert not np.allclose(twin.embed(**PLACES, month=4), with_terrain)


def test_embed_matches_the_training_forward_and_the_torch_module(table):
    from lamina.geo.location_encoder import LocationEncoder

    enc = _encoder(table, grid_resolutions=(5.0, 1.0))
    lon, lat = np.array(PLACES["lon"]), np.array(PLACES["lat"])
    x = enc.module.encode_inputs(torch.from_numpy(lon), torch.from_numpy(lat), torch.full((5,), 7))
    with torch.no_grad():
        emb, _ = enc.module(x)
        dropped, _ = enc.module(x, torch.zeros(5))  # grid dropout keeps the terrain columns
        cols = enc.module.siren_inputs(x, torch.zeros(5))
    assert torch.count_nonzero(cols[:, 3:5]) > 0 and torch.count_nonzero(cols[:, 5:9]) == 0
    torch.testing.assert_close(dropped, emb)  # (the learned grid starts at zero)
    np.testing.assert_allclose(enc.embed(lon=lon, lat=lat, month=7), emb.numpy(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        out = LocationEncoder(enc)(torch.tensor(np.column_stack([lon, lat])), month=7)
    np.testing.assert_allclose(out.numpy(), emb.numpy(), rtol=1e-5, atol=1e-5)


def test_the_network_can_read_the_elevation_alone(table, tmp_path):
    only = terrain_table(columns=["elevation"])
    np.testing.assert_array_equal(only[:, 0], table[:, 0])
    variables = [Variable("t", "degC")]
    config = EncoderConfig(n_variables=1, dim_hidden=16, num_layers=2, dim_embedding=8, location_encoding="sphere",
                           terrain=True, terrain_columns=["elevation"])
    assert config.dim_in == 3 + 1 + 2 and config.terrain_columns == ("elevation",)
    enc = ClimateEncoder(ClimateModule(config), variables, [0.0], [1.0])
    enc.module.terrain.fill(only)
    enc.save(tmp_path / "ck")
    again = lamina.geo.load(tmp_path / "ck")
    assert again.config.terrain_columns == ("elevation",)
    np.testing.assert_array_equal(again.embed(**PLACES, month=1), enc.embed(**PLACES, month=1))


@pytest.mark.parametrize(("kw", "match"), [
    (dict(terrain=True, location_encoding="direct"), "terrain: terrain inputs need location_encoding 'sphere'"),
    (dict(terrain=True, terrain_columns=["slope"]), r"terrain_columns: unknown \['slope'\]"),
    (dict(terrain=True, terrain_columns=[]), "terrain_columns: expected a non-empty list"),
    (dict(terrain=True, terrain_columns="elevation"), "terrain_columns: expected a non-empty list"),
    (dict(terrain=True, terrain_columns=["elevation", "elevation"]), "terrain_columns: expected distinct"),
    (dict(terrain="yes", location_encoding="sphere"), "terrain"),
    (dict(terrain=1, location_encoding="sphere"), "terrain"),
])
def test_bad_terrain_settings_are_refused(kw, match):
    with pytest.raises(InputError, match=match):
        EncoderConfig(n_variables=2, dim_hidden=8, num_layers=2, dim_embedding=4, **kw)


def test_pretraining_fills_the_table_never_trains_it_and_resumes_exactly(tiny_chelsa, table, tmp_path):
    stack = chelsa_stack(tiny_chelsa, ["tas", "bio1"])
    cfg = EncoderConfig(n_variables=2, dim_hidden=16, num_layers=2, dim_embedding=8, static_variables=[1],
                        location_encoding="sphere", terrain=True)
    run = dict(max_steps=20, eval_every=10, checkpoint_every=10)
    pretrain(stack, cfg, pretrain_cfg(**run), tmp_path / "straight", progress=False)
    trained = _weights(tmp_path / "straight" / "final")
    torch.testing.assert_close(trained["terrain.table"], torch.from_numpy(table).half(), rtol=0, atol=0)
    pretrain(stack, cfg, pretrain_cfg(**{**run, "max_steps": 10}), tmp_path / "split", progress=False)
    pretrain(stack, cfg, pretrain_cfg(**run), tmp_path / "split", progress=False)
    for k, v in _weights(tmp_path / "split" / "final").items():
        torch.testing.assert_close(v, trained[k], rtol=0, atol=0)
    # a resumed run keeps the table of its state (it is not rebuilt): a marked table survives
    state = torch.load(tmp_path / "split" / "state.pt", weights_only=True)
    state["model"]["terrain.table"][:10] = 0.5
    torch.save(state, tmp_path / "split" / "state.pt")
    pretrain(stack, cfg, pretrain_cfg(**{**run, "max_steps": 30}), tmp_path / "split", progress=False)
    state = torch.load(tmp_path / "split" / "state.pt", weights_only=True)  # the state at step 30
    assert state["state"]["step"] == 30 and bool((state["model"]["terrain.table"][:10] == 0.5).all())
    plain = EncoderConfig(**{**cfg.to_dict(), "terrain": False})
    with pytest.raises(InputError, match="belongs to another encoder"):
        pretrain(stack, plain, pretrain_cfg(max_steps=40), tmp_path / "split", progress=False)


def test_cli_terrain_error_is_one_line_and_makes_nothing(tiny_chelsa, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lamina.cli", "geo", "pretrain", "--stack", f"chelsa:{tiny_chelsa}", "-o", str(out),
           "--layers", "2", "--hidden", "8", "--dim", "4", "--steps", "2", "--no-progress", "--terrain"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "terrain inputs need location_encoding 'sphere'" in lines[0]
    assert not out.exists()


def test_a_low_precision_module_keeps_the_table_in_float16_and_reads_it_in_float32(table):
    from lamina.geo.location_encoder import LocationEncoder

    enc = _encoder(table)
    x = enc.module.encode_inputs(torch.tensor(PLACES["lon"], dtype=torch.float64),
                                 torch.tensor(PLACES["lat"], dtype=torch.float64), torch.full((5,), 2))
    with torch.no_grad():
        want = enc.module.siren_inputs(x)[:, 3:5]
        module = LocationEncoder(enc).to(torch.bfloat16)
        assert enc.module.terrain.table.dtype == torch.float16  # not rounded to bfloat16
        assert next(enc.module.siren.parameters()).dtype == torch.bfloat16  # while the weights are cast
        got = enc.module.siren_inputs(x)[:, 3:5]
        module.to(torch.float32)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(enc.module.terrain.table.float(), torch.from_numpy(table).half().float())


@pytest.mark.parametrize(("spoil", "match"), [
    (lambda t: torch.zeros_like(t), "terrain.table: all zeros"),
    (lambda t: torch.full(t.shape, 1e6), "terrain.table: expected finite values within float16's range"),
    (lambda t: torch.ones(t.shape, dtype=torch.int32), "terrain.table: expected floating-point values"),
    (lambda t: t[:-1440], r"terrain.table: expected shape \(1038240, 2\), got \(1036800, 2\)"),
    (lambda t: torch.full_like(t, float("inf")), "infinite values in tensor 'terrain.table'"),
])
def test_a_checkpoint_with_a_spoilt_table_is_refused_naming_it(table, tmp_path, spoil, match):
    from lamina.errors import CheckpointError

    enc = _encoder(table)
    enc.module.terrain.table = spoil(enc.module.terrain.table)
    enc.save(tmp_path / "ck")
    with pytest.raises(CheckpointError, match=match):
        lamina.geo.load(tmp_path / "ck")
