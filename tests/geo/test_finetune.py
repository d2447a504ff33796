"""lamina.geo.finetune: fine-tuning the climate encoder with a one-layer head, its folder, provenance and CLI.

Targets are SYNTHETIC, made from the coordinates (latitude bands, a smooth function of latitude): they test that
the mechanics learn a spatial signal, not climate. Most tests use an UNTRAINED tiny encoder saved as the parent
(random weights, fast); the learning test uses the bundled default.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import lamina.geo
from lamina._io import read_checkpoint_config, sha256_file
from lamina.cli import app
from lamina.errors import CheckpointError, InputError
from lamina.geo.finetune import FineTuneConfig, finetune
from lamina.geo.finetune_model import FineTunedEncoder

from .test_encoder import tiny_encoder

runner = CliRunner()
FAST = {"epochs": 2, "threads": 1, "progress": False}


def synthetic_points(n=240, seed=0):
    """Area-uniform points with SYNTHETIC labels: latitude bands (tropics / north / south)."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180, 180, n)
    lat = np.rad2deg(np.arcsin(rng.uniform(-1, 1, n)))
    band = np.where(np.abs(lat) < 23.5, "tropics", np.where(lat > 0, "north", "south"))
    return lon, lat, band


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """An UNTRAINED tiny parent checkpoint whose metadata claims a (made-up) pretraining run."""
    enc = tiny_encoder()
    enc.metadata = {"training": {"run": "SYNTHETIC parent pretraining run", "steps": 7}}
    path = tmp_path_factory.mktemp("parent") / "tiny"
    enc.save(path)
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    lon, lat, band = synthetic_points()
    path = tmp_path_factory.mktemp("data") / "points.csv"
    pd.DataFrame({"x": lon, "y": lat, "band": band, "t": 30 * np.cos(np.deg2rad(lat))}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted(parent, table):
    return finetune(table, target="band", lon_col="x", lat_col="y", checkpoint=parent, **FAST)


def test_learns_a_spatial_target_better_than_chance():
    lon, lat, band = synthetic_points(400, seed=1)
    model = finetune(lon=lon, lat=lat, y=band, train="head", epochs=15, threads=1, progress=False)
    val = model.provenance["finetune"]["validation"]["metrics"]
    majority = max(np.mean(band == c) for c in np.unique(band))
    assert val["accuracy"] > majority + 0.2, val
    lon2, lat2, band2 = synthetic_points(200, seed=2)  # fresh points
    assert np.mean(model.predict(lon=lon2, lat=lat2) == band2) > majority + 0.2
    assert sorted(model.classes_) == ["north", "south", "tropics"]
    # regression on a SYNTHETIC smooth field, with the last layers trained too
    y = 30 * np.cos(np.deg2rad(lat)) - 5
    reg = finetune(lon=lon, lat=lat, y=y, train="last", epochs=4, threads=1, progress=False)
    assert reg.kind == "regression" and reg.provenance["finetune"]["validation"]["metrics"]["r2_mean"] > 0.5


def _siren_state(enc):
    return {k: v.clone() for k, v in enc.module.state_dict().items()}


def test_frozen_mode_keeps_encoder_weights_and_all_mode_changes_them(parent):
    lon, lat, band = synthetic_points()
    enc = lamina.geo.load(parent)
    before = _siren_state(enc)
    head = finetune(lon=lon, lat=lat, y=band, checkpoint=enc, train="head", **FAST)
    after = _siren_state(head.encoder)
    assert all(torch.equal(before[k], after[k]) for k in before)
    settings = {**FAST, "epochs": 3, "encoder_lr": 3e-3}
    full = finetune(lon=lon, lat=lat, y=band, checkpoint=enc, train="all", **settings)
    assert full.provenance["finetune"]["validation"]["best_stage"] == "encoder"
    changed = {k for k, v in _siren_state(full.encoder).items() if not torch.equal(v, before[k])}
    assert "siren.layers.0.linear.weight" in changed and "siren.last.weight" in changed
    assert not any(k.startswith("head.") for k in changed)  # the pretraining head is never trained
    last = finetune(lon=lon, lat=lat, y=band, checkpoint=enc, train="last", **settings)
    changed = {k for k, v in _siren_state(last.encoder).items() if not torch.equal(v, before[k])}
    assert changed and changed <= {"siren.layers.2.linear.weight", "siren.layers.2.linear.bias", "siren.last.weight",
                                   "siren.last.bias"}
    assert all(torch.equal(before[k], v) for k, v in _siren_state(enc).items())  # the caller's encoder untouched


def test_saved_folder_round_trips_and_is_an_encoder_checkpoint(fitted, tmp_path):
    out = fitted.save(tmp_path / "ft")
    loaded = FineTunedEncoder.load(out)
    lon, lat, _ = synthetic_points(50, seed=3)
    np.testing.assert_array_equal(loaded.predict(lon=lon, lat=lat), fitted.predict(lon=lon, lat=lat))
    np.testing.assert_array_equal(loaded.predict_proba(lon=lon, lat=lat), fitted.predict_proba(lon=lon, lat=lat))
    enc = lamina.geo.load(out)  # the folder is an encoder checkpoint: geo embed --checkpoint works on it
    np.testing.assert_array_equal(enc.embed(lon=lon, lat=lat), fitted.embed(lon=lon, lat=lat))
    frame = loaded.predict_frame(lon=lon, lat=lat)
    assert list(frame.columns) == ["lon", "lat", "label", "p_north", "p_south", "p_tropics"]
    # a second save of the same model writes the same bytes (no timestamps)
    again = fitted.save(tmp_path / "ft2")
    for name in ("config.json", "model.safetensors", "finetune.json", "head/config.json", "head/model.safetensors"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_provenance_is_its_own_and_names_the_parent(fitted, parent, table, tmp_path):
    out = fitted.save(tmp_path / "ft")
    meta = read_checkpoint_config(out)["metadata"]
    assert "training" not in meta and "validation" not in meta  # the parent's run is not claimed as its own
    assert meta["parent"]["sha256"] == read_checkpoint_config(parent)["sha256"]
    assert meta["parent"]["checkpoint"] == str(parent.resolve())
    assert meta["parent"]["provenance"]["training"]["run"] == "SYNTHETIC parent pretraining run"
    ft = meta["finetune"]
    assert ft["data"]["sha256"] == sha256_file(table) and ft["data"]["path"] == str(table.resolve())
    assert ft["data"]["target"] == ["band"] and ft["data"]["rows_used"] == 240
    assert ft["task"]["kind"] == "classification" and ft["task"]["classes"] == ["north", "south", "tropics"]
    assert ft["train"] == "head" and ft["seed"] == 0 and ft["settings"]["epochs"] == 2
    assert ft["lamina_version"] == lamina.__version__
    assert {"accuracy", "f1_macro", "loss"} <= set(ft["validation"]["metrics"])
    assert ft["split"]["n_train"] + ft["split"]["n_val"] == 240
    doc = json.loads((out / "finetune.json").read_text())
    assert doc["encoder_sha256"] == read_checkpoint_config(out)["sha256"]
    assert doc["head_sha256"] == read_checkpoint_config(out / "head")["sha256"]
    assert doc["provenance"]["finetune"]["data"]["sha256"] == ft["data"]["sha256"]


def test_arrays_get_a_digest_of_their_values(parent):
    lon, lat, band = synthetic_points()
    a = finetune(lon=lon, lat=lat, y=band, checkpoint=parent, **FAST).provenance["finetune"]["data"]
    b = finetune(lon=lon, lat=lat, y=band[::-1], checkpoint=parent, **FAST).provenance["finetune"]["data"]
    assert a["source"] == "arrays" and len(a["sha256"]) == 64 and a["sha256"] != b["sha256"]


def _frame(n=240):
    lon, lat, band = synthetic_points(n)
    return pd.DataFrame({"lon": lon, "lat": lat, "band": band, "t": 30 * np.cos(np.deg2rad(lat))})


@pytest.mark.parametrize(("change", "kwargs", "words"), [
    (None, {"target": "nope"}, "column 'nope' not found"),
    ("nan", {"target": "t"}, "missing value (NaN, None or empty) at row 5"),
    ("one-class", {"target": "band"}, "one class only"),
    ("lon", {"target": "band"}, "lon: must lie in [-180, 180], got 200 at index 3"),
    (None, {"target": "band", "epochs": 0}, "epochs: expected an integer >= 1, got 0"),
    (None, {"target": "band", "lr": float("nan")}, "lr: expected a finite number > 0"),
    (None, {"target": "band", "batch_size": 2.0}, "batch_size: expected an integer"),
    (None, {"target": "band", "train": "most"}, "train: expected one of head, last, all"),
    (None, {"target": "band", "kind": "ranking"}, "kind: expected one of"),
    (None, {"target": "band", "block_deg": 180.0}, "block_deg"),
    (None, {"target": "band", "month": 13}, "month: expected None or an integer 1..12"),
    (None, {"target": "band", "epoch": 3}, "unknown setting 'epoch'"),
    (None, {"target": "t", "kind": "classification"}, "not a class code"),
    (None, {"target": "band", "kind": "regression"}, "holds text; a regression needs numbers"),
    ("few", {"target": "band"}, "fine-tuning needs at least 20"),
])
def test_bad_input_is_refused_clearly(parent, change, kwargs, words):
    df = _frame()
    if change == "nan":
        df.loc[5, "t"] = np.nan
    elif change == "one-class":
        df["band"] = "north"
    elif change == "lon":
        df.loc[3, "lon"] = 200.0
    elif change == "few":
        df = df.iloc[:10]
    with pytest.raises(InputError) as err:
        finetune(df, checkpoint=parent, **{**FAST, **kwargs})
    assert words in str(err.value)


def test_config_checks_and_constant_target(parent):
    with pytest.raises(InputError, match="val_fraction"):
        FineTuneConfig(val_fraction=0.9)
    lon, lat, _ = synthetic_points()
    with pytest.raises(InputError, match="is constant"):
        finetune(lon=lon, lat=lat, y=np.full(lon.size, 2.5), checkpoint=parent, **FAST)
    with pytest.raises(InputError, match="not both"):
        finetune(_frame(), target="band", lon=lon, lat=lat, y=lon, checkpoint=parent, **FAST)


def test_library_call_leaves_torch_threads_and_random_state(parent):
    lon, lat, band = synthetic_points()
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        torch.manual_seed(12345)
        state = torch.get_rng_state().clone()
        finetune(lon=lon, lat=lat, y=band, checkpoint=parent, train="all", **FAST)
        assert torch.get_num_threads() == 3
        assert torch.equal(torch.get_rng_state(), state)
    finally:
        torch.set_num_threads(threads)


def test_same_seed_same_model(parent):
    lon, lat, band = synthetic_points()
    a = finetune(lon=lon, lat=lat, y=band, checkpoint=parent, train="last", **FAST)
    b = finetune(lon=lon, lat=lat, y=band, checkpoint=parent, train="last", **FAST)
    np.testing.assert_array_equal(a.predict_proba(lon=lon, lat=lat), b.predict_proba(lon=lon, lat=lat))


def test_geoparquet_in_another_crs(parent, tmp_path):
    gpd = pytest.importorskip("geopandas")
    df = _frame()
    gdf = gpd.GeoDataFrame(df[["t"]], geometry=gpd.points_from_xy(df.lon, df.lat), crs=4326).to_crs(3857)
    gdf = gdf[(df.lat.abs() < 80).to_numpy()]  # Web Mercator has no poles
    gdf.to_parquet(tmp_path / "pts.parquet")
    model = finetune(tmp_path / "pts.parquet", target="t", checkpoint=parent, **FAST)
    data = model.provenance["finetune"]["data"]
    assert model.kind == "regression" and data["format"] == "parquet" and "reprojected" in data["coordinates"]


def test_interrupted_save_leaves_no_half_folder(fitted, tmp_path, monkeypatch):
    import lamina.geo.finetune_model as fm

    real = fm.write_checkpoint_files
    calls = []

    def failing(folder, *args, **kwargs):
        calls.append(folder)
        if len(calls) == 2:  # the head, after the encoder was written
            raise OSError("disk full (simulated)")
        return real(folder, *args, **kwargs)

    monkeypatch.setattr(fm, "write_checkpoint_files", failing)
    with pytest.raises(OSError, match="simulated"):
        fitted.save(tmp_path / "ft")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary
    monkeypatch.setattr(fm, "write_checkpoint_files", real)
    out = fitted.save(tmp_path / "ft")
    calls.clear()
    monkeypatch.setattr(fm, "write_checkpoint_files", failing)
    with pytest.raises(OSError, match="simulated"):
        fitted.save(out)  # replacing an earlier output fails: the earlier one is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft"]
    FineTunedEncoder.load(out)


def test_load_refuses_tampered_or_mixed_folders(fitted, parent, tmp_path):
    out = fitted.save(tmp_path / "ft")
    other = finetune(_frame(), target="t", checkpoint=parent, **FAST).save(tmp_path / "other")
    doc = json.loads((out / "finetune.json").read_text())
    doc["provenance"]["finetune"]["seed"] = 99
    (out / "finetune.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="do not belong together"):
        FineTunedEncoder.load(out)
    out = fitted.save(tmp_path / "ft2")
    for name in ("config.json", "model.safetensors"):
        (out / "head" / name).write_bytes((other / "head" / name).read_bytes())
    with pytest.raises(CheckpointError, match="do not belong together"):
        FineTunedEncoder.load(out)
    with pytest.raises(CheckpointError, match="not a fine-tuned encoder folder"):
        FineTunedEncoder.load(parent)
    with pytest.raises(InputError, match="not a fine-tuned encoder folder"):
        fitted.save(parent)  # never replaces a folder that is not its own kind
    assert lamina.geo.load(parent) is not None


def test_cli_finetune_prints_json_and_probe_predict_applies_it(parent, table, tmp_path):
    out = tmp_path / "ft"
    r = runner.invoke(app, ["geo", "finetune", str(table), "--target", "band", "--lon-col", "x", "--lat-col", "y",
                            "-o", str(out), "-c", str(parent), "--epochs", "1", "--train", "last", "--threads", "1",
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["output"] == str(out) and doc["rows"] == 240 and doc["train"] == "last" and doc["head_init"] == "zero"
    assert doc["classes"] == ["north", "south", "tropics"] and doc["metric"] == "f1_macro"
    assert doc["parent_sha256"] == read_checkpoint_config(parent)["sha256"]
    assert doc["checkpoint_sha256"] == read_checkpoint_config(out)["sha256"]
    assert doc["data_sha256"] == sha256_file(table) and 0 <= doc["value"] <= 1
    pd.DataFrame({"lon": [8.55, -70.0], "lat": [47.37, -15.0]}).to_csv(tmp_path / "q.csv", index=False)
    r = runner.invoke(app, ["geo", "probe-predict", str(out), str(tmp_path / "q.csv"), "-o", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns[:3]) == ["lon", "lat", "label"] and set(pred.label) <= {"north", "south", "tropics"}
    r = runner.invoke(app, ["geo", "embed", "--lon", "8.55", "--lat", "47.37", "-m", "6", "-c", str(out)])
    assert r.exit_code == 0 and json.loads(r.stdout)["checkpoint_sha256"] == doc["checkpoint_sha256"]


@pytest.mark.parametrize(("args", "words"), [
    (["--target", "band", "--epochs", "0"], "epochs: expected an integer >= 1, got 0"),
    (["--target", "band", "--lr", "nan"], "lr: expected a finite number > 0"),
    (["--target", "zone"], "column 'zone' not found"),
    (["--target", "band", "--head-init", "random"], "head_init: expected one of probe, zero"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(parent, table, tmp_path, args, words):
    out = tmp_path / "ft"
    r = runner.invoke(app, ["geo", "finetune", str(table), "--lon-col", "x", "--lat-col", "y", "-o", str(out),
                            "-c", str(parent), "--no-progress", *args])
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output
    assert not out.exists()


# ---------------------------------------------------------------- the start of stage 1: the cross-validated probe
def _probe_case(case, seed=0):
    """SYNTHETIC (features (N, D), Target, groups): linear signals in random features, blocks as groups."""
    from lamina.geo.finetune_target import prepare_target

    rng = np.random.default_rng(seed)
    n, d = 300, 12
    Z = rng.normal(size=(n, d))
    X = (Z * rng.uniform(0.5, 20, d) + rng.normal(0, 50, d)).astype(np.float32)  # unequal scales and offsets
    score = Z[:, :3] @ rng.normal(size=(3, 3)) + rng.normal(0, 0.5, (n, 3))
    groups = rng.integers(0, 8, n)
    if case == "regression":
        tgt = prepare_target({"a": 10 + 3 * score[:, 0], "b": -500 + 80 * score[:, 1]}, "regression", n=n)
    elif case == "binary":
        tgt = prepare_target({"c": np.where(score[:, 0] > 0, "wet", "dry")}, "classification", n=n)
    else:
        labels = np.array(["A", "B", "C"])[np.argmax(score, axis=1)]
        if case == "absent":
            labels[:5] = "D"  # classes A..D, D only in the first rows (outside the training rows below)
        tgt = prepare_target({"k": labels}, "classification", n=n)
    return X, tgt, groups


@pytest.mark.parametrize("case", ["multiclass", "binary", "absent", "regression"])
def test_head_starts_as_the_cross_validated_probe(case):
    from scipy.special import softmax

    from lamina.geo.finetune_model import Head
    from lamina.geo.finetune_probe import ABSENT_CLASS_PROBABILITY, fit_probe, probe_head

    X, tgt, groups = _probe_case(case)
    train = np.arange(5, len(X))  # the training rows (row 0..4: held out)
    Xt = torch.from_numpy(X[train])
    head = Head(Xt.mean(dim=0), Xt.std(dim=0), tgt.n_outputs)
    info = probe_head(head, X[train], tgt.values[train], tgt, groups[train], seed=3)
    probe = fit_probe(X[train], tgt.values[train], tgt, groups[train], seed=3)  # the same fit, independently
    with torch.no_grad():
        out = head(torch.from_numpy(X)).double().numpy()  # every row, held-out ones too
    if case == "regression":
        assert info["estimator"] == "lamina.probe.LinearProbeRegressor" and len(info["alpha"]) == 2
        # to 1e-5 of each target's standard deviation (the head predicts z-scores)
        np.testing.assert_allclose(out, (probe.predict(X) - tgt.mean) / tgt.std, rtol=1e-5, atol=1e-5)
        return
    assert info["estimator"] == "lamina.probe.LinearProbeClassifier" and info["C"] == probe.C_
    proba = softmax(out, axis=1)
    present = np.asarray(probe.classes_, dtype=int)
    np.testing.assert_allclose(proba[:, present], probe.predict_proba(X), atol=1e-5)
    if case == "absent":
        assert info["classes_absent_from_training"] == ["D"] and list(present) == [0, 1, 2]
        assert np.all(proba[:, 3] <= ABSENT_CLASS_PROBABILITY * 1.01)
    else:
        assert info["classes_absent_from_training"] == [] and len(present) == tgt.n_outputs


def _stages_skipped(monkeypatch):
    import lamina.geo.finetune_loop as loop

    monkeypatch.setattr(loop, "_stage", lambda *args, **kwargs: (0, "skipped (test)"))


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_finetune_returns_the_probe_when_no_epoch_beats_it(parent, monkeypatch, kind):
    from lamina.geo.eval.splits import SpatialBlockSplit
    from lamina.probe import LinearProbeClassifier, LinearProbeRegressor

    _stages_skipped(monkeypatch)  # no training epochs: the model must be epoch 0, the probe itself
    lon, lat, band = synthetic_points()
    y = band if kind == "classification" else np.column_stack([30 * np.cos(np.deg2rad(lat)), lon / 10])
    model = finetune(lon=lon, lat=lat, y=y, checkpoint=parent, train="last", head_init="probe", **FAST)
    ft = model.provenance["finetune"]
    assert ft["validation"]["best_stage"] == "probe" and ft["validation"]["best_epoch"] == 0
    assert ft["settings"]["head_init"] == "probe" and ft["head_init"]["kind"] == "probe"
    assert ft["history"][0] == {"stage": "probe", "epoch": 0, "train_loss": ft["head_init"]["train_loss"],
                                "val_loss": ft["head_init"]["val_loss"]}
    # the same probe fitted by hand: geo evaluate's settings, the training blocks, their cells as inner-CV groups
    splitter = SpatialBlockSplit(10.0, n_folds=1, test_fraction=0.2, random_state=0)
    X = np.column_stack([lon, lat])
    train, _ = next(splitter.split(X))
    feats = lamina.geo.load(parent).embed(lon=lon, lat=lat)
    groups = splitter.blocks(X)[train]
    if kind == "classification":
        probe = LinearProbeClassifier(Cs=(1e-3, 1e-2, 1e-1, 1.0), cv=3, random_state=0)
        probe.fit(feats[train], band[train], groups=groups)
        assert list(probe.classes_) == model.labels
        np.testing.assert_allclose(model.predict_proba(lon=lon, lat=lat), probe.predict_proba(feats), atol=1e-5)
    else:
        probe = LinearProbeRegressor(cv=5, random_state=0).fit(feats[train], y[train], groups=groups)
        sd = y.std(axis=0)
        np.testing.assert_allclose(model.predict(lon=lon, lat=lat) / sd, probe.predict(feats) / sd, rtol=1e-5,
                                   atol=1e-5)


def test_head_init_zero_keeps_the_old_start_and_training_never_ends_worse_than_the_probe(parent):
    lon, lat, band = synthetic_points()
    zero = finetune(lon=lon, lat=lat, y=band, checkpoint=parent, head_init="zero", **FAST).provenance["finetune"]
    assert zero["head_init"]["kind"] == "zero" and zero["history"][0]["stage"] == "head"
    assert zero["history"][0]["val_loss"] == pytest.approx(np.log(3), rel=1e-6)  # the zero head: uniform classes
    ft = finetune(lon=lon, lat=lat, y=band, checkpoint=parent, train="last", **FAST).provenance["finetune"]
    assert ft["validation"]["best_stage"] in ("probe", "head", "encoder")
    assert ft["validation"]["metrics"]["loss"] <= ft["head_init"]["val_loss"]
    assert ft["validation"]["metrics"]["loss"] == pytest.approx(min(h["val_loss"] for h in ft["history"]), abs=1e-6)
    with pytest.raises(InputError, match="head_init: expected one of probe, zero"):
        FineTuneConfig(head_init="random")


def test_all_mode_trains_a_learned_grid_and_the_other_modes_leave_it(tmp_path):
    """An UNTRAINED tiny parent with a learned grid: ``train="all"`` moves the grid nodes near the points."""
    enc = tiny_encoder(location_encoding="sphere", grid_resolutions=(30.0, 10.0))
    lon, lat, band = synthetic_points()
    settings = {**FAST, "epochs": 3, "encoder_lr": 3e-3}
    before = _siren_state(enc)
    full = finetune(lon=lon, lat=lat, y=band, checkpoint=enc, train="all", **settings)
    after = _siren_state(full.encoder)
    assert not torch.equal(after["grid.tables.1"], before["grid.tables.1"])
    full.save(tmp_path / "ft")
    again = FineTunedEncoder.load(tmp_path / "ft")
    torch.testing.assert_close(_siren_state(again.encoder)["grid.tables.1"], after["grid.tables.1"])
    last = finetune(lon=lon, lat=lat, y=band, checkpoint=enc, train="last", **settings)
    assert all(torch.equal(_siren_state(last.encoder)[k], before[k]) for k in ("grid.tables.0", "grid.tables.1"))
