"""`lamina weights ...` end to end on the tiny real zoo, and its errors (exit code 2, one line)."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from lamina.cli import app
from lamina.weights.zoo.catalogue import Catalogue

from .conftest import read_catalogue

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["weights", *map(str, args)])


def _json_tail(out: str):
    return json.loads(out[out.index("{"):])


def test_zoo_build_small_config_cli(tmp_path):
    cfg = tmp_path / "z.toml"
    cfg.write_text(
        "[zoo]\nseed = 1\nviews = ['original', 'upside down', 'inverted colours', 'zoomed in', 'zoomed out']\n"
        "pool_per_category = 20\ntest_per_category = 5\n"
        "[[roots]]\nname = 'mlp'\narch = 'mlp'\nhidden = [8, 8]\npretrain = 'digits'\nepochs = 1\nn_models = 3\n"
        "[finetune]\ncategories_per_model = [2, 3]\nimages_per_category = [5, 10]\nepochs = [1, 1]\n"
    )
    r = run("zoo", "build", "--config", cfg, "-o", tmp_path / "zoo", "--workers", "1", "--quiet")
    assert r.exit_code == 0, r.output
    assert _json_tail(r.output)["models"] == 3
    r = run("zoo", "build", "--config", tmp_path / "nope.toml", "-o", tmp_path / "zoo2")
    assert r.exit_code == 2 and "error: config" in r.output


def test_predict_search_like(tiny_zoo, tiny_probe):
    model = read_catalogue(tiny_zoo, "models", tree="mlp-digits-fashion")[0]
    r = run("predict", tiny_probe, tiny_zoo / model["path"], "--top", "3")
    assert r.exit_code == 0, r.output
    out = _json_tail(r.output)
    assert out["tree"] == "mlp-digits-fashion" and out["layer"] == "fc1" and len(out["categories"]) == 3
    r = run("search", "a photo of a sneaker with a white frame", "--zoo", tiny_zoo, "--top", "5")
    assert r.exit_code == 0, r.output
    res = _json_tail(r.output)["results"]
    assert len(res) == 5 and res[0]["score"] >= res[-1]["score"] and 0 <= res[-1]["score"] <= 1
    r = run("search", "--like", model["id"], "--zoo", tiny_zoo, "--top", "4")
    assert r.exit_code == 0, r.output
    ids = [x["id"] for x in _json_tail(r.output)["results"]]
    assert len(ids) == 4 and model["id"] not in ids


def test_bad_input_exits_2_naming_file_and_layer(tiny_zoo, tiny_probe, tmp_path):
    cnn = read_catalogue(tiny_zoo, "models", tree="cnn-digits")[0]
    # a model file without the requested layer (a CNN routed fine, but only MLP trees have experts on fc1? no:
    # every tree got an fc1 expert) -> use a file whose body matches no tree
    odd = tmp_path / "odd.safetensors"
    save_file({"fc1.weight": np.zeros((5, 784), np.float32), "fc1.bias": np.zeros(5, np.float32)}, str(odd))
    r = run("predict", tiny_probe, odd)
    assert r.exit_code == 2 and "odd.safetensors" in r.output and "match no tree" in r.output
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes((tiny_zoo / cnn["path"]).read_bytes()[:100])
    r = run("predict", tiny_probe, corrupt)
    assert r.exit_code == 2 and "corrupt.safetensors" in r.output
    r = run("train", tiny_zoo, "-o", tmp_path / "p", "--layer", "fc9", "--epochs", "1")
    assert r.exit_code == 2 and "fc9" in r.output
    empty = tmp_path / "empty"
    Catalogue(empty, create=True).close()
    r = run("train", empty, "-o", tmp_path / "p2")
    assert r.exit_code == 2 and "no models" in r.output
    untrained = tmp_path / "untrained"
    shutil.copytree(tiny_zoo, untrained)
    with Catalogue(untrained) as cat:
        cat.set_meta("probe", None)
    r = run("search", "a coat", "--zoo", untrained)
    assert r.exit_code == 2 and "no trained probe" in r.output
    r = run("search", "--zoo", tiny_zoo)
    assert r.exit_code == 2 and "either a text query or --like" in r.output


def test_wrong_layer_shape_is_refused(tiny_probe):
    from lamina.weights.experts import ProbeXMixture

    mix = ProbeXMixture.load(tiny_probe)
    est = mix.experts_["mlp-digits"]["expert"]

    from lamina.errors import InputError

    with pytest.raises(InputError, match=r"fc1: has shape \(3, 784\)"):
        est._check_x(np.zeros((1, 3, 784), np.float32), layer="fc1")


@pytest.mark.slow
def test_broken_model_in_zoo_is_reported_and_skipped(tiny_zoo, tmp_path):
    # a file whose catalogue digest is right but whose weights are NaN (trained that way): read, then skipped
    # (a file that no longer matches its digest is dropped before any read: test_integrity.py)
    import hashlib

    from lamina.weights.layers import read_state

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    with Catalogue(zoo) as cat:
        victim = cat.models(tree="mlp-digits")[0]
        state = read_state(zoo / victim["path"])
        state["fc2.weight"][0, 0] = np.nan
        save_file(state, str(zoo / victim["path"]))
        cat.add_models([{**victim, "sha256": hashlib.sha256((zoo / victim["path"]).read_bytes()).hexdigest()}])
    r = run("train", zoo, "-o", tmp_path / "p", "--layer", "fc1", "--epochs", "1", "--r-u", "4", "--r-v", "4",
            "--r-t", "8")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)  # stdout is the JSON alone (the training log is on stderr)
    assert [s for s in out["skipped"] if victim["id"] in s] and "NaN" in out["skipped"][0]
    assert out["dropped"] == {"count": 0, "files": []}


@pytest.mark.slow
def test_evaluate_writes_the_report(tiny_zoo, tmp_path):
    r = run("evaluate", tiny_zoo, "-o", tmp_path / "rep", "--seeds", "0", "--epochs", "3", "--workers", "2",
            "--text-ranks", "1,4")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    methods = {row["method"] for row in rep["rows"]}
    for row in rep["rows"]:  # the text readout's rank, chosen on folds of the seen categories, is recorded
        if row["method"] in ("text", "zero-shot"):
            assert row["text_rank"] in (1, 4) and set(row["text_rank_cv"]) == {"1", "4"}
    assert "the text readout's rank, chosen per seed" in (tmp_path / "rep" / "report.md").read_text()
    assert {"probex", "statnn", "zero-shot", "data-aware (layer)", "data-aware (model)", "cross-tree@fc1"} <= methods
    assert any(m.startswith("dense-logistic@") for m in methods)
    assert rep["discovery"]["ari"] == 1.0
    assert all(row["map_chance"] > 0 for row in rep["rows"])
    assert (tmp_path / "rep" / "map_per_method.png").stat().st_size > 1000
    assert "| tree | method |" in (tmp_path / "rep" / "report.md").read_text()


@pytest.mark.parametrize(("grid", "message"), [
    ("activation", "expected NAME=VALUE items, got 'activation'"),
    ("activation=tanh", "activation: expected one of relu, linear"),
    ("weight_decay=-1", "weight_decay: expected a finite number >= 0"),
    ("r_q=4", "unknown ProbeX setting(s) 'r_q'"),
    ("init=pca,init=random", "'init' is set twice"),
    (",", "expected NAME=VALUE items, got ','"),
    ("r_u=8;r-u=8", "an empty or repeated entry"),
])
def test_evaluate_probex_grid_is_checked_before_any_work(tiny_zoo, tmp_path, grid, message):
    r = run("evaluate", tiny_zoo, "-o", tmp_path / "rep", "--probex-grid", grid)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("ranks", ["0", "1,x", "2.5", ",", "-1"])
@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_text_ranks_are_checked_before_any_work(tiny_zoo, tmp_path, command, ranks):
    r = run(command, tiny_zoo, "-o", tmp_path / "out", "--text-ranks", ranks)
    assert r.exit_code == 2 and "--text-ranks" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_train_chooses_probex_settings_per_tree_on_validation(tiny_zoo, tmp_path):
    from lamina.weights.experts import ProbeXMixture

    r = run("train", tiny_zoo, "-o", tmp_path / "p", "--layer", "fc1", "--epochs", "3", "--r-u", "4", "--r-v", "4",
            "--r-t", "8", "--probex-grid", "activation=linear,weight-decay=1e-3")
    assert r.exit_code == 0, r.output
    assert "fc1 (64, 784) default: validation mAP" in r.output
    assert "fc1 (64, 784) activation=linear, weight_decay=0.001: validation mAP" in r.output
    mix = ProbeXMixture.load(tmp_path / "p")
    for info in mix.experts_.values():  # each tree's expert is one of the two candidates, saved with its settings
        c = info["expert"].config_
        assert (c.activation, c.weight_decay) in {("relu", 1e-5), ("linear", 1e-3)} and c.r_u == 4
    bad = run("train", tiny_zoo, "-o", tmp_path / "q", "--probex-grid", "activation=tanh")
    assert bad.exit_code == 2 and "activation: expected one of" in bad.output and not (tmp_path / "q").exists()


def test_train_chooses_the_text_readout_rank_on_seen_category_folds(tiny_zoo, tmp_path):
    from lamina.weights.experts import ProbeXMixture

    r = run("train", tiny_zoo, "-o", tmp_path / "p", "--layer", "fc1", "--epochs", "2", "--r-u", "4", "--r-v", "4",
            "--r-t", "8", "--heldout", "1,13", "--text-ranks", "1,3")
    assert r.exit_code == 0, r.output
    assert "text readout rank" in r.output and "zero-shot mAP on seen-category folds: rank 1" in r.output
    trees = json.loads(r.stdout)["trees"]
    mix = ProbeXMixture.load(tmp_path / "p")
    for t, info in mix.experts_.items():  # the chosen rank is the saved aligner's, and the one printed
        assert info["aligner"].rank in (1, 3) and trees[t]["text_rank"] == info["aligner"].rank


def test_search_index_scores_like_a_fresh_read(tiny_zoo, tiny_probe):
    # the probe's float16 search index must score a model as reading its layer from the file does
    from lamina.weights.experts import ProbeXMixture
    from lamina.weights.layers import read_layer
    from lamina.weights.text.aligner import embed_text

    mix = ProbeXMixture.load(tiny_probe)
    query = "a photo of a coat with a white frame"
    scores = mix.text_scores(query)
    info = mix.experts_["cnn-digits"]
    paths = {m["id"]: tiny_zoo / m["path"] for m in read_catalogue(tiny_zoo, "models", tree="cnn-digits")}
    sel = [i for i, t in enumerate(mix.index_trees_) if t == "cnn-digits"]
    x = np.stack([read_layer(paths[mix.index_ids_[i]], info["layer"]) for i in sel])
    fresh = info["aligner"].predict_proba(info["expert"].responses(x), embed_text([query]))[:, 0]
    np.testing.assert_allclose(scores[sel], fresh, atol=2e-3)


def test_top_has_one_rule_for_predict_and_search(tiny_zoo, tiny_probe):

    from lamina.errors import InputError
    from lamina.weights.experts import ProbeXMixture
    from lamina.weights.serve.search import search_like, search_text

    model = tiny_zoo / read_catalogue(tiny_zoo, "models", tree="cnn-digits")[0]["path"]
    for top in ("-5", "0"):
        for args in (("predict", tiny_probe, model, "--top", top),
                     ("search", "a coat", "--zoo", tiny_zoo, "--top", top),
                     ("search", "--like", "cnn-digits-00001", "--zoo", tiny_zoo, "--top", top)):
            r = run(*args)
            assert r.exit_code == 2 and r.output.strip() == f"error: top: expected an integer >= 1, got {top}", args
    mix = ProbeXMixture.load(tiny_probe)
    for call in (lambda t: mix.top_categories(model, top=t), lambda t: search_text(mix, "a coat", top=t),
                 lambda t: search_like(mix, "cnn-digits-00001", top=t)):
        for bad in (0, -5, 2.5, True):
            with pytest.raises(InputError, match="top: expected an integer >= 1"):
                call(bad)
    out = mix.top_categories(model, top=4)
    probs = [c["probability"] for c in out["categories"]]
    assert len(probs) == 4 and probs == sorted(probs, reverse=True)
    full = mix.predict_file(model)["probabilities"]
    assert probs[0] == round(float(full.max()), 4)
    assert len(mix.top_categories(model, top=10_000)["categories"]) == len(mix.categories_)


def test_nan_or_inf_layer_is_named_before_any_arithmetic(tiny_zoo, tiny_probe, tmp_path):
    import warnings

    from lamina.errors import InputError
    from lamina.weights.experts import ProbeXMixture
    from lamina.weights.layers import read_state

    src = tiny_zoo / read_catalogue(tiny_zoo, "models", tree="mlp-digits")[0]["path"]
    mix = ProbeXMixture.load(tiny_probe)
    for bad, name in ((np.nan, "nan.safetensors"), (np.inf, "inf.safetensors")):
        state = read_state(src)
        state["fc1.weight"][3, 5] = bad
        path = tmp_path / name
        save_file(state, str(path))
        r = run("predict", tiny_probe, path)
        assert r.exit_code == 2 and r.output.strip().startswith("error: "), r.output
        assert len(r.output.strip().splitlines()) == 1 and name in r.output and "fc1.weight" in r.output
        assert "RuntimeWarning" not in r.output
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a RuntimeWarning would fail here instead of the clear error
            with pytest.raises(InputError, match=f"{name}.*NaN or infinite"):
                mix.predict_file(path)
            with pytest.raises(InputError, match=f"{name}: holds NaN or infinite"):
                mix.router_.route_state(state, source=str(path))


def test_train_with_the_low_rank_reader_predicts_with_it_after_a_reload(tiny_zoo, tmp_path):
    from lamina.weights.experts import ProbeXMixture
    from lamina.weights.layers import read_layer

    r = run("train", tiny_zoo, "-o", tmp_path / "p", "--layer", "fc1", "--epochs", "2", "--r-u", "4", "--r-v", "4",
            "--r-t", "8", "--reader", "low-rank", "--low-rank", "1")
    assert r.exit_code == 0, r.output
    assert "low-rank reader on fc1: validation mAP" in r.output
    out = _json_tail(r.output)
    assert {t["reader"] for t in out["trees"].values()} == {"low-rank"}
    mix = ProbeXMixture.load(tmp_path / "p")
    model = read_catalogue(tiny_zoo, "models", tree="mlp-digits")[0]
    path = tiny_zoo / model["path"]
    pred = mix.predict_file(path)
    low = mix.experts_[pred["tree"]]["low_rank"]
    assert low.rank == 1 and low.platt_ is not None  # calibrated on the validation models
    expect = low.predict_proba(read_layer(path, "fc1")[None])[0]
    np.testing.assert_allclose(pred["probabilities"][mix.seen_], expect, rtol=1e-5, atol=1e-6)
    assert np.all((pred["probabilities"] > 0) & (pred["probabilities"] < 1))
    # the search index was built with the same reader
    i = mix.index_ids_.index(model["id"])
    np.testing.assert_allclose(mix.index_probs_[i][mix.seen_], expect, rtol=1e-4, atol=1e-5)
    # auto keeps, per tree, the reader with the better validation mAP
    r = run("train", tiny_zoo, "-o", tmp_path / "a", "--layer", "fc1", "--epochs", "2", "--r-u", "4", "--r-v", "4",
            "--r-t", "8", "--reader", "auto")
    assert r.exit_code == 0, r.output
    auto = ProbeXMixture.load(tmp_path / "a")
    printed = _json_tail(r.output)["trees"]
    for tree, info in auto.experts_.items():
        if info["reader"] == "low-rank":
            assert info["val_map"] > info["probex_val_map"]
        assert printed[tree]["low_rank_val_map"] == round(info["low_rank_val_map"], 4)  # both readers' scores shown
        if info["reader"] == "probex":
            assert info["val_map"] >= info["low_rank_val_map"]
    bad = run("train", tiny_zoo, "-o", tmp_path / "q", "--reader", "ridge")
    assert bad.exit_code == 2 and "--reader: expected one of" in bad.output and not (tmp_path / "q").exists()


def test_train_from_the_ridge_start(tiny_zoo, tmp_path):
    """--init ridge --epochs 0: each expert is the closed-form ridge solution in ProbeX's factors, saved as such."""
    from lamina.weights.experts import ProbeXMixture

    r = run("train", tiny_zoo, "-o", tmp_path / "p", "--layer", "fc1", "--epochs", "0", "--r-u", "4", "--r-v", "4",
            "--r-t", "8", "--init", "ridge", "--activation", "linear", "--lr", "3e-4", "--dropout", "0")
    assert r.exit_code == 0, r.output
    mix = ProbeXMixture.load(tmp_path / "p")
    for info in mix.experts_.values():
        c = info["expert"].config_
        assert c.init == "ridge" and c.epochs == 0 and c.lr == 3e-4 and c.dropout == 0
        assert info["val_map"] > 0
    for args, message in ((("--init", "ridge"), "init='ridge' needs activation='linear'"),
                          (("--init", "svd", "--activation", "linear"), "init: expected one of"),
                          (("--epochs", "0"), "--epochs: expected an integer >= 1, got 0"),
                          (("--dropout", "1.5"), "dropout: expected"), (("--lr", "nan"), "lr: expected")):
        bad = run("train", tiny_zoo, "-o", tmp_path / "q", *args)
        assert bad.exit_code == 2 and message in bad.output and not (tmp_path / "q").exists(), bad.output


