"""bench.growth: the power-law fit recovers known exponents, and a run's cells become curves over n_items."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.growth import catalogue_sizes, check_sizes, fit_power_law, fit_run, has_scaling_dimension, scaling_points
from bench.results import CellResult, RunResult


def test_fit_recovers_a_known_exponent_and_coefficient_with_r2_one():
    n = np.array([1_000, 3_000, 10_000, 30_000, 100_000])
    fit = fit_power_law(n, 2.5e-6 * n**1.7)
    assert fit.exponent == pytest.approx(1.7, abs=1e-9)
    assert fit.coefficient == pytest.approx(2.5e-6, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.n_points == 5
    np.testing.assert_allclose(fit.predict(n), 2.5e-6 * n**1.7, rtol=1e-9)


def test_falling_curves_get_negative_exponents_and_noise_lowers_r2():
    n = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    assert fit_power_law(n, 5e4 / n).exponent == pytest.approx(-1.0)
    noisy = fit_power_law(n, n**2 * np.array([1.0, 1.6, 0.7, 1.4, 0.8]))
    assert 0.9 < noisy.r2 < 1.0
    assert noisy.exponent == pytest.approx(2.0, abs=0.2)


def test_two_points_fit_exactly_but_report_no_r2():
    fit = fit_power_law([10, 100], [1.0, 100.0])
    assert fit.exponent == pytest.approx(2.0) and fit.r2 is None and fit.n_points == 2


def test_points_that_cannot_sit_on_log_axes_are_dropped_and_too_few_fail_in_one_line():
    fit = fit_power_law([10, 100, 1000, 5000], [1.0, 10.0, 100.0, 0.0])  # zero dropped
    assert fit.n_points == 3 and fit.exponent == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="two or more sizes") as err:
        fit_power_law([10, 100], [1.0, float("nan")])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "sizes, why",
    [
        ((), "empty"),
        ([], "empty"),
        ((1000, 1000), "not strictly increasing"),
        ((3000, 1000, 10000), "not strictly increasing"),
        ((0, 1000), "positive integers"),
        ((1000, 2.5), "positive integers"),
    ],
)
def test_bad_size_lists_fail_with_one_line(sizes, why):
    with pytest.raises(ConfigError, match=why) as err:
        check_sizes(sizes)
    assert "\n" not in str(err.value)


def test_good_size_lists_pass_through():
    assert check_sizes([1000, 3000, 100_000]) == (1000, 3000, 100_000)


def _cell(rec: str, n: int, fit_s: float, status: str = "ok", variant: str = "none") -> CellResult:
    data = f"synthetic:users={n // 2},items={n},interactions={10 * n},seed=0"
    c = CellResult(
        cell=f"{data}/random-8-1-1/{rec}/{variant}/cpu",
        dataset=data,
        split="random-8-1-1",
        recommender=rec,
        variant=variant,
        device="cpu",
        status=status,
    )
    if status == "ok":
        c.provenance = {"n_items": n}
        c.add("fit_s", fit_s, "s")
        c.add("throughput_users_per_s", 100.0 / n, "users/s", load="offline")
        c.add("throughput_users_per_s", 300.0 / n, "users/s", load="offline")  # the best batch counts
    else:
        c.error = "ease cannot fit 100,000 items here: it needs about 298.0 GiB"
    return c


def test_a_run_becomes_one_fit_per_recommender_variant_and_metric_with_failures_kept():
    sizes = (1_000, 3_000, 10_000)
    cells = [_cell("ease", n, 1e-9 * n**3) for n in sizes] + [_cell("ease", 100_000, 0, status="failed")]
    cells += [_cell("pop", n, 1e-6 * n) for n in sizes]
    run = RunResult(run_id="r", scenario={"name": "scaling"}, provenance={}, cells=cells)
    assert has_scaling_dimension(run)
    assert catalogue_sizes(run) == [1_000, 3_000, 10_000, 100_000]
    fits = {(f.points.recommender, f.points.metric): f for f in fit_run(run)}
    assert fits[("ease", "fit_s")].fit.exponent == pytest.approx(3.0)
    assert fits[("pop", "fit_s")].fit.exponent == pytest.approx(1.0)
    throughput = fits[("pop", "throughput_users_per_s")]
    assert throughput.points.values == pytest.approx([0.3, 0.1, 0.03])
    assert throughput.fit.exponent == pytest.approx(-1.0)
    assert 100_000 in fits[("ease", "fit_s")].missing and "298.0 GiB" in fits[("ease", "fit_s")].missing[100_000]
    assert not fits[("pop", "fit_s")].missing


def test_one_dataset_is_no_scaling_dimension():
    run = RunResult(run_id="r", scenario={}, provenance={}, cells=[_cell("pop", 1000, 1.0), _cell("ease", 1000, 2.0)])
    assert not has_scaling_dimension(run)
    assert all(len(p.n_items) == 1 for p in scaling_points(run))
