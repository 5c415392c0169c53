"""bench.measure.loads with a fake clock: exact throughput, queueing counted from scheduled arrival,
censoring at the time bound, the SLO search's bracket, units of work, validation before any work."""

import json

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.measure.loads import PayloadCycle, offline, poisson_arrivals_ns, server, server_slo_search, single_stream
from bench.measure.timer import StopRule
from tests.support.fakeclock import FakeClock

POOL = np.arange(100)
QUICK = StopRule(min_count=20, min_duration_s=0.0, max_count=1000, max_duration_s=60.0, warmup_count=2, warmup_s=0)


class FixedCostServer:
    """serve(batch) that takes fixed_ms + per_item_ms * len(batch) of fake time and records its batches."""

    def __init__(self, clock, fixed_ms=10.0, per_item_ms=0.0):
        self.clock, self.fixed_ms, self.per_item_ms = clock, fixed_ms, per_item_ms
        self.batches = []

    def __call__(self, batch):
        self.batches.append(np.array(batch))
        self.clock.advance_ms(self.fixed_ms + self.per_item_ms * len(batch))


# ---------------------------------------------------------------- offline / single stream


def test_offline_throughput_is_units_over_busy_time_per_batch_size():
    clock = FakeClock()
    serve = FixedCostServer(clock, fixed_ms=1.0, per_item_ms=0.01)
    res = offline(serve, POOL, unit="users", batch_sizes=(1, 32, 256), rule=QUICK, clock=clock)
    by_size = {p.batch_size: p for p in res.points}
    for b, p in by_size.items():
        assert p.throughput_per_s == pytest.approx(b / ((1.0 + 0.01 * b) / 1e3))
        assert p.units == b * p.n_batches
    assert res.best_batch_size == 256 and res.best_throughput_per_s == by_size[256].throughput_per_s
    assert "payloads repeat" in " ".join(by_size[256].flags)  # 256 > pool of 100
    assert res.cold_first_ms == pytest.approx(1.01)
    rows = {r.metric: r for r in res.metric_rows()}
    assert rows["throughput_users_per_s"].value == res.best_throughput_per_s
    assert rows["throughput_users_per_s"].unit == "users/s" and rows["throughput_users_per_s"].load == "offline"
    assert "batch_latency_p99_ms@bs32" in rows and "throughput_users_per_s@bs1" in rows
    json.dumps(res.to_dict())


def test_offline_units_per_request_scales_the_unit_of_work():
    clock = FakeClock()
    res = offline(
        FixedCostServer(clock, fixed_ms=2.0),
        POOL,
        unit="candidates",
        units_per_request=50,
        batch_sizes=(4,),
        rule=QUICK,
        clock=clock,
    )
    assert res.points[0].throughput_per_s == pytest.approx(4 * 50 / 2e-3)
    assert res.metric_rows()[0].metric == "throughput_candidates_per_s"


def test_payloads_cycle_through_a_seeded_permutation_of_the_pool():
    cycle = PayloadCycle(np.arange(10), seed=3)
    seen = np.concatenate([cycle.batch(i, 4) for i in range(5)])  # 20 payloads: the pool twice
    assert sorted(seen[:10].tolist()) == list(range(10)) and seen[:10].tolist() == seen[10:].tolist()
    assert seen[:10].tolist() != list(range(10))


def test_single_stream_serves_one_payload_per_call_and_reports_the_cold_call():
    clock = FakeClock()
    serve = FixedCostServer(clock, fixed_ms=4.0)
    res = single_stream(serve, POOL, unit="requests", rule=QUICK, clock=clock)
    assert all(len(b) == 1 for b in serve.batches)
    assert res.latency.p50_ms == pytest.approx(4.0) and res.throughput_per_s == pytest.approx(250.0)
    assert res.cold_first_ms == pytest.approx(4.0) and res.n == 20
    names = {r.metric for r in res.metric_rows()}
    assert {"latency_p99_ms", "latency_cold_first_ms", "throughput_requests_per_s"} <= names


# ---------------------------------------------------------------- server


def lindley_latencies_ms(arrivals_ns, service_ms):
    """Reference FIFO single server: done_i = max(done_{i-1}, a_i) + s; latency_i = done_i - a_i."""
    done, out = -np.inf, []
    for a in arrivals_ns / 1e6:
        done = max(done, a) + service_ms
        out.append(done - a)
    return np.array(out)


