"""The MiniLM x WordNet tree: a root released by others (all-MiniLM-L6-v2), real WordNet glosses, fine-tunes made
with peft and transformers in their own formats, read back through lamina's one reader."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.zoo import wordnet
from lamina.weights.zoo.build import ZooConfig, build_zoo, bundled_configs

from .conftest import read_catalogue

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


# ------------------------------------------------------------------------------------------------------- WordNet
def test_vocabulary_is_forty_disjoint_named_categories():
    vocab = wordnet.wordnet_vocabulary()
    texts = wordnet.category_glosses()
    assert [c.name for c in vocab] == [c[0] for c in wordnet.CATEGORIES]
    assert len(vocab) == 40 and len({c.offset for c in vocab}) == 40
    assert min(len(t) for t in texts) >= 80  # the bundled config's pool (60) + test (20)
    seen: dict[str, int] = {}
    for i, t in enumerate(texts):
        for g in t:
            assert seen.setdefault(g, i) == i, f"{g!r} in two categories"
    assert all(len(g.split()) >= wordnet.MIN_WORDS for t in texts for g in t)
    assert vocab[0].prompt == "definitions of birds"


def test_gloss_cleaning_drops_examples_and_the_headword():
    syn = wordnet._synsets(str(wordnet.wordnet_dir()))
    dog = next(s for s in syn.values() if s.lexfile == "noun.animal" and s.words[0] == "dog")
    assert '"the dog barked all night"' in dog.gloss
    text = wordnet.clean_gloss(dog.gloss, dog.words)
    assert '"' not in text and not re.search(r"\bdog\b", text, re.IGNORECASE)
    assert "domesticated" in text


def test_gloss_pools_are_disjoint_reproducible_and_bounded():
    pools, tests = wordnet.gloss_pools(30, 10, seed=3)
    again, _ = wordnet.gloss_pools(30, 10, seed=3)
    other, _ = wordnet.gloss_pools(30, 10, seed=4)
    assert pools == again and pools != other
    assert all(len(p) == 30 and len(t) == 10 and not set(p) & set(t) for p, t in zip(pools, tests, strict=True))
    with pytest.raises(InputError, match="beverage"):
        wordnet.gloss_pools(500, 20)


def test_missing_wordnet_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv(wordnet.WORDNET_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(wordnet, "WORDNET_DIRS", ())
    with pytest.raises(InputError, match="apt-get install wordnet-base"):
        wordnet.wordnet_vocabulary()


# ------------------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("change, match", [
    ({"pretrain": "digits"}, "goes with pretrain"),
    ({"hidden": [384, 6, 12]}, "size is fixed"),
    ({"arch": "mlp", "hidden": [8, 8], "pretrain": "all-MiniLM-L6-v2"}, "goes with pretrain"),
])
def test_minilm_root_settings_are_checked(change, match):
    doc = ZooConfig.load("minilm-wordnet-tiny").to_dict()
    doc["roots"][0].update(change)
    doc["roots"][1].update(change)
    with pytest.raises(InputError, match=match):
        ZooConfig.from_dict(doc)


def test_text_roots_need_text_data():
    doc = ZooConfig.load("minilm-wordnet-tiny").to_dict()
    doc["data"] = "fashion"
    with pytest.raises(InputError, match="wordnet"):
        ZooConfig.from_dict(doc)
    doc["data"] = "poems"
    with pytest.raises(InputError, match="data"):
        ZooConfig.from_dict(doc)


def test_cli_help_names_every_bundled_config():
    from typer.testing import CliRunner

    from lamina.cli import app

    out = CliRunner().invoke(app, ["weights", "zoo", "build", "--help"], env={"COLUMNS": "300"}).output
    assert "minilm-wordnet" in bundled_configs()
    for name in bundled_configs():
        assert name in out


# ------------------------------------------------------------------------------------------------------- the tree
@pytest.fixture(scope="module")
def minilm_zoo(tmp_path_factory):
    from lamina._process import torch_threads

    out = tmp_path_factory.mktemp("minilm-zoo")
    with torch_threads(1):
        build_zoo(ZooConfig.load("minilm-wordnet-tiny"), out, workers=2, quiet=True)
    return out


def test_tiny_tree_is_written_in_the_libraries_formats(minilm_zoo):
    from lamina.weights.io.readers import model_format

    models = read_catalogue(minilm_zoo)
    roots = read_catalogue(minilm_zoo, "roots")
    assert len(models) == 12 and set(roots) == {"minilm-lora", "minilm-full"}
    assert roots["minilm-lora"]["path"] == roots["minilm-full"]["path"]  # one released root, two trees
    kinds = {m["tree"]: model_format(minilm_zoo / m["path"]) for m in models}
    assert kinds == {"minilm-lora": "peft-adapter", "minilm-full": "hf-folder"}
    for m in models:
        assert 0.0 <= m["accuracy"] <= 1.0 and 2 <= len(m["categories"]) <= 3


def test_lora_read_back_equals_peft_merge(minilm_zoo):
    """The update lamina reads from an adapter folder (B @ A with PEFT's scale) is what PEFT itself merges into
    the root."""
    import torch
    from peft import PeftModel
    from transformers import BertForSequenceClassification

    from lamina.weights.io.readers import read_model
    from lamina.weights.layers import read_layer

    m = next(m for m in read_catalogue(minilm_zoo) if m["tree"] == "minilm-lora")
    root = minilm_zoo / read_catalogue(minilm_zoo, "roots")["minilm-lora"]["path"]
    base = BertForSequenceClassification.from_pretrained(root, num_labels=len(m["categories"]))
    before = {k: v.clone() for k, v in base.state_dict().items() if "attention.self" in k}
    merged = PeftModel.from_pretrained(base, minilm_zoo / m["path"]).merge_and_unload().state_dict()
    for layer in ("bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.5.attention.self.value"):
        delta = (merged[layer + ".weight"] - before[layer + ".weight"]).numpy()
        assert np.abs(delta).max() > 0
        np.testing.assert_allclose(read_layer(minilm_zoo / m["path"], layer), delta, atol=1e-6)
    head = read_model(minilm_zoo / m["path"])["classifier.weight"]
    assert torch.equal(merged["classifier.weight"], torch.from_numpy(head))


def test_full_finetunes_keep_the_probed_layers_and_moved(minilm_zoo):
    from safetensors.numpy import load_file

    from lamina.weights.io.readers import read_model
    from lamina.weights.trees import signature

    m = next(m for m in read_catalogue(minilm_zoo) if m["tree"] == "minilm-full")
    state = read_model(minilm_zoo / m["path"])
    assert len([k for k in state if k.startswith("bert.")]) == 12  # q and v of 6 layers
    assert state["classifier.weight"].shape == (len(m["categories"]), 384)
    assert len(signature(state)) == 12  # the head is no part of the body
    root = load_file(minilm_zoo / "roots" / "minilm-lora" / "model.safetensors")
    q = "encoder.layer.3.attention.self.query.weight"
    assert not np.array_equal(state["bert." + q], root[q])
    # the root readout's change of a full fine-tune: its weight minus the root's (read from the root folder)
    from lamina.weights.text.root_response import RootResponseReadout

    readout = RootResponseReadout(minilm_zoo / "roots" / "minilm-lora", lora=False)
    change = readout.deltas("bert." + q.removesuffix(".weight"), state["bert." + q][None])
    np.testing.assert_array_equal(change[0], state["bert." + q] - root[q])


def test_resumed_build_rebuilds_a_lost_folder_bit_for_bit(minilm_zoo, tmp_path):
    import shutil

    models = {m["id"]: m for m in read_catalogue(minilm_zoo)}
    zoo = tmp_path / "zoo"
    shutil.copytree(minilm_zoo, zoo)
    for mid in ("minilm-lora-00003", "minilm-full-00001"):
        shutil.rmtree(zoo / models[mid]["path"])
    out = build_zoo(ZooConfig.load("minilm-wordnet-tiny"), zoo, workers=1, quiet=True)
    assert out["new"] == 2 and out["rebuilt"] == 2
    again = {m["id"]: m for m in read_catalogue(zoo)}
    assert {k: v["sha256"] for k, v in again.items()} == {k: v["sha256"] for k, v in models.items()}


def test_probe_routes_and_reads_peft_folders(minilm_zoo, tmp_path):
    from lamina.weights.experts import ProbeXMixture, TrainConfig

    layer = "bert.encoder.layer.5.attention.self.value"
    mix = ProbeXMixture(TrainConfig(layers=[layer])).fit_zoo(minilm_zoo, log=lambda s: None)
    assert set(mix.experts_) == {"minilm-lora"}  # the full tree has too few models for an expert
    m = next(m for m in read_catalogue(minilm_zoo) if m["tree"] == "minilm-lora")
    out = mix.predict_file(minilm_zoo / m["path"])
    assert out["tree"] == "minilm-lora" and out["layer"] == layer
    assert len(out["probabilities"]) == len(wordnet.CATEGORIES)
    # a text root: search also reads how each change answers the root's reading of the query
    readout = mix.experts_["minilm-lora"]["root"]
    assert readout.layer_ == layer and mix.index_root_["minilm-lora"].shape[1:] == (16, 384)
    scores = mix.text_scores("a model that recognises insects")
    assert scores.shape == (len(mix.index_ids_),) and np.all((scores > 0) & (scores < 1))
    from lamina.weights.text.aligner import embed_text

    seen_prompt = mix.prompts_[mix.seen_[0]]
    assert mix._aligner_weight(embed_text([seen_prompt])[0]) == 1.0  # a seen category: the text readout alone
    assert mix._aligner_weight(embed_text(["quarterly tax filing deadlines"])[0]) < 0.5  # far from all of them
    mix.save(tmp_path / "probe")
    again = ProbeXMixture.load(tmp_path / "probe")
    np.testing.assert_allclose(again.text_scores("a model that recognises insects"), scores, rtol=1e-3, atol=1e-4)


def test_evaluation_report_on_the_text_tree(minilm_zoo):
    """`weights evaluate` on a text zoo: every weight-only method, zero-shot on held-out WordNet categories, no
    data-aware probe (they run images), trees told apart."""
    from lamina.weights.eval.evaluate import EvalConfig, evaluate_zoo

    report = evaluate_zoo(minilm_zoo, EvalConfig(seeds=[0], min_models=8, workers=1), log=lambda s: None)
    methods = {r["method"] for r in report["rows"] if r.get("tree") == "minilm-lora"}
    assert {"probex", "ridge@" + report["largest_layer"]["minilm-lora"], "zero-shot", "statnn",
            "text (root)", "zero-shot (root)"} <= methods
    root_rows = [r for r in report["rows"] if r["method"] == "zero-shot (root)"]
    assert all(r["phrasing"] in ("name", "prompt") and "attention.self" in r["layer"] for r in root_rows)
    assert all(0 <= r["map"] <= 1 for r in root_rows)
    assert not any(m.startswith("data-aware") for m in methods)
    assert report["categories"]["heldout"] == [c[0] for c in wordnet.CATEGORIES[2::5]]
    assert report["discovery"]["ari"] == 1.0 and report["discovery"]["n_found"] == 2
    assert set(report["n_models"]) == {"minilm-lora"}  # the full tree's 2 models are under min_models
