"""Predict and index at scale: batched predictions equal per-file ones, an index appended to equals one rebuilt,
and the errors of both (exit code 2, one line naming the argument or file)."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from lamina.cli import app
from lamina.errors import CheckpointError, InputError
from lamina.weights.experts import ProbeXMixture
from lamina.weights.layers import read_state
from lamina.weights.serve.index import ModelIndex, add_to_index, build_index
from lamina.weights.serve.predict import Source, catalogue_sources, folder_sources, iter_predictions, write_predictions
from lamina.weights.serve.search import search_like, search_text

from .conftest import read_catalogue

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["weights", *map(str, args)])


def _json_tail(out: str):
    return json.loads(out[out.index("{"):])


@pytest.fixture(scope="module")
def mix(tiny_probe):
    return ProbeXMixture.load(tiny_probe)


@pytest.fixture
def folder(tiny_zoo, tmp_path):
    """4 models of each of the 3 trees (two architectures, so two signatures), some in a subfolder."""
    out = tmp_path / "models"
    for tree in sorted({m["tree"] for m in read_catalogue(tiny_zoo)}):
        for k, m in enumerate(read_catalogue(tiny_zoo, "models", tree=tree)[:4]):
            dst = out / ("sub" if k % 2 else "") / f"{m['id']}.safetensors"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tiny_zoo / m["path"], dst)
    return out


def test_batched_predictions_equal_per_file_ones(mix, folder):
    sources = folder_sources(folder)
    assert len(sources) == 12 and any("sub" in str(s.path) for s in sources)
    batched = list(iter_predictions(mix, sources, batch_size=5))  # batches that mix trees and signatures
    assert [r["model"] for r in batched] == [str(s.path) for s in sources]
    for r, s in zip(batched, sources, strict=True):
        one = mix.predict_file(s.path)
        assert r["tree"] == one["tree"] and s.path.stem.startswith(r["tree"] + "-")
        np.testing.assert_allclose(r["probabilities"], one["probabilities"], atol=1e-5)
    assert len({r["tree"] for r in batched}) == 3


def test_cli_predict_over_a_folder_writes_json_lines_like_per_file_predict(tiny_probe, folder, tmp_path):
    out = tmp_path / "pred.jsonl"
    r = run("predict", tiny_probe, "--dir", folder, "-o", out, "--batch-size", "3", "--top", "3")
    assert r.exit_code == 0, r.output
    doc = _json_tail(r.output)
    assert {k: doc[k] for k in ("predictions", "models", "errors")} == {"predictions": str(out), "models": 12,
                                                                       "errors": 0}
    assert doc["command"] == "weights predict" and doc["written"] == [str(out)] and doc["probe_sha256"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and not list(tmp_path.glob(".pred.jsonl.*"))  # no temporary left
    for row in rows[:: 5]:
        r = run("predict", tiny_probe, row["model"], "--top", "3")
        assert r.exit_code == 0, r.output
        one = _json_tail(r.output)
        assert row["tree"] == one["tree"] and row["layer"] == one["layer"]
        assert [c["name"] for c in row["categories"]] == [c["name"] for c in one["categories"]]
        np.testing.assert_allclose([c["probability"] for c in row["categories"]],
                                   [c["probability"] for c in one["categories"]], atol=2e-4)


def test_cli_predict_over_a_catalogue_keeps_its_ids(tiny_zoo, tiny_probe, tmp_path):
    out = tmp_path / "zoo.jsonl"
    r = run("predict", tiny_probe, "--zoo", tiny_zoo, "-o", out, "--quiet")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    models = read_catalogue(tiny_zoo)
    assert [row["id"] for row in rows] == [m["id"] for m in models]
    assert [row["tree"] for row in rows] == [m["tree"] for m in models]  # every model routed to its own tree


def test_broken_files_get_an_error_row_in_a_batch_and_fail_a_plain_predict(mix, tiny_probe, folder, tmp_path):
    good = sorted(folder.glob("*.safetensors"))[0]
    corrupt = folder / "corrupt.safetensors"
    corrupt.write_bytes(good.read_bytes()[:100])
    state = read_state(good)
    state["fc1.weight"][0, 0] = np.inf
    save_file(state, str(folder / "inf.safetensors"))
    out = tmp_path / "pred.jsonl"
    summary = write_predictions(mix, folder_sources(folder), out, top=2, batch_size=4)
    assert summary == {"predictions": str(out), "models": 12, "errors": 2}
    rows = {json.loads(line)["model"]: json.loads(line) for line in out.read_text().splitlines()}
    assert "not a readable safetensors" in rows[str(corrupt)]["error"]
    assert "'fc1.weight' holds NaN or infinite" in rows[str(folder / "inf.safetensors")]["error"]
    assert rows[str(good)]["tree"] and len(rows[str(good)]["categories"]) == 2
    r = run("predict", tiny_probe, good, corrupt)  # without -o: the first bad file stops the command
    assert r.exit_code == 2 and "corrupt.safetensors" in r.output and "Traceback" not in r.output
    with pytest.raises(InputError, match="inf.safetensors: tensor 'fc1.weight'"):
        list(iter_predictions(mix, [good, folder / "inf.safetensors"], batch_size=8))


def test_an_interrupted_batch_leaves_nothing_at_its_output(mix, folder, tmp_path):
    out = tmp_path / "pred.jsonl"

    def stop(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_predictions(mix, folder_sources(folder), out, batch_size=4, progress=stop)
    assert list(tmp_path.iterdir()) == [folder]


def test_predict_bad_input_names_the_argument(tiny_probe, tmp_path, mix):
    (tmp_path / "empty").mkdir()
    for args, words in [(("--dir", tmp_path / "nope"), "--dir:"),
                        (("--dir", tmp_path / "empty"), "holds no model files"),
                        (("--batch-size", "0", "--dir", tmp_path), "--batch-size"), ((), "model: give model")]:
        r = run("predict", tiny_probe, *args)
        assert r.exit_code == 2 and words in r.output, (args, r.output)
    with pytest.raises(InputError, match="errors: expected"):
        list(iter_predictions(mix, [tmp_path / "x.safetensors"], errors="ignore"))


# ---------------------------------------------------------------------------------------------------------- index
def test_index_appended_to_equals_the_index_rebuilt(mix, tiny_zoo, tmp_path):
    sources = catalogue_sources(tiny_zoo)
    full, skipped = build_index(mix, sources, batch_size=7)
    assert not skipped and full.ids == [s.id for s in sources]
    part, _ = build_index(mix, sources[:23], batch_size=7)
    part.save(tmp_path / "ix")
    summary = add_to_index(tmp_path / "ix", mix, sources[23:40], batch_size=5)
    assert summary == {"index": str(tmp_path / "ix"), "added": 17, "skipped": [], "models": 40}
    add_to_index(tmp_path / "ix", mix, sources[35:], skip_present=True)  # ids 35..39 are already there
    grown = ModelIndex.load(tmp_path / "ix")
    assert grown.ids == full.ids and grown.trees == full.trees
    np.testing.assert_allclose(grown.probs.astype(np.float32), full.probs.astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(grown.q.astype(np.float32), full.q.astype(np.float32), atol=2e-3, rtol=2e-3)
    assert all(np.array_equal(grown.bases[t], full.bases[t]) for t in full.bases)
    q = "a photo of a sneaker with a white frame"
    a, b = search_text(mix, q, top=5, index=grown), search_text(mix, q, top=5, index=full)
    assert [x["id"] for x in a] == [x["id"] for x in b]


def test_index_scores_like_the_probe_full_features(mix, tiny_zoo):
    # the tiny probe's aligners have 256 features: a 256-wide basis keeps them whole (float16 aside), a 32-wide one
    # keeps the readouts of texts near the categories, not every feature
    sources = catalogue_sources(tiny_zoo)
    order = [[s.id for s in sources].index(i) for i in mix.index_ids_]
    q = "a photo of a coat with a white frame"
    exact = mix.text_scores(q)
    for dims, tol in ((256, 2e-3), (32, 0.05)):
        ix, _ = build_index(mix, sources, dims=dims)
        assert ix.q.shape == (len(sources), dims) and ix.ids == [s.id for s in sources]
        err = np.abs(mix.text_scores(q, ix)[order] - exact)
        assert err.mean() < tol, (dims, err.mean())
    model = ix.ids[3]
    got = [x["id"] for x in search_like(mix, model, top=5, index=ix)]
    assert model not in got and len(got) == 5
    assert got[:2] == [x["id"] for x in search_like(mix, model, top=2)]


def test_cli_index_build_add_and_search(tiny_zoo, tiny_probe, folder, tmp_path):
    ix = tmp_path / "models.index"
    r = run("index", "build", "--dir", folder, "--probe", tiny_probe, "-o", ix, "--quiet")
    assert r.exit_code == 0, r.output
    assert _json_tail(r.output)["models"] == 12
    r = run("index", "add", ix, "--zoo", tiny_zoo, "--quiet")  # the catalogue's models not yet indexed
    assert r.exit_code == 0, r.output
    n = len(read_catalogue(tiny_zoo))
    doc = _json_tail(r.output)
    assert {k: doc[k] for k in ("index", "added", "skipped", "models")} == {"index": str(ix), "added": n - 12,
                                                                           "skipped": [], "models": n}
    assert doc["command"] == "weights index add" and doc["written"] == [str(ix)] and doc["probe_sha256"]
    loaded = ModelIndex.load(ix)
    assert sorted(loaded.ids) == sorted(m["id"] for m in read_catalogue(tiny_zoo))
    fixed = sum(b.nbytes for b in loaded.bases.values())  # one text basis per tree, whatever the number of models
    assert (ix.stat().st_size - fixed) / len(loaded) <= 1024 and loaded.probs.dtype == np.float16
    extra = sorted(folder.glob("*.safetensors"))[0]
    r = run("index", "add", ix, extra, "--id", "newcomer", "--quiet")
    assert r.exit_code == 0, r.output
    assert ModelIndex.load(ix).ids[-1] == "newcomer"
    r = run("search", "a photo of a sneaker", "--index", ix, "--top", "3")  # the probe comes from the index
    assert r.exit_code == 0, r.output
    assert len(_json_tail(r.output)["results"]) == 3
    r = run("search", "--like", "newcomer", "--index", ix, "--top", "2")
    assert r.exit_code == 0, r.output
    assert "newcomer" not in [x["id"] for x in _json_tail(r.output)["results"]]


def test_index_refuses_clashes_other_probes_and_damaged_files(mix, tiny_zoo, tiny_probe, tmp_path):
    sources = catalogue_sources(tiny_zoo)[:6]
    ix, _ = build_index(mix, sources)
    path = ix.save(tmp_path / "ix")
    before = path.read_bytes()
    with pytest.raises(InputError, match=f"id: {sources[0].id} already in"):
        add_to_index(path, mix, [sources[0]])
    with pytest.raises(InputError, match="id: twin given more than once"):
        add_to_index(path, mix, [Source(sources[0].path, "twin"), Source(sources[1].path, "twin")])
    assert path.read_bytes() == before  # nothing written
    other = ModelIndex(ix.ids, ix.tree_names, ix.tree_codes, ix.probs, ix.q, bases=ix.bases,
                       categories=ix.categories, probe={"path": "/elsewhere", "sha256": "0" * 64})
    other.save(tmp_path / "other")
    with pytest.raises(InputError, match="built with another probe"):
        add_to_index(tmp_path / "other", mix, catalogue_sources(tiny_zoo)[6:8])
    with pytest.raises(InputError, match="built with another probe"):
        search_text(mix, "a coat", index=ModelIndex.load(tmp_path / "other"))
    (tmp_path / "cut").write_bytes(before[: len(before) // 2])
    with pytest.raises(CheckpointError, match="cut: not a readable model index"):
        ModelIndex.load(tmp_path / "cut")
    with pytest.raises(CheckpointError, match="not a lamina model index"):
        ModelIndex.load(sources[0].path)
    r = run("index", "add", path, sources[0].path, sources[1].path, "--id", "one")
    assert r.exit_code == 2 and "--id: 1 given for 2" in r.output
    r = run("index", "add", tmp_path / "missing")
    assert r.exit_code == 2 and "missing does not exist" in r.output
    r = run("search", "a coat", "--zoo", tiny_zoo, "--index", path)
    assert r.exit_code == 2 and "either --zoo ZOO or --index FILE" in r.output


def _rewrite(path, out, **change):
    """The index file at ``path`` with some tensors replaced (a damaged copy, written with safetensors itself)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    for k, f in change.items():
        key = k.replace("__", "/")
        if f is None:
            tensors.pop(key)
        else:
            tensors[key] = f(tensors[key])
    save_file(tensors, str(out), metadata=meta)
    return out