def test_server_latency_counts_queueing_from_the_scheduled_arrival():
    clock = FakeClock()
    res = server(
        FixedCostServer(clock, fixed_ms=10.0), POOL, rate_per_s=200, n_requests=300, seed=5, clock=clock, max_drain_s=60
    )
    expected = lindley_latencies_ms(poisson_arrivals_ns(200, n_requests=300, seed=5), 10.0)
    assert res.n_served == 300 and res.n_censored == 0
    np.testing.assert_allclose(res.latency.samples_ms, expected, atol=1e-6)
    # every request's service takes 10 ms; the rest of its latency is time spent queued
    assert res.service.max_ms == pytest.approx(10.0) and res.latency.p99_ms > 10 * 10.0
    np.testing.assert_allclose(
        np.array(res.latency.samples_ms),
        np.array(res.queue_wait.samples_ms) + np.array(res.service.samples_ms),
        atol=1e-6,
    )


def test_server_latency_grows_when_the_rate_exceeds_capacity():
    clock = FakeClock()
    serve = FixedCostServer(clock, fixed_ms=10.0)  # capacity 100 requests/s
    under = server(serve, POOL, rate_per_s=30, n_requests=400, seed=1, clock=clock)
    over = server(serve, POOL, rate_per_s=150, n_requests=400, seed=1, clock=clock, max_drain_s=60)
    assert over.latency.p99_ms > 5 * under.latency.p99_ms
    assert under.slo_met and not over.slo_met
    # open loop: the backlog builds up request after request
    lat = np.array(over.latency.samples_ms)
    assert np.corrcoef(np.arange(lat.size), lat)[0, 1] > 0.9
    assert over.achieved_rate_per_s == pytest.approx(100.0, rel=0.02)


def test_server_stops_at_the_time_bound_and_counts_unserved_requests_as_misses():
    clock = FakeClock()
    res = server(
        FixedCostServer(clock, fixed_ms=10.0),
        POOL,
        rate_per_s=1000,
        duration_s=1.0,
        slo_ms=100,
        max_drain_s=0.2,
        clock=clock,
    )
    assert res.stopped_by == "time bound" and res.n_censored > 0
    assert res.n_served + res.n_censored + res.n_not_arrived == res.n_scheduled
    assert not res.slo_met and any("lower bounds" in f for f in res.flags)
    censored = np.array(res.latency.samples_ms[res.n_served :])
    assert censored.min() >= 200 - 1e-6  # waited at least the drain time, beyond the SLO


def test_server_early_stop_once_the_slo_is_certainly_missed():
    clock = FakeClock()
    serve = FixedCostServer(clock, fixed_ms=10.0)
    res = server(serve, POOL, rate_per_s=400, n_requests=2000, slo_ms=50, stop_when_slo_missed=True, clock=clock)
    assert res.stopped_by == "slo missed (early stop)" and not res.slo_met
    assert res.n_served < 2000 and len(serve.batches) == res.n_served


def test_server_rows_name_the_load_and_rates():
    clock = FakeClock()
    res = server(FixedCostServer(clock, fixed_ms=1.0), POOL, rate_per_s=100, n_requests=50, clock=clock)
    rows = {r.metric: r for r in res.metric_rows()}
    assert rows["latency_p99_ms"].load == "server" and "p99" in rows["latency_p99_ms"].flag  # n=50 < 1000
    assert rows["achieved_rate_per_s"].unit == "requests/s"
    json.dumps(res.to_dict())


# ---------------------------------------------------------------- SLO search


def test_slo_search_returns_a_rate_between_its_bracketing_trials():
    clock = FakeClock()
    res = server_slo_search(
        FixedCostServer(clock, fixed_ms=10.0),
        POOL,
        slo_ms=60,
        budget_s=3600,
        trial_s=20,
        max_trials=20,
        rel_tol=0.05,
        clock=clock,
    )
    assert res.stopped_by == "converged"
    assert res.capacity_estimate_per_s == pytest.approx(100.0)
    lo, hi = res.bracket_per_s
    assert res.max_qps_at_slo == lo and lo < hi <= lo * 1.05
    met = [t for t in res.trials if t.met]
    missed = [t for t in res.trials if not t.met]
    assert max(t.rate_per_s for t in met) == lo and min(t.rate_per_s for t in missed if t.rate_per_s > lo) == hi
    assert all(t.latency_ms <= 60 for t in met) and all(t.latency_ms > 60 for t in missed)
    assert lo < 100.0  # below capacity: queueing costs latency
    assert res.at_max is not None and res.at_max.target_rate_per_s == lo
    rows = {r.metric: r for r in res.metric_rows()}
    assert rows["max_qps_at_slo"].value == lo and rows["max_qps_at_slo"].unit == "requests/s"
    json.dumps(res.to_dict())


def test_slo_search_reports_no_rate_when_service_alone_exceeds_the_slo():
    clock = FakeClock()
    res = server_slo_search(FixedCostServer(clock, fixed_ms=150.0), POOL, slo_ms=100, clock=clock)
    assert res.max_qps_at_slo == 0.0 and res.trials == [] and res.stopped_by == "no rate met"
    assert "exceeds the SLO" in res.flags[0]
    assert "exceeds the SLO" in res.metric_rows()[0].flag


