import numpy as np
import pytest

from lamina._validation import check_lon_lat, check_month, check_positive_int
from lamina.errors import InputError


def test_lon_lat_ranges_and_messages():
    lon, lat = check_lon_lat([8.55, -180, 180], [47.37, -90, 90])
    assert lon.dtype == np.float64 and lat.shape == (3,)
    with pytest.raises(InputError, match=r"lat: must lie in \[-90, 90\], got 91 at index 1"):
        check_lon_lat([0, 0], [0, 91])
    with pytest.raises(InputError, match="lon: .*wrap"):
        check_lon_lat([190], [0])
    with pytest.raises(InputError, match="NaN"):
        check_lon_lat([np.nan], [0])
    with pytest.raises(InputError, match="same length"):
        check_lon_lat([0, 1], [0])


def test_wrap_lon():
    lon, _ = check_lon_lat([190, -190, 540], [0, 0, 0], wrap=True)
    np.testing.assert_allclose(lon, [-170, 170, -180])


def test_month_validation():
    np.testing.assert_array_equal(check_month(6, n=3), [6, 6, 6])
    np.testing.assert_array_equal(check_month([1, 12]), [1, 12])
    for bad in (0, 13, 2.5):
        with pytest.raises(InputError, match="month"):
            check_month(bad)
    with pytest.raises(InputError, match="one per point"):
        check_month([1, 2], n=3)


def test_positive_int():
    assert check_positive_int("n", 3) == 3
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(InputError, match="n: expected an integer"):
            check_positive_int("n", bad)


@pytest.mark.parametrize(
    ("lon", "message"),
    [
        (None, "lon: expected numbers, got None"),
        ([1.0, None], "lon: missing value (None) at index 1"),
        (True, "got booleans"),
        ([1 + 2j], "got complex numbers"),
        (["12.5"], "got strings"),
        (np.array([1, 0], dtype=bool), "got booleans"),
        ([180.0000001], "got 180.0000001 at index 0"),
        ([-180.5], "got -180.5 at index 0"),
    ],
)
def test_lon_refusals_say_what_was_wrong(lon, message):
    n = 1 if lon is None or np.ndim(lon) == 0 else len(lon)
    with pytest.raises(InputError) as info:
        check_lon_lat(lon, [0.0] * n)
    assert message in str(info.value)


def test_huge_and_out_of_range_numbers_are_refused_cleanly():
    from lamina._validation import check_seed

    with pytest.raises(InputError, match="lon: expected numbers"):
        check_lon_lat([10**400], [0.0])
    for bad in (-1, 2**32, 2**64, 1.5, True, None):
        with pytest.raises(InputError, match=r"seed: expected an integer in \[0, 4294967295\]"):
            check_seed("seed", bad)
    assert check_seed("seed", np.int64(7)) == 7


def test_worker_counts_are_capped_at_the_machine(caplog):
    import logging

    from lamina._validation import available_cpus, check_workers

    cpus = available_cpus()
    assert check_workers("--workers", 1) == 1
    with caplog.at_level(logging.WARNING, logger="lamina"):
        assert check_workers("--workers", 99999999999999999999) == cpus
    assert f"lowered to {cpus}" in caplog.text and "--workers" in caplog.text
    assert check_workers("--workers", 8, tasks=1) == 1  # no more processes than tasks
    for bad in (0, -3, 2.0, True, "2"):
        with pytest.raises(InputError, match="--workers"):
            check_workers("--workers", bad)


def test_zoo_build_cli_caps_absurd_worker_counts(tmp_path):
    """The case that forked thousands of processes: an absurd --workers now runs on at most the machine's CPUs."""
    from typer.testing import CliRunner

    from lamina.cli import app

    cfg = tmp_path / "z.toml"
    cfg.write_text(
        "[zoo]\nseed = 1\nviews = ['original', 'upside down']\npool_per_category = 10\ntest_per_category = 5\n"
        "[[roots]]\nname = 'mlp'\narch = 'mlp'\nhidden = [8, 8]\npretrain = 'digits'\nepochs = 1\nn_models = 2\n"
        "[finetune]\ncategories_per_model = [2, 2]\nimages_per_category = [5, 5]\nepochs = [1, 1]\n")
    r = CliRunner().invoke(app, ["weights", "zoo", "build", "--config", str(cfg), "-o", str(tmp_path / "zoo"),
                                 "--workers", "99999999999999999999", "--quiet"])
    assert r.exit_code == 0, r.output


def test_check_real_open_upper_bound():
    from lamina._validation import check_real

    assert check_real("dropout", 0.999, low=0.0, high=1.0, high_open=True) == 0.999
    with pytest.raises(InputError, match=r"^dropout: expected a finite number >= 0 and < 1, got 1$"):
        check_real("dropout", 1, low=0.0, high=1.0, high_open=True)
    assert check_real("share", 1.0, low=0.0, high=1.0) == 1.0  # closed by default


def test_bounded_int_bool_and_choice():
    from lamina._validation import check_bool, check_choice

    assert check_positive_int("k", np.int64(3), minimum=0, maximum=3) == 3
    with pytest.raises(InputError, match=r"k: expected an integer in \[0, 3\], got 4"):
        check_positive_int("k", 4, minimum=0, maximum=3)
    assert check_bool("flag", np.bool_(True)) is True
    for bad in (1, "yes", None):
        with pytest.raises(InputError, match="flag: expected True or False"):
            check_bool("flag", bad)
    assert check_choice("mode", "b", ("a", "b")) == "b"
    for bad in ("c", ["a"], np.array(["a", "b"]), np.array(["a"]), np.array("a"), {"a": 1}, True):
        with pytest.raises(InputError, match="mode: expected one of a, b, got"):
            check_choice("mode", bad, ("a", "b"))
