"""bench.measure.stats: bootstrap intervals, percentile-trust flags, noise flags, rows and serialisation."""

import json

import numpy as np
import pytest

from bench.errors import BenchError, ConfigError
from bench.measure.stats import TimingSummary, bootstrap, metric_rows, min_samples_for, summarize


def lognormal(n, seed=0, sigma=0.5):
    return np.random.default_rng(seed).lognormal(mean=0.0, sigma=sigma, size=n)


def test_trust_rule_needs_ten_samples_beyond_the_percentile():
    assert min_samples_for(50) == 20
    assert min_samples_for(90) == 100
    assert min_samples_for(95) == 200
    assert min_samples_for(99) == 1000  # not 1001: guarded against 10 / (1 - 0.99) rounding up
    assert min_samples_for(99.9) == 10_000


def test_bootstrap_interval_contains_the_point_estimate():
    s = summarize(lognormal(300), unit="ms")
    for pct in s.percentiles.values():
        assert pct.ci95_low_ms <= pct.value_ms <= pct.ci95_high_ms
    assert s.mean_ci95_ms[0] <= s.mean_ms <= s.mean_ci95_ms[1]


def test_bootstrap_interval_narrows_with_more_samples():
    small, large = summarize(lognormal(200), unit="ms"), summarize(lognormal(20_000), unit="ms")
    for key in ("p50", "p90", "p99"):
        w_small = small.percentiles[key].ci95_high_ms - small.percentiles[key].ci95_low_ms
        w_large = large.percentiles[key].ci95_high_ms - large.percentiles[key].ci95_low_ms
        assert w_large < w_small / 2, key
    assert (large.mean_ci95_ms[1] - large.mean_ci95_ms[0]) < (small.mean_ci95_ms[1] - small.mean_ci95_ms[0]) / 3


def test_percentile_bootstrap_matches_brute_force_resampling():
    # the order-statistic shortcut must have the distribution of "resample n, take np.percentile"
    x = lognormal(150, seed=3)
    qs = [50.0, 90.0, 99.0]
    fast, _ = bootstrap(x, qs, n_resamples=8000, seed=1)
    idx = np.random.default_rng(2).integers(0, x.size, size=(8000, x.size))
    brute = np.percentile(np.percentile(x[idx], qs, axis=1).T, [2.5, 97.5], axis=0).T
    width = brute[:, 1] - brute[:, 0]
    assert np.all(np.abs(fast - brute) <= 0.15 * width[:, None])


def test_bootstrap_is_seeded():
    a, b = summarize(lognormal(500), unit="ms", seed=7), summarize(lognormal(500), unit="ms", seed=7)
    assert a.p(99).ci95_low_ms == b.p(99).ci95_low_ms and a.mean_ci95_ms == b.mean_ci95_ms


def test_p99_flagged_for_small_n_and_not_for_large_n():
    small = summarize(lognormal(999), unit="ms")
    large = summarize(lognormal(1000), unit="ms")
    assert small.p(99).flag and "p99" in small.p(99).flag and not small.p(99).trusted
    assert any("p99" in f for f in small.flags)
    assert large.p(99).flag == "" and large.p(99).trusted
    assert small.p(50).flag == ""  # p50 needs only 20


def test_p50_flagged_below_twenty_samples():
    assert summarize(lognormal(19), unit="ms").p(50).flag
    assert not summarize(lognormal(20), unit="ms").p(50).flag


def test_noisy_flag_follows_the_coefficient_of_variation():
    steady = summarize(np.full(100, 5.0) + np.linspace(0, 0.1, 100), unit="ms")
    spread = summarize(np.r_[np.full(90, 1.0), np.full(10, 20.0)], unit="ms")
    assert not steady.noisy
    assert spread.noisy and spread.cv > 0.25
    assert not summarize(np.r_[np.full(90, 1.0), np.full(10, 20.0)], unit="ms", noisy_cv=None).noisy


def test_units_are_converted_to_milliseconds_and_samples_kept():
    s = summarize([1_000_000, 2_000_000, 3_000_001], unit="ns")
    assert s.samples_ms == [1.0, 2.0, 3.000001]
    assert s.min_ms == 1.0 and s.max_ms == pytest.approx(3.000001)
    assert summarize([0.001, 0.002], unit="s").mean_ms == pytest.approx(1.5)


def test_cold_first_call_is_kept_apart():
    s = summarize([1e6] * 30, unit="ns", cold_first=50e6)
    assert s.cold_first_ms == 50.0 and s.max_ms == 1.0 and s.n == 30


def test_noise_flag_is_carried_by_every_row():
    rows = metric_rows(summarize(lognormal(3000, sigma=1.0), unit="ms"))
    assert all("noisy" in r.flag for r in rows)


def test_metric_rows_carry_n_interval_and_flag():
    s = summarize(lognormal(300, sigma=0.15), unit="ms", cold_first=9.0)
    assert not s.noisy
    rows = {r.metric: r for r in metric_rows(s, load="single-stream")}
    assert set(rows) == {
        "latency_p50_ms",
        "latency_p90_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "latency_mean_ms",
        "latency_cold_first_ms",
    }
    p99 = rows["latency_p99_ms"]
    assert p99.n == 300 and p99.load == "single-stream" and p99.unit == "ms"
    assert p99.ci95_low <= p99.value <= p99.ci95_high
    assert "p99" in p99.flag and rows["latency_p50_ms"].flag == ""
    assert rows["latency_cold_first_ms"].n == 1 and rows["latency_cold_first_ms"].value == 9.0
    in_us = {r.metric: r for r in metric_rows(s, prefix="service", unit="us")}
    assert in_us["service_p50_us"].value == pytest.approx(1000 * s.p50_ms)


def test_to_dict_is_json_and_round_trips():
    s = summarize(lognormal(50), unit="ms", name="demo")
    data = json.loads(json.dumps(s.to_dict()))
    for key in ("n", "p50_ms", "p90_ms", "p99_ms", "samples_ms", "percentiles", "flags"):
        assert key in data
    assert data["percentiles"]["p99"]["n"] == 50 and isinstance(data["percentiles"]["p99"]["n"], int)
    back = TimingSummary.from_dict(data)
    assert back.p99_ms == s.p99_ms and back.flags == s.flags and back.samples_ms == s.samples_ms


def test_single_sample_has_no_spread():
    s = summarize([2.0], unit="ms")
    assert s.n == 1 and s.p50_ms == 2.0 and np.isnan(s.std_ms)
    assert json.dumps(s.to_dict())  # NaN is written as null, never as invalid JSON


@pytest.mark.parametrize(
    "samples, unit, exc",
    [([], "ms", BenchError), ([1.0, float("nan")], "ms", BenchError), ([1.0], "minutes", ConfigError)],
)
def test_bad_samples_are_one_line_errors(samples, unit, exc):
    with pytest.raises(exc) as info:
        summarize(samples, unit=unit)
    assert "\n" not in str(info.value)


def test_unknown_percentile_row_is_a_config_error():
    with pytest.raises(ConfigError):
        metric_rows(summarize([1.0, 2.0], unit="ms"), include=("p75",))
