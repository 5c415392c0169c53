"""bench.measure.timer: the stop rule (both minimums, both caps), cold call apart, warm-up, sync, validation."""

import pytest

from bench.errors import ConfigError
from bench.measure.timer import StopRule, make_sync, measure_repeated, no_sync, time_call
from tests.support.fakeclock import FakeClock


def costly(clock, ms=1.0, cold_ms=None):
    calls = []

    def fn(*args):
        calls.append(args)
        clock.advance_ms(cold_ms if cold_ms is not None and len(calls) == 1 else ms)

    return fn, calls


def test_min_duration_keeps_timing_after_min_count_is_reached():
    clock = FakeClock()
    fn, _ = costly(clock, ms=1.0)
    rep = measure_repeated(fn, min_count=10, min_duration_s=0.5, warmup_count=0, warmup_s=0, clock=clock)
    assert rep.n == 500 and rep.stopped_by == "min_count+min_duration"


def test_min_count_keeps_timing_after_min_duration_is_reached():
    clock = FakeClock()
    fn, _ = costly(clock, ms=1.0)
    rep = measure_repeated(fn, min_count=300, min_duration_s=0.01, warmup_count=0, warmup_s=0, clock=clock)
    assert rep.n == 300 and rep.stopped_by == "min_count+min_duration"


def test_max_count_caps_and_is_flagged():
    clock = FakeClock()
    fn, _ = costly(clock, ms=1.0)
    rep = measure_repeated(
        fn,
        min_count=5,
        min_duration_s=10.0,
        max_count=100,
        max_duration_s=60.0,
        warmup_count=0,
        warmup_s=0,
        clock=clock,
    )
    assert rep.n == 100 and rep.stopped_by == "max_count"
    assert any("max_count" in f for f in rep.summary().flags)


def test_max_duration_caps_and_is_flagged():
    clock = FakeClock()
    fn, _ = costly(clock, ms=10.0)
    rep = measure_repeated(
        fn, min_count=1000, min_duration_s=0.1, max_duration_s=0.5, warmup_count=0, warmup_s=0, clock=clock
    )
    assert rep.n == 50 and rep.stopped_by == "max_duration"
    assert any("max_duration" in f for f in rep.summary().flags)


def test_cold_first_call_is_reported_apart_and_warmup_runs_before_measuring():
    clock = FakeClock()
    fn, calls = costly(clock, ms=1.0, cold_ms=80.0)
    rep = measure_repeated(fn, min_count=20, min_duration_s=0.0, warmup_count=5, warmup_s=0.01, clock=clock)
    assert rep.cold_first_ns == 80_000_000
    assert rep.warmup_count == 11  # cold call + calls until both 5 calls and 10 ms of warm-up are done
    assert rep.samples_ns.tolist() == [1_000_000] * 20
    assert len(calls) == rep.warmup_count + rep.n
    s = rep.summary()
    assert s.cold_first_ms == 80.0 and s.max_ms == 1.0


def test_inputs_are_made_per_call_with_a_running_index():
    clock = FakeClock()
    fn, calls = costly(clock)
    measure_repeated(
        fn, make_input=lambda i: i * 10, min_count=3, min_duration_s=0, warmup_count=2, warmup_s=0, clock=clock
    )
    assert [c[0] for c in calls] == [0, 10, 20, 30, 40]


def test_sync_runs_around_every_timed_call():
    clock = FakeClock()
    fn, calls = costly(clock)
    syncs = []
    rep = measure_repeated(
        fn,
        sync=lambda: syncs.append(1),
        min_count=4,
        min_duration_s=0,
        warmup_count=0,
        warmup_s=0,
        cold=False,
        clock=clock,
    )
    assert rep.cold_first_ns is None and len(calls) == 4 and len(syncs) == 8


def test_time_call_returns_result_and_elapsed():
    clock = FakeClock()
    out, ns = time_call(lambda x: (clock.advance_ms(3), x * 2)[1], 21, clock=clock)
    assert out == 42 and ns == 3_000_000


def test_progress_reports_phases():
    clock = FakeClock()
    fn, _ = costly(clock, ms=50.0)
    events = []
    measure_repeated(
        fn, min_count=20, min_duration_s=0, warmup_count=10, warmup_s=0, progress=events.append, clock=clock
    )
    assert {e.phase for e in events} == {"warmup", "measure"}
    assert events[-1].done == 20 and "done" in events[-1].message


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(min_count=10, max_count=5),
        dict(min_count=0),
        dict(max_duration_s=0),
        dict(max_duration_s=-1),
        dict(min_duration_s=5, max_duration_s=1),
        dict(warmup_s=-0.1),
        dict(min_count=2.5),
    ],
)
def test_bad_stop_rules_fail_before_any_call(kwargs):
    calls = []
    with pytest.raises(ConfigError) as info:
        measure_repeated(lambda: calls.append(1), **kwargs)
    assert calls == [] and "\n" not in str(info.value)


def test_stop_rule_defaults_are_valid():
    rule = StopRule()
    assert rule.min_count <= rule.max_count and rule.min_duration_s <= rule.max_duration_s


def test_cpu_sync_is_a_no_op_and_unknown_devices_are_rejected():
    assert make_sync("cpu") is no_sync
    with pytest.raises(ConfigError):
        make_sync("tpu")


def test_cuda_sync_without_cuda_is_a_clear_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the error path is not reachable here")
    with pytest.raises(ConfigError) as info:
        make_sync("cuda")
    assert "--device cpu" in str(info.value)
