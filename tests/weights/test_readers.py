"""Model files written by the real libraries (transformers, peft, torch.save) read through one reader.

Every file here is written in the test by the library that users save with (tiny configs, random init, nothing
downloaded); nothing is a hand-made look-alike.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lamina.errors import CheckpointError, InputError
from lamina.weights.io.readers import find_models, model_format, peft_name, read_model
from lamina.weights.layers import read_layer, read_state

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")


def tiny_bert(seed: int = 0):
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                  vocab_size=100, max_position_embeddings=64)
    torch.manual_seed(seed)
    return transformers.BertModel(cfg)


def numpy_state(module) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def bert_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    model = tiny_bert()
    model.save_pretrained(root / "bert")
    model.save_pretrained(root / "bert-sharded", max_shard_size="20KB")
    return root, numpy_state(model)


def test_hf_folder_reads_every_tensor(bert_folders):
    root, truth = bert_folders
    assert model_format(root / "bert") == "hf-folder"
    state = read_state(root / "bert")
    assert set(truth) - set(state) <= {"embeddings.position_ids"}  # a buffer transformers does not save
    for k, v in state.items():
        np.testing.assert_array_equal(v, truth[k])


def test_sharded_folder_follows_its_index(bert_folders):
    root, truth = bert_folders
    index = json.loads((root / "bert-sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1  # really sharded
    assert read_state(root / "bert-sharded").keys() == read_state(root / "bert").keys()
    layer = "encoder.layer.1.attention.self.query"
    np.testing.assert_array_equal(read_layer(root / "bert-sharded", layer), truth[layer + ".weight"])
    # a folder is one model, its shards are not models of their own
    assert find_models(root) == [root / "bert", root / "bert-sharded"]


def test_missing_shard_is_named(bert_folders, tmp_path):
    import shutil

    root, _ = bert_folders
    broken = tmp_path / "broken"
    shutil.copytree(root / "bert-sharded", broken)
    shard = sorted(broken.glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(CheckpointError, match=shard.name):
        read_state(broken)


def _peft_adapter(tmp_path, **lora):
    model = tiny_bert()
    cfg = peft.LoraConfig(target_modules=["query", "value"], **lora)
    pm = peft.get_peft_model(model, cfg)
    torch.manual_seed(1)
    for name, p in pm.named_parameters():
        if "lora_B" in name:  # PEFT starts B at zero; a fine-tune moves it
            torch.nn.init.normal_(p)
    pm.save_pretrained(tmp_path / "adapter")
    deltas = {}
    for name, mod in pm.named_modules():
        if hasattr(mod, "get_delta_weight") and "default" in getattr(mod, "lora_A", {}):
            deltas[name.removeprefix("base_model.model.")] = mod.get_delta_weight("default").detach().numpy()
    return tmp_path / "adapter", deltas


@pytest.mark.parametrize("lora", [
    dict(r=4, lora_alpha=8),
    dict(r=4, lora_alpha=8, use_rslora=True),
    dict(r=4, lora_alpha=8, rank_pattern={"layer.1.attention.self.query": 2}, alpha_pattern={"value": 16}),
], ids=["plain", "rslora", "patterns"])
def test_peft_lora_delta_equals_peft_own(tmp_path, lora):
    path, deltas = _peft_adapter(tmp_path, **lora)
    assert model_format(path) == "peft-adapter"
    state = read_state(path)
    assert set(state) == {f"{m}.lora_{h}" for m in deltas for h in "AB"}
    for module, delta in deltas.items():
        np.testing.assert_allclose(read_layer(path, module), delta, rtol=1e-5, atol=1e-6)


def test_peft_modules_to_save_keep_their_names(tmp_path):
    path, _ = _peft_adapter(tmp_path, r=2, lora_alpha=2, modules_to_save=["pooler.dense"])
    state = read_state(path)
    assert {"pooler.dense.weight", "pooler.dense.bias"} <= set(state)


def test_peft_adapter_of_a_lamina_vit_root_matches_lamina_adapters(tmp_path):
    """An adapter saved by peft on a lamina zoo ViT has the tensor names and shapes of lamina's own LoRA files, so
    it routes to the same tree (same signature) and yields the same update."""
    from lamina.weights.trees import signature
    from lamina.weights.zoo.vit import ViT, adapter_state, add_lora

    torch.manual_seed(0)
    root = ViT([16, 2, 2], n_classes=5)
    ours = ViT([16, 2, 2], n_classes=5)
    ours.load_state_dict(root.state_dict())
    add_lora(ours, rank=2, alpha=4, seed=0)
    theirs = peft.get_peft_model(root, peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q", "v"],
                                                       modules_to_save=["head"]))
    torch.manual_seed(3)
    for name, p in theirs.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)
    theirs.save_pretrained(tmp_path / "vit-adapter")
    state = read_state(tmp_path / "vit-adapter")
    assert signature(state) == signature(adapter_state(ours))
    q = theirs.base_model.model.blocks[1].attn.q
    np.testing.assert_allclose(read_layer(tmp_path / "vit-adapter", "blocks.1.attn.q"),
                               q.get_delta_weight("default").detach().numpy(), rtol=1e-5, atol=1e-6)


def test_peft_refuses_what_it_cannot_read(tmp_path):
    path, _ = _peft_adapter(tmp_path, r=2, lora_alpha=2)
    cfg = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**cfg, "use_dora": True}))
    with pytest.raises(InputError, match="DoRA"):
        read_state(path)
    (path / "adapter_config.json").write_text(json.dumps({**cfg, "lora_alpha": "big"}))
    with pytest.raises(CheckpointError, match="lora_alpha"):
        read_state(path)


def test_peft_names():
    assert peft_name("base_model.model.a.b.lora_A.weight") == "a.b.lora_A"
    assert peft_name("base_model.model.a.b.lora_B.default.weight") == "a.b.lora_B"
    assert peft_name("base_model.model.head.modules_to_save.default.weight") == "head.weight"
    assert peft_name("encoder.weight") == "encoder.weight"


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
@pytest.mark.parametrize("suffix", [".pt", ".bin", ".pth"])
def test_torch_state_dicts(tmp_path, wrap, suffix):
    model = tiny_bert()
    sd = model.state_dict()
    path = tmp_path / f"model{suffix}"
    torch.save(sd if wrap is None else {wrap: sd, "epoch": 3}, path)
    assert model_format(path) == "torch"
    state = read_state(path)
    truth = numpy_state(model)
    assert set(state) == set(truth)
    np.testing.assert_array_equal(state["pooler.dense.weight"], truth["pooler.dense.weight"])


def test_bfloat16_files_are_read_as_float32(tmp_path):
    model = tiny_bert().to(torch.bfloat16)
    model.save_pretrained(tmp_path / "bf16")
    torch.save(model.state_dict(), tmp_path / "bf16.pt")
    for p in (tmp_path / "bf16", tmp_path / "bf16.pt"):
        w = read_layer(p, "pooler.dense")
        assert w.dtype == np.float32
        np.testing.assert_array_equal(w, model.pooler.dense.weight.detach().float().numpy())


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "obj": object()}, path)  # weights_only refuses arbitrary objects
    with pytest.raises(CheckpointError, match="evil.pt"):
        read_state(path)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state(tmp_path / "list.pt")
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="junk.bin"):
        read_state(tmp_path / "junk.bin")


def test_unknown_paths_say_what_a_model_is(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="unknown model file type"):
        read_model(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a model folder"):
        read_model(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="no such model"):
        read_model(tmp_path / "missing.safetensors")


def test_find_models_lists_files_and_folders_once(bert_folders, tmp_path):
    import shutil

    root, _ = bert_folders
    shutil.copytree(root / "bert", tmp_path / "hub" / "bert")
    torch.save(tiny_bert().state_dict(), tmp_path / "hub" / "a.pt")
    (tmp_path / "hub" / "readme.md").write_text("x")
    (tmp_path / "hub" / ".hidden.pt").write_bytes(b"")
    assert find_models(tmp_path / "hub") == [tmp_path / "hub" / "a.pt", tmp_path / "hub" / "bert"]
    assert find_models(tmp_path / "hub" / "bert") == [tmp_path / "hub" / "bert"]  # the folder itself is a model
