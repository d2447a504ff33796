"""The registry of feature providers: names, descriptions, what each name builds, and clear refusals."""

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.geo.eval import features
from lamina.geo.eval.baselines import LonLatFeatures, SphericalHarmonicsFeatures
from lamina.geo.eval.features import DEFAULT_METHODS, METHODS, EncoderFeatures, build_methods, feature_provider

from .test_encoder import tiny_encoder


def test_registry_names_and_order():
    assert DEFAULT_METHODS == ("climplicit", "random-init", "source-values", "era5-values", "era5-rff",
                               "era5-rff-sh10", "lonlat", "sh10", "sh40", "mlp", "geoclip")  # fmt: skip
    assert all(spec.description for spec in METHODS.values())


def test_build_methods_by_name(tmp_path):
    tiny_encoder().save(tmp_path / "ck")
    methods, skipped = build_methods(["lonlat", "sh10", "mlp", "climplicit", "random-init"],
                                     checkpoint=tmp_path / "ck", seed=3)  # fmt: skip
    by_name = {m.name: m for m in methods}
    assert not skipped and list(by_name) == ["lonlat", "sh10", "mlp", "climplicit", "random-init"]
    assert isinstance(by_name["lonlat"].provider, LonLatFeatures)
    assert isinstance(by_name["sh10"].provider, SphericalHarmonicsFeatures) and by_name["sh10"].provider.degree == 10
    assert by_name["mlp"].provider is None
    trained, untrained = by_name["climplicit"].provider, by_name["random-init"].provider
    assert isinstance(trained, EncoderFeatures) and isinstance(untrained, EncoderFeatures)
    lon, lat = np.array([8.5, -70.0]), np.array([47.4, -33.0])
    a, b = trained.features(lon=lon, lat=lat), untrained.features(lon=lon, lat=lat)
    assert a.shape == b.shape == (2, 32) and not np.allclose(a, b)  # same architecture, other weights


def test_unavailable_optional_method_is_skipped_with_its_reason(monkeypatch):
    spec = METHODS["geoclip"]
    monkeypatch.setitem(METHODS, "geoclip", features.MethodSpec(spec.description, spec.make, lambda: "no wheel"))
    methods, skipped = build_methods(["lonlat", "geoclip"])
    assert [m.name for m in methods] == ["lonlat"] and skipped == {"geoclip": "no wheel"}
    with pytest.raises(InputError, match="encoder: geoclip is unavailable: no wheel"):
        feature_provider("geoclip")


@pytest.mark.parametrize(("name", "message"), [("mlp", "encoder: expected one of"), ("satclip", "encoder: expected")])
def test_feature_provider_refuses_names_without_features(name, message):
    with pytest.raises(InputError, match=message):
        feature_provider(name)
    assert isinstance(feature_provider("sh40"), SphericalHarmonicsFeatures)
