"""GeoCLIP's released location encoder in our module: strict loading, and agreement with GeoCLIP's own code.

Needs the optional geoclip wheel (pip install --no-deps geoclip==1.3.0); skipped without it.
"""

import importlib
import sys
import types

import numpy as np
import pytest
import torch

from lamina.errors import InputError
from lamina.geo.eval import geoclip as gc

pytestmark = pytest.mark.skipif(not gc.geoclip_available(), reason="optional geoclip wheel not installed")


@pytest.fixture(scope="module")
def encoder():
    return gc.GeoCLIPEncoder()


def test_weights_load_strictly(encoder):
    state = torch.load(gc.geoclip_weights_path(), map_location="cpu", weights_only=True)
    assert set(state) == set(encoder.module.state_dict())
    state.pop("LocEnc2.head.0.bias")
    with pytest.raises(RuntimeError, match="Missing key"):
        gc.GeoCLIPLocationEncoder().load_state_dict(state, strict=True)


def test_agrees_with_geoclips_own_location_encoder(encoder, monkeypatch):
    """Load GeoCLIP's location_encoder.py without running its package __init__ (which imports torchvision)."""
    root = gc.geoclip_weights_path().parents[2]
    for name, path in (("geoclip", root), ("geoclip.model", root / "model")):
        shim = types.ModuleType(name)
        shim.__path__ = [str(path)]
        monkeypatch.setitem(sys.modules, name, shim)
    for name in ("geoclip.model.location_encoder", "geoclip.model.misc", "geoclip.model.rff",
                 "geoclip.model.rff.layers", "geoclip.model.rff.functional"):  # fmt: skip
        monkeypatch.delitem(sys.modules, name, raising=False)
    reference = importlib.import_module("geoclip.model.location_encoder").LocationEncoder().eval()
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 256), rng.uniform(-90, 90, 256)
    ours = encoder.embed(lon=lon, lat=lat)
    with torch.no_grad():
        latlon = torch.tensor(np.column_stack([lat, lon]))
        truth = reference.double()(latlon).numpy()  # GeoCLIP's forward pass in float64
    assert ours.shape == (256, 512) and ours.dtype == np.float32
    # float32 phases of sigma = 256 Fourier features are only good to ~1e-5; ours are computed in float64
    np.testing.assert_allclose(ours, truth, atol=2e-5)


def test_equal_earth_projection_known_values():
    xy = gc.equal_earth(lon=torch.tensor([0.0, 180.0, -180.0, 0.0]), lat=torch.tensor([0.0, 0.0, 0.0, 90.0]))
    assert xy[0].abs().max() == 0
    # Equal Earth: x at the equator's end is 2 sqrt(3) pi / (3 A1) on the unit sphere, y at the pole 1.3173627
    x_end = 2 * np.sqrt(3) * np.pi / (3 * 1.340264) * 66.50336 / 180
    np.testing.assert_allclose(xy[1, 0].item(), x_end, rtol=1e-6)
    np.testing.assert_allclose(xy[2, 0].item(), -x_end, rtol=1e-6)
    np.testing.assert_allclose(xy[3, 1].item(), 1.3173627 * 66.50336 / 180, rtol=1e-6)


def test_missing_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(gc.PathFinder, "find_spec", classmethod(lambda cls, name, path=None, target=None: None))
    with pytest.raises(InputError, match="pip install --no-deps geoclip"):
        gc.geoclip_weights_path()
    assert not gc.geoclip_available()


def test_embed_validates_coordinates(encoder):
    with pytest.raises(InputError, match="lat"):
        encoder.embed(lon=[0.0], lat=[-91.0])