def test_slo_search_respects_its_budget():
    clock = FakeClock()
    res = server_slo_search(FixedCostServer(clock, fixed_ms=10.0), POOL, slo_ms=60, budget_s=5, trial_s=2, clock=clock)
    assert res.elapsed_s <= 5 + 0.5  # a trial may overrun by at most its drain time
    assert res.stopped_by in ("budget", "converged", "max_trials")


# ---------------------------------------------------------------- validation, before any work


@pytest.mark.parametrize(
    "call",
    [
        lambda s: server(s, POOL, 0, n_requests=10),
        lambda s: server(s, POOL, -5, n_requests=10),
        lambda s: server(s, POOL, 10, n_requests=10, slo_ms=0),
        lambda s: server(s, POOL, 10, duration_s=0),
        lambda s: server(s, POOL, 10),
        lambda s: server(s, POOL, 10, n_requests=10, max_drain_s=0.01, slo_ms=100),
        lambda s: server(s, [], 10, n_requests=10),
        lambda s: server_slo_search(s, POOL, slo_ms=-1),
        lambda s: server_slo_search(s, POOL, budget_s=0),
        lambda s: server_slo_search(s, POOL, trial_s=0),
        lambda s: server_slo_search(s, POOL, min_trial_requests=10, max_trial_requests=5),
        lambda s: offline(s, POOL, batch_sizes=(1, 0)),
        lambda s: offline(s, POOL, batch_sizes=(-32,)),
        lambda s: offline(s, POOL, batch_sizes=()),
        lambda s: offline(s, POOL, unit="Users/s"),
        lambda s: offline(s, POOL, rule=StopRule(min_count=10, max_count=2)),
        lambda s: single_stream(s, POOL, rule=StopRule(max_duration_s=0)),
    ],
)
def test_bad_options_raise_one_line_config_errors_before_any_work(call):
    calls = []
    with pytest.raises(ConfigError) as info:
        call(lambda batch: calls.append(batch))
    assert calls == [] and "\n" not in str(info.value)


# ---------------------------------------------------------------- adaptive offline sweep


def _saturating(knee: int, per_call_s: float = 0.0):
    """A fake serve whose throughput grows linearly with the batch up to `knee`, flat after (fake clock)."""
    from bench.measure.timer import Clock

    state = {"t": 0}

    def serve(batch) -> None:
        # a batch of b costs 1 ms up to the knee, then b / knee ms: constant throughput beyond it
        state["t"] += int(1e6 * max(1.0, len(batch) / knee))

    class Fake(Clock):
        def now_ns(self) -> int:
            state["t"] += 1
            return state["t"]

    return serve, Fake()


def test_adaptive_sweep_doubles_until_the_gain_falls_below_five_percent_and_says_so():
    from bench.measure.loads import AdaptiveSweep, offline

    serve, clock = _saturating(knee=16)
    rule = StopRule(min_count=3, min_duration_s=0.0, max_count=10, max_duration_s=60.0, warmup_count=1, warmup_s=0.0)
    res = offline(serve, np.arange(1000), batch_sizes=AdaptiveSweep(min_gain=0.05), rule=rule, clock=clock)
    sizes = [p.batch_size for p in res.points]
    assert sizes == [1, 2, 4, 8, 16, 32]  # 32 gains nothing over 16: the sweep stops there
    assert res.stopped_by.startswith("gain") and "below 5%" in res.stopped_by
    assert res.best_batch_size in (16, 32)


def test_adaptive_sweep_stops_at_its_limits():
    from bench.measure.loads import AdaptiveSweep, offline

    serve, clock = _saturating(knee=10_000)
    rule = StopRule(min_count=3, min_duration_s=0.0, max_count=10, max_duration_s=60.0, warmup_count=1, warmup_s=0.0)
    res = offline(serve, np.arange(100), batch_sizes=AdaptiveSweep(max_batch=64), rule=rule, clock=clock)
    assert res.points[-1].batch_size == 64 and res.stopped_by == "max batch 64"
    res = offline(serve, np.arange(100), batch_sizes=AdaptiveSweep(time_limit_s=0.01), rule=rule, clock=clock)
    assert res.stopped_by == "time limit 0.01 s" and len(res.points) < 7

    def oom_at_8(batch) -> None:
        if len(batch) >= 8:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        serve(batch)

    res = offline(oom_at_8, np.arange(100), batch_sizes=AdaptiveSweep(), rule=rule, clock=clock)
    assert [p.batch_size for p in res.points] == [
        1,
        2,
        4,
    ] and res.stopped_by == "memory limit: out of memory at batch 8"
