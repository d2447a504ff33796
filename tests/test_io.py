import json

import numpy as np
import pytest
import torch

from lamina._io import atomic_path, load_checkpoint, read_checkpoint_config, save_checkpoint, write_json_atomic
from lamina.errors import CheckpointError


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_checkpoint_round_trip_and_corruption(tmp_path):
    d = tmp_path / "ck"
    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": np.ones(3, dtype=np.float32)}
    save_checkpoint(d, tensors, kind="test.Model", config={"width": 3}, metadata={"data": "synthetic"})
    loaded, doc = load_checkpoint(d, kind="test.Model")
    torch.testing.assert_close(loaded["w"], tensors["w"])
    assert doc["config"] == {"width": 3} and len(doc["sha256"]) == 64
    with pytest.raises(CheckpointError, match="holds a 'test.Model'"):
        load_checkpoint(d, kind="other.Model")
    # overwrite keeps a complete checkpoint
    save_checkpoint(d, {"w": torch.zeros(1)}, kind="test.Model", config={"width": 1})
    assert read_checkpoint_config(d)["config"] == {"width": 1}
    # corrupt the weights: refused by the digest
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(d)


def test_checkpoint_rejects_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path)
    write_json_atomic(tmp_path / "config.json", {"format": "something-else"})
    with pytest.raises(CheckpointError, match="not a lamina checkpoint"):
        load_checkpoint(tmp_path)
    write_json_atomic(tmp_path / "config.json", {"format": "lamina-checkpoint", "format_version": 99})
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["format_version"] == 99
