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


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_a_killed_writer_are_removed_on_the_next_write(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    target = tmp_path / "history.json"
    # a real writer killed with SIGKILL inside the atomic block leaves its temporary behind
    code = ("import os, signal, sys; from lamina._io import atomic_path\n"
            f"with atomic_path({str(target)!r}) as tmp:\n"
            "    tmp.write_text('half'); os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".history.json.") and not target.exists()
    # an abandoned checkpoint folder of a dead process, and a live writer's temporary that must be kept
    (tmp_path / f".history.json.~lamina-{_dead_pid()}-abcd1234.json").write_text("x")
    live = tmp_path / f".history.json.~lamina-{os.getpid()}-feedbeef.json"
    live.write_text("in progress")
    write_json_atomic(target, [1, 2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["history.json", live.name])
    assert json.loads(target.read_text()) == [1, 2]


def test_written_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {})
        save_checkpoint(tmp_path / "ck", {"w": torch.ones(2)}, kind="t", config={})
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "ck").stat().st_mode & 0o777 == 0o755
        assert (tmp_path / "ck" / "config.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_checkpoint_files_are_byte_reproducible(tmp_path):
    t = {"b": torch.arange(3.0), "a": np.eye(2, dtype=np.float32), "c": torch.zeros(1)}
    save_checkpoint(tmp_path / "x", t, kind="t", config={"k": 1}, metadata={"m": [1, 2]})
    save_checkpoint(tmp_path / "y", dict(reversed(list(t.items()))), kind="t", config={"k": 1}, metadata={"m": [1, 2]})
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "x" / name).read_bytes() == (tmp_path / "y" / name).read_bytes()


def test_checkpoint_with_non_finite_weights_is_refused(tmp_path):
    save_checkpoint(tmp_path / "nan", {"w": torch.tensor([1.0, float("nan")]), "i": torch.arange(2)}, kind="t",
                    config={})
    with pytest.raises(CheckpointError, match="NaN or infinite values in tensor 'w'"):
        load_checkpoint(tmp_path / "nan")


@pytest.mark.parametrize("bad", [12345, None, 1.5, ["a"]])
def test_checkpoint_path_of_the_wrong_type_is_refused(bad):
    with pytest.raises(CheckpointError, match="expected a path"):
        load_checkpoint(bad)


def test_reading_a_checkpoint_while_it_is_rewritten_never_sees_a_mix(tmp_path):
    """A reader racing a writer that replaces the folder over and over always gets a complete checkpoint."""
    import threading
    import time

    d = tmp_path / "best"
    save_checkpoint(d, {"w": torch.zeros(2000)}, kind="t", config={"v": 0})
    stop = threading.Event()
    errors = []

    def writer():
        v = 0
        while not stop.is_set():
            v += 1
            save_checkpoint(d, {"w": torch.full((2000,), float(v))}, kind="t", config={"v": v})
            time.sleep(0.001)  # rewrite often, but let a reader on a busy machine finish now and then

    th = threading.Thread(target=writer)
    th.start()
    try:
        for _ in range(300):
            try:
                tensors, doc = load_checkpoint(d, kind="t")
            except CheckpointError as exc:  # pragma: no cover - the failure this test exists to catch
                errors.append(str(exc))
                continue
            assert float(tensors["w"][0]) == doc["config"]["v"]
    finally:
        stop.set()
        th.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_an_edited_config_json_is_refused_and_bad_values_name_the_file(tmp_path):
    """config.json is covered by its content_sha256: an edited architecture field is refused, not loaded; a value
    out of range (also with a digest that matches) names the file."""
    import json

    import lamina.geo
    from lamina._io import content_sha256
    from lamina.errors import CheckpointError
    from lamina.geo.data.grid import Variable
    from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig

    cfg = EncoderConfig(n_variables=1, dim_hidden=8, num_layers=2, dim_embedding=4)
    enc = ClimateEncoder(ClimateModule(cfg), [Variable("t", "degC")], [0.0], [1.0])
    enc.save(tmp_path / "ck")
    lamina.geo.load(tmp_path / "ck")  # intact: loads
    path = tmp_path / "ck" / "config.json"
    doc = json.loads(path.read_text())
    for field, value in [("w0_initial", 31.0), ("residual", False)]:
        path.write_text(json.dumps({**doc, "config": {**doc["config"], field: value}}))
        with pytest.raises(CheckpointError, match="changed after it was written"):
            lamina.geo.load(tmp_path / "ck")
    edited = {**doc, "metadata": {**doc["metadata"], "normalisation": {"mean": [5.0], "std": [1.0]}}}
    path.write_text(json.dumps(edited))
    with pytest.raises(CheckpointError, match="changed after it was written"):
        lamina.geo.load(tmp_path / "ck")
    for field, value, words in [("w0_initial", float("inf"), "w0_initial"), ("residual", "yes", "residual"),
                                ("static_variables", ["x"], "static_variables"), ("sh_degree", 1e9, "sh_degree")]:
        bad = {**doc, "config": {**doc["config"], field: value}}
        bad["content_sha256"] = content_sha256(json.loads(json.dumps(bad).replace("Infinity", "1e999")))
        path.write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=f"config.json.*{words}|{words}"):
            lamina.geo.load(tmp_path / "ck")
