"""Fixtures: one tiny real zoo (Fashion-MNIST + digits, built offline) and one probe trained on it, per session."""

from __future__ import annotations

import pytest

from lamina.weights.zoo.build import ZooConfig, build_zoo
from lamina.weights.zoo.catalogue import Catalogue


def tiny_config(n_models: int = 20) -> ZooConfig:
    """The bundled small config, with fewer models per tree (still 3 trees, 2 architectures, a nested tree)."""
    cfg = ZooConfig.load("small")
    for r in cfg.roots:
        r.n_models = n_models
        r.epochs = min(r.epochs, 4)
    return cfg


def read_catalogue(zoo, what: str = "models", **kwargs):
    """``Catalogue(zoo).<what>(**kwargs)`` (models, roots, count, ...) on a connection that is closed again."""
    with Catalogue(zoo) as cat:
        return getattr(cat, what)(**kwargs)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    from lamina._process import torch_threads

    out = tmp_path_factory.mktemp("zoo")
    with torch_threads(1):  # scoped: the session's thread setting is left as it was (tests check library calls)
        build_zoo(tiny_config(), out, workers=2, quiet=True)
    return out


@pytest.fixture(scope="session")
def tiny_probe(tiny_zoo, tmp_path_factory):
    from lamina.weights.experts import ProbeXMixture, TrainConfig
    from lamina.weights.probes.probex import ProbeXConfig
    from lamina.weights.serve.search import register_probe

    out = tmp_path_factory.mktemp("probe") / "probe"
    cfg = TrainConfig(probex=ProbeXConfig(r_u=8, r_v=8, r_t=16, epochs=5), layers=["fc1"], heldout=[1, 13])
    mix = ProbeXMixture(cfg).fit_zoo(tiny_zoo, log=lambda m: None)
    mix.save(out, zoo=tiny_zoo)
    register_probe(tiny_zoo, out)
    return out
