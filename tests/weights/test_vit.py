"""The ViT zoo architecture, LoRA adapters and their files, and a tiny transformer zoo end to end (Fashion-MNIST and
digits, built offline; the zoo is small for speed, the images are real)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lamina.errors import InputError
from lamina.weights.experts import candidate_layers
from lamina.weights.layers import layer_from_state
from lamina.weights.trees import body_vector, signature
from lamina.weights.zoo.build import ZooConfig, build_zoo, model_spec
from lamina.weights.zoo.models import ArchConfig, build_model, state_to_numpy, train_classifier
from lamina.weights.zoo.vit import adapter_state, add_lora, is_adapter, merge_adapter

ARCH = ArchConfig("vit", [16, 1, 2])


def _images(n=32, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28)).astype(np.float32)  # synthetic pixels: shapes only


def test_vit_shapes_and_arch_checks():
    net = build_model(ARCH, 5, seed=0)
    assert net(torch.from_numpy(_images(4))).shape == (4, 5)
    with pytest.raises(InputError, match="multiple of its heads"):
        ArchConfig("vit", [10, 1, 3])
    with pytest.raises(InputError, match="3 positive widths"):
        ArchConfig("vit", [16, 2])


def test_lora_starts_at_the_root_and_trains_only_adapters_and_head():
    net = build_model(ARCH, 4, seed=0)
    x = torch.from_numpy(_images(8))
    before = net(x).detach()
    root = {k: v.copy() for k, v in state_to_numpy(net).items()}
    names = add_lora(net, rank=3, alpha=6.0, seed=1)
    assert names == ["blocks.0.attn.q", "blocks.0.attn.v"]
    torch.testing.assert_close(net(x).detach(), before)  # B starts at zero
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"} | {f"{n}.lora_{f}" for n in names for f in "AB"}
    y = np.arange(32) % 4
    train_classifier(net, _images(32, 1), y, epochs=2, lr=1e-2, seed=0)
    after = state_to_numpy(net)
    for k, v in root.items():  # every base weight unchanged, the adapters moved
        if not k.startswith("head."):
            key = k.replace("attn.q.", "attn.q.base.").replace("attn.v.", "attn.v.base.")
            np.testing.assert_array_equal(after[key], v)
    assert np.abs(after["blocks.0.attn.q.lora_B"]).max() > 0


def test_adapter_file_merges_to_the_same_function():
    net = build_model(ARCH, 3, seed=0)
    root = state_to_numpy(net)
    add_lora(net, rank=4, alpha=8.0, seed=2)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "lora_B" in n:
                p.normal_()
    x = torch.from_numpy(_images(6))
    want = net(x).detach()
    st = adapter_state(net)
    assert is_adapter(st) and not is_adapter(root)
    assert set(st) == {f"blocks.0.attn.{t}.lora_{f}" for t in "qv" for f in "AB"} | {"head.weight", "head.bias"}
    fresh = build_model(ARCH, 3, seed=9)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in merge_adapter(root, st).items()}, strict=True)
    torch.testing.assert_close(fresh(x).detach(), want, rtol=1e-4, atol=1e-5)
    # the layer a probe reads is the update B @ A, scaling included
    delta = layer_from_state(st, "blocks.0.attn.q")
    merged = merge_adapter(root, st)["blocks.0.attn.q.weight"] - root["blocks.0.attn.q.weight"]
    np.testing.assert_allclose(delta, merged, rtol=1e-5, atol=1e-6)


def test_adapters_of_any_rank_share_one_signature():
    states = []
    for rank in (2, 5):
        net = build_model(ARCH, 3, seed=0)
        add_lora(net, rank=rank, alpha=4.0, seed=rank)
        states.append(adapter_state(net))
    sigs = [signature(s) for s in states]
    assert sigs[0] == sigs[1]
    assert ("blocks.0.attn.q.lora_delta", (16, 16)) in sigs[0]
    assert body_vector(states[0], sigs[0]).shape == (2 * 16 * 16,)
    assert candidate_layers(states[0]) == ["blocks.0.attn.q", "blocks.0.attn.v"]
    full = state_to_numpy(build_model(ARCH, 3, seed=0))
    assert signature(full) != sigs[0]  # a full fine-tune has another layout


def test_config_checks_for_lora_and_shared_roots():
    base = {"name": "a", "arch": "vit", "hidden": [16, 1, 2], "n_models": 2}
    with pytest.raises(InputError, match="LoRA adapts attention"):
        ZooConfig(roots=[{"name": "m", "arch": "mlp", "finetune": "lora"}])
    with pytest.raises(InputError, match="finetune"):
        ZooConfig(roots=[{**base, "finetune": "adapter"}])
    with pytest.raises(InputError, match="must be a root listed before"):
        ZooConfig(roots=[{**base, "shares_root": "b"}])
    with pytest.raises(InputError, match="pretraining settings"):
        ZooConfig(roots=[base, {**base, "name": "b", "epochs": 3, "shares_root": "a"}])
    with pytest.raises(InputError, match="lora_rank"):
        ZooConfig(roots=[base], finetune={"lora_rank": [0, 4]})
    cfg = ZooConfig(roots=[{**base, "finetune": "lora"}, {**base, "name": "b", "shares_root": "a"}])
    lora, full = model_spec(cfg, 0, 3, 60)["hparams"], model_spec(cfg, 1, 3, 60)["hparams"]
    assert 4 <= lora["lora_rank"] <= 16 and lora["lora_alpha"] in (4.0, 8.0, 16.0, 32.0)
    assert 1e-3 <= lora["lr"] <= 1e-2 and "lora_rank" not in full
    longer = ZooConfig(roots=cfg.roots, finetune={"lora_epochs": [6, 8]})
    assert all(6 <= model_spec(longer, 0, i, 60)["hparams"]["epochs"] <= 8 for i in range(20))
    assert model_spec(longer, 1, 3, 60) == model_spec(cfg, 1, 3, 60)  # full fine-tunes keep their draws
    with pytest.raises(InputError, match="lora_epochs"):
        ZooConfig(roots=[base], finetune={"lora_epochs": [0, 2]})


def test_full_finetune_specs_are_unchanged():
    """Adding LoRA draws must not move any earlier zoo's models (their files are byte-reproducible)."""
    spec = model_spec(ZooConfig.load("benchmark"), 1, 7, 60)
    assert spec == {"id": "mlp-fashion-00007", "tree": "mlp-fashion", "categories": [3, 17, 20, 23, 27, 30, 49, 50, 51,
                                                                                     55],
                    "hparams": {"images_per_category": 69, "epochs": 3, "lr": 0.0006004228576842902,
                                "weight_decay": 0.0, "batch_size": 32, "head_init": "zeros", "seed": 220034740}}


