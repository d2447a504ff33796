import numpy as np
import pytest

from lamina.errors import InputError
from lamina.geo.data.grid import Grid, Variable
from lamina.geo.data.rasters import Field, RasterStack
from lamina.geo.data.readers import ArrayReader
from lamina.geo.data.sources.chelsa import chelsa_stack

from .conftest import synthetic_field


def _stack():
    """SYNTHETIC stack: a 1-degree monthly field and a 10-degree static field (bilinear)."""
    fine = np.stack([synthetic_field(0, m, 180, 360) for m in range(1, 13)]).astype(np.float32)
    coarse = synthetic_field(1, 1, 18, 36).astype(np.float32)
    coarse[0, :] = np.nan
    return RasterStack([
        Field(Variable("a", "K"), ArrayReader(fine, Grid.global_grid(1.0))),
        Field(Variable("b", "m", monthly=False), ArrayReader(coarse, Grid.global_grid(10.0), axes="hw"),
              interpolation="bilinear"),
    ])


def test_values_at_nearest_and_bilinear():
    s = _stack()
    v = s.values_at(lon=[0.5, -179.5], lat=[0.5, 89.5], month=[1, 7])
    fine = synthetic_field(0, 1, 180, 360)
    assert v.shape == (2, 2) and v.dtype == np.float32
    assert v[0, 0] == pytest.approx(fine[89, 180], rel=1e-6)
    assert v[1, 0] == pytest.approx(synthetic_field(0, 7, 180, 360)[0, 0], rel=1e-6)
    coarse = synthetic_field(1, 1, 18, 36)
    # halfway between two coarse centres (5 and 15 E at 5 N): the mean of both
    b = s.values_at(lon=[10.0], lat=[5.0], month=3)[0, 1]
    assert b == pytest.approx((coarse[8, 18] + coarse[8, 19]) / 2, rel=1e-5)
    # a missing neighbour (north polar row) is skipped, not averaged in
    near_pole = s.values_at(lon=[5.0], lat=[83.0], month=1)[0, 1]
    assert np.isfinite(near_pole) and near_pole == pytest.approx(coarse[1, 18], rel=1e-5)


def test_values_at_validates():
    s = _stack()
    with pytest.raises(InputError, match="lat"):
        s.values_at(lon=[0.0], lat=[95.0], month=1)
    with pytest.raises(InputError, match="month"):
        s.values_at(lon=[0.0], lat=[0.0], month=0)
    with pytest.raises(InputError, match="unknown"):
        s.select(["zzz"])


def test_statistics_match_numpy_in_one_streaming_pass():
    s = _stack()
    st = s.statistics(block_rows=7)
    fine = np.stack([synthetic_field(0, m, 180, 360) for m in range(1, 13)]).astype(np.float32).astype(np.float64)
    assert st.mean[0] == pytest.approx(fine.mean(), rel=1e-9)
    assert st.std[0] == pytest.approx(fine.std(ddof=1), rel=1e-9)
    coarse = synthetic_field(1, 1, 18, 36).astype(np.float32)[1:].astype(np.float64)
    assert st.count[1] == coarse.size and st.mean[1] == pytest.approx(coarse.mean(), rel=1e-9)
    land = s.statistics(land_only=True, block_rows=50)
    assert 0.2 * st.count[0] < land.count[0] < 0.4 * st.count[0]  # about 30% of pixels are land


def test_chelsa_folder(tiny_chelsa):
    s = chelsa_stack(tiny_chelsa)
    assert s.names == ["bio1", "pr", "tas"]
    tas = s.fields[2]
    assert tas.monthly and tas.variable.units == "degC" and "CC BY" in tas.variable.licence
    v = s.select(["tas"]).values_at(lon=[2.5, 2.5], lat=[2.5, 88.0], month=4)
    expected = synthetic_field(0, 4)[17, 36]
    assert v[0, 0] == pytest.approx(expected, abs=0.06)  # 0.1 K quantisation
    assert np.isnan(v[1, 0])  # nodata
    with pytest.raises(InputError, match="not found"):
        chelsa_stack(tiny_chelsa, ["cmi"])


def test_chelsa_folder_errors(tmp_path, tiny_chelsa):
    with pytest.raises(InputError, match="no CHELSA GeoTIFFs"):
        chelsa_stack(tmp_path)
    import shutil

    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(tiny_chelsa / "CHELSA_tas_01_1981-2010_V.2.1.tif", partial)
    with pytest.raises(InputError, match="expected months 01..12"):
        chelsa_stack(partial)
