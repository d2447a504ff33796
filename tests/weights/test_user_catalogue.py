"""`lamina weights catalogue add`: a collection of models lamina did not build, catalogued and trained on.

The models are small torch MLPs saved with torch.save and as Hugging Face-style folders, trained in the test on
SYNTHETIC data (a unit test of the path, not a measurement): each model learns to tell apart a few of four
"categories" (fixed random directions of the input), so its first layer carries what it was trained on.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import InputError
from lamina.weights.zoo.catalogue import Catalogue, add_user_models, verify_files

runner = CliRunner()
NAMES = ["bird", "fish", "tree", "city"]


def _train_mlp(cats: list[int], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(len(NAMES), 16, generator=torch.Generator().manual_seed(99))  # shared "categories"
    net = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, len(cats)))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(40):
        y = torch.randint(0, len(cats), (64,), generator=g)
        x = dirs[torch.tensor(cats)[y]] + 0.3 * torch.randn(64, 16, generator=g)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"fc1.weight": net[0].weight.detach().clone(), "fc1.bias": net[0].bias.detach().clone()}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("hub")
    rng = np.random.default_rng(0)
    rows = []
    with torch.random.fork_rng():
        for i in range(24):
            cats = sorted(rng.choice(len(NAMES), 2, replace=False).tolist())
            state = _train_mlp(cats, seed=i)
            if i % 2:
                path = root / f"m{i:02d}.pt"
                torch.save(state, path)
            else:
                path = root / f"m{i:02d}"
                path.mkdir()
                (path / "config.json").write_text("{}")
                save_file(state, str(path / "model.safetensors"))
            rows.append({"path": path.name, "categories": ";".join(NAMES[c] for c in cats)})
    with open(root / "models.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["path", "categories"])
        w.writeheader()
        w.writerows(rows)
    return root


def test_catalogue_train_and_predict(collection, tmp_path):
    r = runner.invoke(app, ["weights", "catalogue", "add", str(tmp_path / "cat"), "--csv",
                            str(collection / "models.csv")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert len(out["added"]) == 24 and out["categories"] == 4
    with Catalogue(tmp_path / "cat") as cat:
        vocab = [v["name"] for v in cat.get_meta("vocabulary")]
        models = cat.models()
    assert sorted(vocab) == sorted(NAMES) and all(len(m["categories"]) == 2 for m in models)
    assert not verify_files(tmp_path / "cat", models)[1]  # files and folders match their digests
    # the same again is idempotent; an id taken by another model is refused
    r = runner.invoke(app, ["weights", "catalogue", "add", str(tmp_path / "cat"), "--csv",
                            str(collection / "models.csv")])
    assert r.exit_code == 0 and json.loads(r.output[r.output.index("{"):])["added"] == []
    r = runner.invoke(app, ["weights", "catalogue", "add", str(tmp_path / "cat"), str(collection / "m01.pt"),
                            "--categories", "bird", "--id", "m00"])
    assert r.exit_code == 2 and "already catalogued" in r.output
    r = runner.invoke(app, ["weights", "train", str(tmp_path / "cat"), "-o", str(tmp_path / "probe"), "--epochs", "3",
                            "--r-u", "4", "--r-v", "4", "--r-t", "8", "--layer", "fc1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["weights", "predict", str(tmp_path / "probe"), str(collection / "m00"), "--top", "4"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output[r.output.index("{"):])
    assert {c["name"] for c in row["categories"]} == set(NAMES)


def test_a_changed_folder_fails_its_digest(collection, tmp_path):
    import shutil

    shutil.copytree(collection / "m00", tmp_path / "m00")
    add_user_models(tmp_path / "cat", [{"path": tmp_path / "m00", "categories": "bird,fish"}])
    (tmp_path / "m00" / "extra.txt").write_text("x")
    with Catalogue(tmp_path / "cat") as cat:
        bad = verify_files(tmp_path / "cat", cat.models())[1]
    assert len(bad) == 1 and "does not match" in bad[0][1]


@pytest.mark.parametrize("entry, words", [
    ({"path": "nope.pt", "categories": "bird"}, "no such model"),
    ({"categories": "bird"}, "path"),
    ({"path": "m01.pt", "categories": ""}, "categories"),
    ({"path": "m01.pt", "categories": "bird,bird"}, "repeats"),
])
def test_bad_entries_add_nothing(collection, tmp_path, entry, words):
    entry = {**entry, **({"path": collection / entry["path"]} if "path" in entry else {})}
    good = {"path": collection / "m03.pt", "categories": "fish"}
    with pytest.raises(Exception, match=words):
        add_user_models(tmp_path / "cat", [good, entry])
    assert not (tmp_path / "cat" / "catalogue.sqlite").exists()


def test_cli_needs_categories(collection, tmp_path):
    r = runner.invoke(app, ["weights", "catalogue", "add", str(tmp_path / "c"), str(collection / "m01.pt")])
    assert r.exit_code == 2 and "--categories" in r.output
    with pytest.raises(InputError):
        add_user_models(tmp_path / "c", [])


@pytest.mark.parametrize("heldout, words", [("999", "must lie in"), ("-1", "must lie in"), ("0,1,2,3", "all 4")])
def test_heldout_indices_outside_the_vocabulary_are_refused(collection, tmp_path, heldout, words):
    add_user_models(tmp_path / "cat", [{"path": collection / f"m{i:02d}" if i % 2 == 0 else collection / f"m{i:02d}.pt",
                                        "categories": "bird,fish,tree,city".split(",")[i % 4]} for i in range(12)])
    r = runner.invoke(app, ["weights", "train", str(tmp_path / "cat"), "-o", str(tmp_path / "probe"), "--epochs", "1",
                            "--heldout", heldout])
    assert r.exit_code == 2 and words in r.output, r.output