def test_bundled_transformer_config():
    cfg = ZooConfig.load("transformer")
    lora, full = cfg.roots
    assert (lora.finetune, lora.n_models, full.finetune, full.shares_root) == ("lora", 1000, "full", "vit-lora")
    assert cfg.finetune.lora_rank == [4, 16] and cfg.finetune.lora_epochs == [6, 12]


def test_bundled_wide_config_pairs_with_the_transformer_lora_tree():
    """The wide zoo's LoRA models draw the same categories and hyperparameters as the transformer zoo's, model by
    model, so that the two trees differ only in the ViT's width."""
    narrow, wide = ZooConfig.load("transformer"), ZooConfig.load("transformer-wide")
    assert [r.hidden for r in wide.roots] == [[128, 2, 4]] and wide.roots[0].finetune == "lora"
    for i in (0, 1, 999):
        a, b = model_spec(narrow, 0, i, 60), model_spec(wide, 0, i, 60)
        assert (a["categories"], a["hparams"]) == (b["categories"], b["hparams"])


def tiny_vit_config() -> ZooConfig:
    root = {"arch": "vit", "hidden": [8, 1, 2], "pretrain": "digits", "epochs": 1, "seed": 1, "n_models": 20}
    return ZooConfig(name="vit-test", seed=3, pool_per_category=30, test_per_category=10,
                     roots=[{**root, "name": "vit-lora", "finetune": "lora"},
                            {**root, "name": "vit-full", "shares_root": "vit-lora"}],
                     finetune={"categories_per_model": [3, 5], "images_per_category": [8, 12], "epochs": [1, 1],
                               "lora_rank": [2, 4]})


def test_transformer_zoo_end_to_end(tmp_path):
    from lamina.weights.eval.evaluate import EvalConfig, evaluate_zoo
    from lamina.weights.layers import read_state
    from lamina.weights.probes.probex import ProbeXConfig
    from lamina.weights.zoo.catalogue import Catalogue

    zoo = tmp_path / "zoo"
    build_zoo(tiny_vit_config(), zoo, workers=2, quiet=True)
    with Catalogue(zoo) as cat:
        roots, models = cat.roots(), cat.models()
    assert roots["vit-lora"]["path"] == roots["vit-full"]["path"]  # one root, two trees
    assert len(list((zoo / "roots").iterdir())) == 1
    lora = [m for m in models if m["tree"] == "vit-lora"]
    st = read_state(zoo / lora[0]["path"])
    rank = lora[0]["hparams"]["lora_rank"]
    assert st["blocks.0.attn.q.lora_A"].shape == (rank, 8) and "blocks.0.attn.k.weight" not in st
    assert len({m["hparams"]["lora_rank"] for m in lora}) > 1

    small = ProbeXConfig(r_u=4, r_v=4, r_t=8, epochs=3)
    grid = [{"activation": "linear", "weight_decay": 1e-3}]
    rep = evaluate_zoo(zoo, EvalConfig(seeds=[0], probex=small, compact=ProbeXConfig(r_u=2, r_v=2, r_t=4, epochs=3),
                                       probex_grid=grid, workers=2), log=lambda m: None)
    assert {r["variant"] for r in rep["layer_sweep"]} == {0, 1}  # every layer with either setting
    for t in ("vit-lora", "vit-full"):
        runs = [r for r in rep["layer_sweep"] if r["tree"] == t]
        assert len(runs) == 2 * len({r["layer"] for r in runs})
        assert rep["best_settings"][t] in ({}, grid[0])
    methods = {(r["tree"], r["method"]) for r in rep["rows"]}
    largest = rep["largest_layer"]["vit-lora"]
    assert largest.startswith("blocks.0.attn.")
    for m in ("probex", f"probex@{largest}.lora_A", f"probex@{largest}.lora_B", f"probex-compact@{largest}",
              f"dense-logistic@{largest}", f"ridge@{largest}", f"low-rank@{largest}", "zero-shot",
              "data-aware (model)"):
        assert ("vit-lora", m) in methods, m
    assert not any(m.endswith((".lora_A", ".lora_B")) for t, m in methods if t == "vit-full")
    assert ("vit-full", "data-aware (layer)") not in methods  # the ViT's first layer reads patches
    assert rep["discovery"]["ari"] == 1.0 and rep["discovery"]["ari[vit-full + vit-lora]"] == 1.0
    for r in rep["rows"]:
        if not r["method"].startswith("_"):
            assert np.isfinite(r["map"]), r
