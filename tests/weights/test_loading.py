"""Loading a saved probe: wrong content in config.json is one CheckpointError naming the file; loading leaves the
caller's torch random stream alone; routers round-trip without scikit-learn's fitted internals; the fingerprint
projection is float32, cached once, and the matrix of scikit-learn's GaussianRandomProjection."""

import json
import shutil
import tracemalloc

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lamina._io import content_sha256
from lamina.cli import app
from lamina.errors import CheckpointError
from lamina.weights.experts import ProbeXMixture
from lamina.weights.trees import Fingerprints, Router, project, projector
from lamina.weights.zoo.catalogue import Catalogue


def _edit(probe, tmp_path, change):
    out = tmp_path / "probe"
    shutil.copytree(probe, out)
    doc = json.loads((out / "config.json").read_text())
    change(doc["config"])
    doc["content_sha256"] = content_sha256(doc)  # consistent: the content itself is what is tested
    (out / "config.json").write_text(json.dumps(doc))
    return out


def _first_tree(cfg):
    return next(iter(cfg["trees"].values()))


WRONG = {
    "missing router": lambda c: c.pop("router"),
    "train not a dict": lambda c: c.update(train="fast"),
    "negative seed": lambda c: c["train"].update(seed=-1),
    "unknown train setting": lambda c: c["train"].update(speed=3),
    "expert of another shape": lambda c: _first_tree(c)["expert"].update(shape=[3, 3]),
    "aligner rank not a number": lambda c: _first_tree(c)["aligner"].update(rank="four"),
    "trees a list": lambda c: c.update(trees=[1, 2]),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_valid_json_with_wrong_content_is_one_checkpoint_error(tiny_probe, tmp_path, case):
    probe = _edit(tiny_probe, tmp_path, WRONG[case])
    with pytest.raises(CheckpointError, match=rf"^{probe / 'config.json'}: "):
        ProbeXMixture.load(probe)


def test_cli_predict_on_a_probe_with_wrong_content_is_one_line(tiny_zoo, tiny_probe, tmp_path):
    probe = _edit(tiny_probe, tmp_path, WRONG["missing router"])
    with Catalogue(tiny_zoo) as cat:
        model = tiny_zoo / cat.models()[0]["path"]
    r = CliRunner().invoke(app, ["weights", "predict", str(probe), str(model)])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {probe / 'config.json'}: "), r.output


def test_loading_a_probe_leaves_the_torch_random_stream_alone(tiny_probe):
    torch.manual_seed(1234)
    expected = torch.rand(5)
    torch.manual_seed(1234)
    mix = ProbeXMixture.load(tiny_probe)
    assert torch.equal(torch.rand(5), expected)
    assert mix.experts_  # something was loaded


def _fingerprints(rng):
    keys, vectors, names = [], [], []
    centres = {"a": 0.0, "b": 4.0, "c": -4.0, "d": 0.0}  # a, b, c share a signature; d has its own
    for name, c in centres.items():
        for _ in range(6):
            keys.append("big" if name != "d" else "small")
            vectors.append((c + rng.standard_normal(8)).astype(np.float32))
            names.append(name)
    return Fingerprints(keys=keys, vectors=vectors, kept=list(range(len(keys)))), names


def test_router_round_trip_routes_to_the_nearest_centroid_of_the_signature():
    rng = np.random.default_rng(0)
    fp, names = _fingerprints(rng)
    router = Router(dim=8, seed=3).fit(fp, names)
    tensors, doc = router.to_state()
    again = Router.from_state({k: np.array(v) for k, v in tensors.items()}, json.loads(json.dumps(doc)))
    probe_fp = Fingerprints(keys=["big"] * 40 + ["small"] * 2,
                            vectors=list((6 * rng.standard_normal((42, 8))).astype(np.float32)))
    got, back = router.route_vectors(probe_fp), again.route_vectors(probe_fp)
    assert got == back
    cents = {t: np.mean([v for v, n in zip(fp.vectors, names, strict=True) if n == t], axis=0) for t in "abc"}
    nearest = [min("abc", key=lambda t, v=v: np.linalg.norm(v - cents[t])) for v in probe_fp.vectors[:40]]
    assert got[:40] == nearest and got[40:] == ["d", "d"]
    assert {"a", "b", "c"} <= set(got[:40])  # every tree of the signature is reachable


def test_router_with_centroids_that_do_not_fit_its_trees_is_refused(tiny_probe, tmp_path):
    probe = _edit(tiny_probe, tmp_path, lambda c: c["router"].update(trees=c["router"]["trees"][:1]))
    with pytest.raises(CheckpointError, match="config.json: router: 1 trees"):
        ProbeXMixture.load(probe)


def test_projection_matches_scikit_learn_in_float32():
    from sklearn.random_projection import GaussianRandomProjection

    d, dim, seed = 3000, 16, 11
    ref = GaussianRandomProjection(n_components=dim, random_state=seed).fit(np.zeros((1, d), np.float32))
    mat = projector(d, dim, seed)
    assert mat.dtype == np.float32 and mat.shape == (dim, d)
    np.testing.assert_array_equal(mat, ref.components_)  # saved routers keep their fingerprints
    vec = np.random.default_rng(0).standard_normal(d).astype(np.float32)
    np.testing.assert_allclose(project(vec, dim, seed), ref.transform(vec[None])[0], rtol=1e-5, atol=1e-5)


def test_projection_is_built_without_a_float64_copy_and_kept_within_its_budget(monkeypatch):
    projector.cache_clear()
    d, dim = 50_000, 128
    tracemalloc.start()
    try:
        mat = projector(d, dim, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * mat.nbytes, (peak, mat.nbytes)  # a float64 temporary alone would be 2x
    projector(d + 1, dim, 1)
    draws = projector.draws
    assert projector(d, dim, 1) is mat and projector.draws == draws  # two signatures alternate: no redraw
    assert projector.cached() == [(d + 1, dim, 1), (d, dim, 1)]  # least recently used first
    monkeypatch.setattr(projector, "max_bytes", int(1.5 * mat.nbytes))
    projector(d + 2, dim, 1)
    assert projector.cached() == [(d + 2, dim, 1)] and projector.nbytes() <= projector.max_bytes
    monkeypatch.setattr(projector, "max_bytes", mat.nbytes // 2)  # too large to keep: drawn, used, not kept
    assert projector(d, dim, 1).shape == (dim, d) and projector.cached() == [(d + 2, dim, 1)]
    projector.cache_clear()
    assert projector.nbytes() == 0
