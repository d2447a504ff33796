"""Reshape rules and reading layers from model files (synthetic tensors, written as real safetensors files)."""

import numpy as np
import pytest
from safetensors.numpy import save_file

from lamina.errors import CheckpointError, InputError
from lamina.weights.layers import layer_from_state, load_layers, lora_delta, read_layer, reshape_weight


def test_reshape_rules():
    rng = np.random.default_rng(0)
    lin = rng.standard_normal((5, 7)).astype(np.float32)
    assert reshape_weight(lin).shape == (5, 7)
    conv = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    x = reshape_weight(conv)
    assert x.shape == (75, 8)
    np.testing.assert_array_equal(x[:, 2], conv[2].ravel())  # column j is output channel j
    attn = rng.standard_normal((12, 4)).astype(np.float32)
    a = reshape_weight(attn, "attention")
    assert a.shape == (4, 12)
    np.testing.assert_array_equal(a[:, 4:8], attn[4:8].T)  # key block
    with pytest.raises(InputError, match="attention"):
        reshape_weight(lin, "attention")


def test_lora_uses_the_full_delta():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 9)), rng.standard_normal((6, 2))
    state = {"q.lora_A": a, "q.lora_B": b}
    np.testing.assert_allclose(layer_from_state(state, "q"), b @ a, rtol=1e-5)
    with pytest.raises(InputError, match="chain"):
        lora_delta(a, a)


def test_missing_layer_names_file_and_layer(tmp_path):
    p = tmp_path / "m.safetensors"
    save_file({"fc1.weight": np.ones((3, 4), np.float32)}, str(p))
    assert read_layer(p, "fc1").shape == (3, 4)
    assert read_layer(p, "fc1.weight").shape == (3, 4)
    with pytest.raises(InputError, match=r"m\.safetensors.*'fc7'.*fc1"):
        read_layer(p, "fc7")


def test_corrupt_file_is_a_checkpoint_error_and_skipped_in_bulk(tmp_path, caplog):
    good = tmp_path / "good.safetensors"
    save_file({"fc1.weight": np.ones((3, 4), np.float32)}, str(good))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        read_layer(bad, "fc1")
    other = tmp_path / "other.safetensors"
    save_file({"fc1.weight": np.ones((2, 4), np.float32)}, str(other))
    X, kept, skipped = load_layers([good, bad, other, good], "fc1")
    assert X.shape == (2, 3, 4) and kept == [0, 3] and len(skipped) == 2
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and "bad.safetensors" in warned[0] and "other.safetensors" in warned[1]
