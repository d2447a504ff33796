"""Zoo configs, the tiny real zoo's catalogue and files, and resuming an interrupted build."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from lamina.errors import InputError
from lamina.weights.zoo.build import ZooConfig, build_zoo, model_spec
from lamina.weights.zoo.catalogue import Catalogue

from .conftest import read_catalogue, tiny_config


def test_bundled_configs():
    bench = ZooConfig.load("benchmark")
    assert len(bench.roots) >= 3 and all(r.n_models >= 1000 for r in bench.roots)
    assert {r.arch for r in bench.roots} == {"mlp", "cnn"} and any(r.parent for r in bench.roots)
    assert ZooConfig.load("small").n_models < 200


def test_config_errors(tmp_path):
    with pytest.raises(InputError, match="no bundled zoo config"):
        ZooConfig.load("huge")
    bad = tmp_path / "bad.toml"
    bad.write_text("[zoo\nname=1")
    with pytest.raises(InputError, match="bad.toml"):
        ZooConfig.load(bad)
    with pytest.raises(InputError, match="parent"):
        ZooConfig(roots=[{"name": "a", "parent": "b"}, {"name": "b"}])
    with pytest.raises(InputError, match="architecture"):
        ZooConfig(roots=[{"name": "a"}, {"name": "b", "arch": "cnn", "hidden": [2, 2, 2], "parent": "a"}])
    with pytest.raises(InputError, match="categories_per_model"):
        ZooConfig(roots=[{"name": "a"}], finetune={"categories_per_model": [5, 2]})


def test_model_specs_are_deterministic_and_varied():
    cfg = tiny_config()
    a = [model_spec(cfg, 0, i, 60) for i in range(30)]
    assert a == [model_spec(cfg, 0, i, 60) for i in range(30)]
    assert len({s["hparams"]["lr"] for s in a}) == 30 and len({len(s["categories"]) for s in a}) > 3


def test_tiny_zoo_catalogue_and_files(tiny_zoo):
    with Catalogue(tiny_zoo) as cat:
        models = cat.models()
        assert len(models) == 60 and {m["tree"] for m in models} == {"mlp-digits", "mlp-digits-fashion", "cnn-digits"}
        roots = cat.roots()
        assert roots["mlp-digits-fashion"]["parent"] == "mlp-digits"
        m = models[0]
        assert set(m["hparams"]) >= {"lr", "epochs", "images_per_category", "weight_decay", "seed"}
        assert 0.0 <= m["accuracy"] <= 1.0 and np.mean([x["accuracy"] for x in models]) > 1.5 / 8  # above chance
        with safe_open(str(tiny_zoo / m["path"]), "numpy") as fh:
            assert json.loads(fh.metadata()["categories"]) == m["categories"]
            assert fh.get_tensor("head.weight").shape[0] == len(m["categories"])
        assert len(cat.get_meta("vocabulary")) == 60


@pytest.mark.slow
def test_interrupted_build_resumes_to_the_same_zoo(tmp_path, tiny_zoo):
    cfg = tiny_config(n_models=3)
    build_zoo(cfg, tmp_path / "z", workers=1, limit=4, quiet=True)
    assert read_catalogue(tmp_path / "z", "count") == 4
    # the trees advance together: a build stopped early holds models of every tree, not all of the first one
    assert {m["tree"] for m in read_catalogue(tmp_path / "z", "models")} == {r.name for r in cfg.roots}
    summary = build_zoo(cfg, tmp_path / "z", workers=1, quiet=True)
    assert summary["new"] == 5 and summary["models"] == 9
    full = build_zoo(cfg, tmp_path / "full", workers=1, quiet=True)
    assert full["models"] == 9
    a = {m["id"]: m for m in read_catalogue(tmp_path / "z", "models")}
    b = {m["id"]: m for m in read_catalogue(tmp_path / "full", "models")}
    assert a.keys() == b.keys()
    for k in a:  # the same models, byte for byte: an interrupted build resumes to the clean build's files
        assert a[k]["categories"] == b[k]["categories"] and a[k]["hparams"] == b[k]["hparams"]
        assert a[k]["sha256"] == b[k]["sha256"]
        data = (tmp_path / "z" / a[k]["path"]).read_bytes()
        assert data == (tmp_path / "full" / b[k]["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == a[k]["sha256"]
    other = tiny_config(n_models=4)
    with pytest.raises(InputError, match="another config"):
        build_zoo(other, tmp_path / "z", quiet=True)


@pytest.mark.slow
def test_kill_9_during_a_build_then_rerun_gives_the_clean_build(tmp_path):
    """A real process killed with SIGKILL mid-build; the rerun finishes it, byte for byte the clean build, and
    leaves no temporary behind."""
    import signal
    import subprocess
    import sys

    from tests.killpoint import killed_code

    code = ("import sys; from tests.weights.conftest import tiny_config; "
            "from lamina.weights.zoo.build import build_zoo;"
            "build_zoo(tiny_config(n_models=3), sys.argv[1], workers=1, quiet=True)")
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-c", code, str(tmp_path / "z")]
    # the build kills itself right after its 2nd root: deterministic on any machine
    killed = subprocess.run(killed_code("lamina.weights.zoo.build:_build_root", 2, code, [str(tmp_path / "z")]),
                            cwd=root)
    assert killed.returncode == -signal.SIGKILL, "the build must be interrupted mid-way for this test to mean anything"
    assert len(read_catalogue(tmp_path / "z", "roots")) == 2 and not read_catalogue(tmp_path / "z", "models")
    subprocess.run(cmd, cwd=root, check=True)
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "clean")], cwd=root, check=True)
    a = {m["id"]: m for m in read_catalogue(tmp_path / "z", "models")}
    b = {m["id"]: m for m in read_catalogue(tmp_path / "clean", "models")}
    assert a.keys() == b.keys() and len(a) == 9
    for k in a:
        assert (tmp_path / "z" / a[k]["path"]).read_bytes() == (tmp_path / "clean" / b[k]["path"]).read_bytes()
    leftovers = [p for p in (tmp_path / "z").rglob(".*") if "~lamina-" in p.name]
    assert leftovers == []


@pytest.mark.parametrize("line, words", [
    ("batch_size = [-5]", "finetune.batch_size"),
    ("batch_size = [0]", "finetune.batch_size"),
    ("lr = [nan, nan]", "finetune.lr"),
    ("lr = \"fast\"", "finetune.lr"),
    ("weight_decay = [-1.0]", "finetune.weight_decay"),
    ("weight_decay = [nan]", "finetune.weight_decay"),
    ("images_per_category = [10.5, 20]", "finetune.images_per_category"),
    ("epochs = [0, 1]", "finetune.epochs"),
    ("lora_alpha = [inf]", "finetune.lora_alpha"),
    ("categories_per_model = [1, 3]", "finetune.categories_per_model"),
])
def test_bad_finetune_values_are_refused_before_any_work(tmp_path, line, words):
    """Every value of a zoo config is checked when it is read: nothing is trained, no folder is made."""
    cfg = tmp_path / "z.toml"
    cfg.write_text("[zoo]\nseed = 1\nviews = ['original', 'upside down']\npool_per_category = 20\n"
                   "test_per_category = 5\n[[roots]]\nname = 'mlp'\narch = 'mlp'\nhidden = [8, 8]\n"
                   "pretrain = 'digits'\nepochs = 1\nn_models = 2\n[finetune]\ncategories_per_model = [2, 2]\n"
                   "images_per_category = [5, 5]\nepochs = [1, 1]\n" + line + "\n")
    text = cfg.read_text()
    key = line.split(" = ")[0]
    lines = [x for x in text.splitlines() if not (x.startswith(key + " = ") and x != line)]
    cfg.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=words):
        ZooConfig.load(cfg)