def test_predict_reads_torch_files_and_folders_alike(tiny_zoo, tiny_probe, tmp_path):
    """The same model as a zoo safetensors file, a torch.save state dict and a folder with a shard index predicts
    the same; --dir lists the folder once; -o with nothing readable exits 2."""
    import torch
    from safetensors.torch import save_file as save_torch

    from lamina.weights.layers import read_state

    model = read_catalogue(tiny_zoo, "models", tree="mlp-digits-fashion")[0]
    state = {k: torch.from_numpy(v) for k, v in read_state(tiny_zoo / model["path"]).items()}
    hub = tmp_path / "hub"
    (hub / "folder").mkdir(parents=True)
    torch.save(state, hub / "model.pt")
    names = sorted(state)
    half = len(names) // 2
    save_torch({k: state[k] for k in names[:half]}, str(hub / "folder" / "model-00001-of-00002.safetensors"))
    save_torch({k: state[k] for k in names[half:]}, str(hub / "folder" / "model-00002-of-00002.safetensors"))
    (hub / "folder" / "config.json").write_text("{}")
    (hub / "folder" / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        k: f"model-0000{1 + (i >= half)}-of-00002.safetensors" for i, k in enumerate(names)}}))
    r = run("predict", tiny_probe, tiny_zoo / model["path"], "--top", "3")
    want = _json_tail(r.output)["categories"]
    r = run("predict", tiny_probe, "--dir", hub, "-o", tmp_path / "p.jsonl", "--quiet")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [row["model"] for row in rows] == [str(hub / "folder"), str(hub / "model.pt")]
    for row in rows:
        assert "error" not in row, row
        assert [c["name"] for c in row["categories"][:3]] == [c["name"] for c in want]
        assert [c["probability"] for c in row["categories"][:3]] == [c["probability"] for c in want]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.pt").write_bytes(b"not a pickle")
    (broken / "b.safetensors").write_bytes(b"\x00" * 16)
    r = run("predict", tiny_probe, "--dir", broken, "-o", tmp_path / "q.jsonl", "--quiet")
    assert r.exit_code == 2 and "no model could be read" in r.output
