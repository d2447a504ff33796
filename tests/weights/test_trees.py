"""Tree discovery and routing: synthetic clusters, then the tiny real zoo (nested tree included)."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.weights.layers import read_state
from lamina.weights.trees import (
    Fingerprints,
    Router,
    adjusted_rand,
    cluster,
    discover_trees,
    fingerprint_files,
    separation,
)

from .conftest import read_catalogue


def test_bisection_finds_separated_clouds_and_keeps_one_cloud_whole():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 20)) * 10
    x = np.concatenate([c + rng.standard_normal((40, 20)) for c in centers])  # synthetic: 3 clouds
    lab = cluster(x)
    assert adjusted_rand(np.repeat([0, 1, 2], 40), lab) == 1.0
    one = rng.standard_normal((120, 20))  # synthetic: one cloud
    assert len(set(cluster(one).tolist())) == 1
    lab2 = np.repeat([0, 1], 40)
    assert separation(x[:80], lab2) > 6 and separation(one[:80], (one[:80, 0] > 0).astype(int)) < 6


def test_discovery_recovers_the_tiny_zoo_trees(tiny_zoo):
    models = read_catalogue(tiny_zoo, "models")
    fp = fingerprint_files([tiny_zoo / m["path"] for m in models])
    found = discover_trees(fp)
    true = [m["tree"] for m in models]
    assert len(set(fp.keys)) == 2  # two architectures
    assert adjusted_rand(true, found) == 1.0  # nested tree included
    router = Router().fit(fp, true)
    m = models[-1]
    assert router.route_state(read_state(tiny_zoo / m["path"]))[0] == m["tree"]
    with pytest.raises(InputError, match="match no tree") as err:
        router.route_state({"fc1.weight": np.zeros((3, 3), np.float32)}, source="x.safetensors")
    # the message names the nearest tree, what it expects and what the model has instead
    msg = str(err.value)
    assert "nearest: the tree(s)" in msg and "has instead fc1.weight (3, 3)" in msg
    # a model of a known architecture with one layer of another shape: the nearest tree is its own
    state = read_state(tiny_zoo / m["path"])
    wanted = state["fc1.weight"].shape
    state["fc1.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(InputError, match=f"nearest: the tree\\(s\\) [^;]*{m['tree']}") as err:
        router.route_state(state, source="y.safetensors")
    assert f"it expects fc1.weight {wanted}" in str(err.value)


def test_router_checks_its_input():
    with pytest.raises(InputError, match="one per fingerprint"):
        Router().fit(Fingerprints(keys=["a"], vectors=[np.zeros(3)], kept=[0]), ["t1", "t2"])
    with pytest.raises(InputError, match="not fitted"):
        Router().route_state({})


def test_large_bodies_are_sampled_and_keep_their_distances(monkeypatch):
    """Above MAX_PROJECTED numbers a body is sampled before projection (a transformer's would need a projection
    matrix of gigabytes); fingerprint distances still follow the true ones, batch and single agree."""
    from lamina.weights import trees

    monkeypatch.setattr(trees, "MAX_PROJECTED", 2_000)
    trees._sampled.cache_clear()
    rng = np.random.default_rng(0)
    base = rng.normal(size=20_000).astype(np.float32)
    bodies = np.stack([base + s * rng.normal(size=base.size).astype(np.float32) for s in (0.1, 0.5, 1.0, 2.0)])
    fp = trees.project_rows(bodies, 256, seed=3)
    assert fp.shape == (4, 256) and trees.projector.cached()[-1][0] == 2_000
    np.testing.assert_allclose(trees.project(bodies[2], 256, seed=3), fp[2], rtol=1e-4, atol=1e-4)
    true = np.linalg.norm(bodies[:, None] - bodies[None], axis=-1)[np.triu_indices(4, 1)]
    got = np.linalg.norm(fp[:, None] - fp[None], axis=-1)[np.triu_indices(4, 1)]
    np.testing.assert_allclose(got / true, 1.0, rtol=0.25)  # JL at dim 256 and a 10% sample
    trees._sampled.cache_clear()
    trees.projector.cache_clear()


def test_sampled_body_reads_only_sampled_entries_of_lora_and_dense_tensors(monkeypatch):
    """The sampled body a large model is fingerprinted by (formed tensor by tensor, LoRA updates included) equals
    the whole body vector sampled afterwards."""
    from lamina.weights import trees

    monkeypatch.setattr(trees, "MAX_PROJECTED", 500)
    trees._sampled.cache_clear()
    rng = np.random.default_rng(1)
    state = {"enc.q.lora_A": rng.normal(size=(3, 40)), "enc.q.lora_B": rng.normal(size=(30, 3)),
             "enc.k.weight": rng.normal(size=(30, 40)), "enc.norm": rng.normal(size=40),
             "classifier.weight": rng.normal(size=(5, 30))}
    sig = trees.signature(state)
    assert [k for k, _ in sig] == ["enc.k.weight", "enc.norm", "enc.q.lora_delta"]  # no head
    whole = trees.body_vector(state, sig)
    assert whole.size == 30 * 40 + 40 + 30 * 40
    np.testing.assert_allclose(trees.body_vector(state, sig, seed=9), trees._reduce(whole, 9), rtol=1e-5)
    trees._sampled.cache_clear()