@pytest.mark.parametrize("change, match", [
    ({"q": lambda q: np.full_like(q, np.inf)}, r"row\(s\) hold NaN or infinite text features"),
    ({"probs": lambda p: np.where(np.arange(len(p))[:, None] == 2, np.nan, p).astype(p.dtype)},
     r"1 row\(s\) hold NaN or infinite probabilities"),
    ({"probs": lambda p: (p * 3).astype(p.dtype)}, r"probabilities outside \[0, 1\]"),
    ("drop-basis", r"no text basis for tree\(s\)"),
    ({"probs": lambda p: p[:, :-1]}, r"probabilities of shape .* expected \(6 rows, 60 categories\)"),
])
def test_damaged_index_rows_are_refused_saying_what_is_wrong(mix, tiny_zoo, tiny_probe, tmp_path, change, match):
    ix, _ = build_index(mix, catalogue_sources(tiny_zoo)[:6])
    path = ix.save(tmp_path / "ix")
    if change == "drop-basis":
        change = {f"basis__{ix.trees[0]}": None}
    bad = _rewrite(path, tmp_path / "bad", **change)
    with pytest.raises(CheckpointError, match=match):
        ModelIndex.load(bad)
    r = run("search", "a coat", "--index", bad, "--probe", tiny_probe)
    assert r.exit_code == 2 and "rebuild it" in r.output, r.output
