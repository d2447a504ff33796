import numpy as np
import pytest
import scipy.special as sp
import torch

from lamina.errors import InputError
from lamina.nn import SphericalHarmonics, cyclic_month, direct_lon_lat, spherical_harmonics


def _scipy_real_sh(lon, lat, degree):
    theta = np.deg2rad(90.0 - lat)
    phi = np.deg2rad(lon)
    cols = []
    for ell in range(degree + 1):
        for m in range(-ell, ell + 1):
            c = sp.sph_harm_y(ell, abs(m), theta, phi)
            if m > 0:
                cols.append(np.sqrt(2) * (-1) ** m * c.real)
            elif m < 0:
                cols.append(np.sqrt(2) * (-1) ** m * c.imag)
            else:
                cols.append(c.real)
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("degree", [0, 1, 10, 40])
def test_spherical_harmonics_match_scipy_including_poles(degree):
    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.uniform(-90, 90, 40), [-90.0, -89.9999, -89.9, 89.9, 89.9999, 90.0, 0.0]])
    lon = np.concatenate([rng.uniform(-180, 180, 40), [0.0, 12.0, -179.99, 179.99, 45.0, -60.0, 180.0]])
    ours = spherical_harmonics(lon, lat, degree)
    ref = _scipy_real_sh(lon, lat, degree)
    assert ours.shape == (lon.size, (degree + 1) ** 2)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_spherical_harmonics_are_orthonormal():
    # Gauss-Legendre in sin(lat) x uniform in lon integrates products of degree <= 2L exactly.
    degree = 12
    x, w = np.polynomial.legendre.leggauss(degree + 2)
    lons = np.linspace(-180, 180, 2 * degree + 3, endpoint=False)
    lat = np.rad2deg(np.arcsin(x))
    LA, LO = np.meshgrid(lat, lons, indexing="ij")
    W = np.repeat(w, lons.size) * (2 * np.pi / lons.size)
    Y = spherical_harmonics(LO.ravel(), LA.ravel(), degree)
    gram = (Y * W[:, None]).T @ Y
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-10)


def test_spherical_harmonics_finite_at_high_degree():
    lat = np.array([-90.0, -89.99999, 0.0, 89.99999, 90.0])
    lon = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    Y = spherical_harmonics(lon, lat, 100)
    assert np.isfinite(Y).all()
    # Y_0^0 is the constant 1 / sqrt(4 pi)
    np.testing.assert_allclose(Y[:, 0], 1 / np.sqrt(4 * np.pi))


def test_spherical_harmonics_module_matches_function():
    lonlat = torch.tensor([[10.0, 20.0], [-100.0, -45.0]])
    mod = SphericalHarmonics(degree=5)
    out = mod(lonlat)
    assert out.shape == (2, mod.dim_out) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), spherical_harmonics([10, -100], [20, -45], 5), rtol=1e-5, atol=1e-6)


def test_spherical_harmonics_rejects_bad_latitude():
    with pytest.raises(InputError, match="lat"):
        spherical_harmonics([0.0], [91.0], 3)
    with pytest.raises(InputError, match="degree"):
        spherical_harmonics([0.0], [0.0], -1)


def test_direct_and_cyclic_encodings():
    out = direct_lon_lat(torch.tensor([-180.0, 180.0, 90.0]), torch.tensor([-90.0, 90.0, 45.0]))
    np.testing.assert_allclose(out.numpy(), [[-1, -1], [1, 1], [0.5, 0.5]])
    m = cyclic_month(torch.arange(1, 13))
    assert m.shape == (12, 2)
    np.testing.assert_allclose(torch.linalg.norm(m, dim=1).numpy(), 1.0, atol=1e-6)
    # December and January are neighbours; June is opposite December
    d = lambda a, b: float(torch.linalg.norm(m[a - 1] - m[b - 1]))  # noqa: E731
    assert d(12, 1) < d(12, 3) < d(12, 6)
    np.testing.assert_allclose(m[11].numpy(), [0.0, 1.0], atol=1e-6)
