"""Loads, in MLPerf LoadGen's words, over any callable `serve(batch: np.ndarray) -> Any`.

The callable receives a batch of request payloads (rows of `pool`, e.g. user ids); what it does with them is
its business (this module knows nothing of recommenders). Every result names its unit of work ("users",
"requests", "candidates", "lists") and is plain data (`to_dict()`), with `metric_rows()` for results.csv.

- offline:        batch-size sweep; throughput = units processed / time spent in serve; best reported.
- single-stream:  one request at a time; latency distribution, cold first call apart.
- server:         open-loop Poisson arrivals at a target rate, one FIFO server. Latency runs from each
                  request's SCHEDULED arrival to its completion, so time spent queued behind earlier
                  requests counts (closed-loop timing would hide it: "coordinated omission").
- server_slo_search: highest Poisson rate whose p-th percentile latency meets the SLO, by bracketing from
                  the single-stream capacity estimate and bisecting, within a time budget.

Payloads are drawn from a seeded permutation of the pool, cycling; choosing them is never timed.
All options are validated before any call is made (one-line ConfigError).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.measure import _checks
from bench.measure.load_registry import OFFLINE, SERVER, SINGLE_STREAM
from bench.measure.row import MetricRow
from bench.measure.stats import TimingSummary, percentile_name, summarize
from bench.measure.stats import metric_rows as _summary_rows
from bench.measure.timer import REAL_CLOCK, Clock, Progress, ProgressEvent, StopRule, Sync, measure_repeated, no_sync

Serve = Callable[[np.ndarray], Any]

DEFAULT_OFFLINE_RULE = StopRule(
    min_count=10, min_duration_s=0.5, max_count=100_000, max_duration_s=10.0, warmup_count=2, warmup_s=0.1
)
#: 1000 calls: enough for a trusted p99 (see bench.measure.stats)
DEFAULT_SINGLE_STREAM_RULE = StopRule(
    min_count=1000, min_duration_s=1.0, max_count=100_000, max_duration_s=30.0, warmup_count=10, warmup_s=0.5
)


# ---------------------------------------------------------------- helpers


def _plain(obj: Any) -> Any:
    """Dataclasses -> dicts, TimingSummary via its own to_dict, numpy -> Python."""
    if isinstance(obj, TimingSummary):
        return obj.to_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _check_unit(unit: str) -> str:
    if not isinstance(unit, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", unit):
        raise ConfigError(
            f"unit of work {unit!r} must be a lower-case word such as 'users', 'requests', "
            "'candidates' or 'lists'; it becomes part of metric names"
        )
    return unit


class PayloadCycle:
    """A seeded permutation of the pool, read cyclically; batches larger than the pool wrap around."""

    def __init__(self, pool: Any, seed: int = 0) -> None:
        items = np.asarray(pool)
        if items.ndim == 0 or items.shape[0] == 0:
            raise ConfigError("the request pool is empty; pass at least one payload (e.g. the test users' ids)")
        self.items = items[np.random.default_rng(seed).permutation(items.shape[0])]
        self.size = int(items.shape[0])

    def batch(self, index: int, batch_size: int) -> np.ndarray:
        start = (index * batch_size) % self.size
        if start + batch_size <= self.size:
            return self.items[start : start + batch_size]
        return np.take(self.items, np.arange(start, start + batch_size) % self.size, axis=0)


def _units_per_s(units: float, ms: float) -> float:
    return units / (ms / 1e3) if ms > 0 else float("inf")


# ---------------------------------------------------------------- offline


@dataclass
class OfflinePoint:
    batch_size: int
    n_batches: int
    units: float  # units of work done in the measured batches
    busy_s: float  # time spent inside serve for those batches
    throughput_per_s: float  # units / busy_s
    throughput_ci95_per_s: tuple[float, float]  # from the bootstrap interval of the mean batch time
    per_unit_ms: float  # mean batch time / units per batch
    latency: TimingSummary  # per-batch latency
    stopped_by: str
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AdaptiveSweep:
    """Grow the batch (start, start x factor, ...) until throughput gains less than `min_gain` over the
    previous size, or a limit stops it: `max_batch`, the sweep's `time_limit_s`, or memory (the process RSS
    above `memory_limit_bytes`, CUDA memory above `cuda_memory_fraction` of the device, or an out-of-memory
    error at the next size). `stopped_by` in the result says which."""

    start: int = 1
    factor: int = 2
    min_gain: float = 0.05
    max_batch: int = 4096
    time_limit_s: float = 120.0
    memory_limit_bytes: int | None = None
    cuda_memory_fraction: float = 0.9

    def check(self) -> AdaptiveSweep:
        _checks.count("adaptive sweep start", self.start, 1)
        _checks.count("adaptive sweep factor", self.factor, 2, "grow the batch by 2 or more per step")
        _checks.count("adaptive sweep max_batch", self.max_batch, self.start)
        _checks.positive("adaptive sweep time_limit_s", self.time_limit_s)
        if not 0 <= self.min_gain < 10:
            raise ConfigError(f"adaptive sweep min_gain={self.min_gain} must be in [0, 10): e.g. 0.05 for 5%")
        return self


@dataclass
class OfflineResult:
    unit: str
    units_per_request: float
    points: list[OfflinePoint]
    best_batch_size: int
    best_throughput_per_s: float
    cold_first_ms: float | None
    pool_size: int
    load: str = OFFLINE
    #: why the sweep ended: "fixed sizes" or, for an adaptive sweep, the gain / limit that stopped it
    stopped_by: str = "fixed sizes"

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def metric_rows(self) -> list[MetricRow]:
        """`throughput_{unit}_per_s` (best batch size) plus, per batch size b, `throughput_{unit}_per_s@bs{b}`
        and `batch_latency_p50_ms@bs{b}` ... `batch_latency_p99_ms@bs{b}`."""
        rows: list[MetricRow] = []
        name = f"throughput_{self.unit}_per_s"
        best = next(p for p in self.points if p.batch_size == self.best_batch_size)
        rows.append(
            MetricRow(
                name,
                best.throughput_per_s,
                f"{self.unit}/s",
                load=self.load,
                n=best.n_batches,
                ci95_low=best.throughput_ci95_per_s[0],
                ci95_high=best.throughput_ci95_per_s[1],
                flag="; ".join(best.flags),
            )
        )
        for p in self.points:
            rows.append(
                MetricRow(
                    f"{name}@bs{p.batch_size}",
                    p.throughput_per_s,
                    f"{self.unit}/s",
                    load=self.load,
                    n=p.n_batches,
                    ci95_low=p.throughput_ci95_per_s[0],
                    ci95_high=p.throughput_ci95_per_s[1],
                    flag="; ".join(p.flags),
                )
            )
            for r in _summary_rows(
                p.latency, prefix="batch_latency", load=self.load, include=("p50", "p90", "p95", "p99")
            ):
                r.metric = f"{r.metric}@bs{p.batch_size}"
                rows.append(r)
        if self.cold_first_ms is not None:
            rows.append(MetricRow("batch_latency_cold_first_ms", self.cold_first_ms, "ms", load=self.load, n=1))
        return rows


def offline(
    serve: Serve,
    pool: Any,
    *,
    unit: str = "users",
    batch_sizes: Sequence[int] | AdaptiveSweep = (1, 32, 256),
    units_per_request: float = 1.0,
    rule: StopRule | None = None,
    seed: int = 0,
    sync: Sync = no_sync,
    progress: Progress | None = None,
    clock: Clock = REAL_CLOCK,
) -> OfflineResult:
    """Batch-size sweep over fixed sizes, or grown by an AdaptiveSweep. Each batch of b payloads is
    b * units_per_request units of work.

    The first call of the sweep is the cold call (reported apart); every batch size gets its own warm-up.
    """
    unit = _check_unit(unit)
    units_per_request = _checks.positive("units_per_request", units_per_request)
    adaptive: AdaptiveSweep | None = None
    sizes: list[int] = []
    if isinstance(batch_sizes, AdaptiveSweep):
        adaptive = batch_sizes.check()
    else:
        if isinstance(batch_sizes, (int, np.integer)) or len(batch_sizes) == 0:
            raise ConfigError(f"batch_sizes must be a non-empty list of integers, got {batch_sizes!r}; e.g. 1,32,256")
        sizes = [_checks.count("batch size", b, 1, "use 1 or more payloads per batch") for b in batch_sizes]
    rule = rule or DEFAULT_OFFLINE_RULE
    cycle = PayloadCycle(pool, seed)
    sweep_start = clock.now_ns()
    stopped_by = "fixed sizes"

    def next_sizes():
        nonlocal stopped_by
        if adaptive is None:
            yield from sizes
            return
        b = adaptive.start
        while True:
            yield b
            prev = points[-2].throughput_per_s if len(points) >= 2 else None
            gain = points[-1].throughput_per_s / prev - 1.0 if prev else None
            if gain is not None and gain < adaptive.min_gain:
                stopped_by = (
                    f"gain {gain:+.1%} from batch {points[-2].batch_size} to {b}, below {adaptive.min_gain:.0%}"
                )
                return
            memory = _memory_limit_hit(adaptive)
            if memory:
                stopped_by = memory
                return
            if (clock.now_ns() - sweep_start) / 1e9 >= adaptive.time_limit_s:
                stopped_by = f"time limit {adaptive.time_limit_s:g} s"
                return
            if b * adaptive.factor > adaptive.max_batch:
                stopped_by = f"max batch {adaptive.max_batch}"
                return
            b *= adaptive.factor

    points: list[OfflinePoint] = []
    cold_first_ms: float | None = None
    for k, b in enumerate(next_sizes()):

        def make_input(i: int, b: int = b) -> np.ndarray:
            return cycle.batch(i, b)

        def relay(ev: ProgressEvent, b: int = b) -> None:
            if progress is not None:
                progress(ProgressEvent(ev.phase, ev.done, ev.elapsed_s, f"offline bs={b} {ev.message}".strip()))

        try:
            rep = measure_repeated(
                serve,
                make_input=make_input,
                sync=sync,
                cold=(k == 0),
                clock=clock,
                progress=relay if progress else None,
                **vars(rule),
            )
        except (MemoryError, RuntimeError) as exc:  # torch reports CUDA OOM as a RuntimeError subclass
            if adaptive is None or not points or not _is_out_of_memory(exc):
                raise
            stopped_by = f"memory limit: out of memory at batch {b}"
            break
        if k == 0 and rep.cold_first_ns is not None:
            cold_first_ms = rep.cold_first_ns / 1e6
        lat = rep.summary(name=f"offline batch latency bs={b}")
        lat.cold_first_ms = cold_first_ms if k == 0 else None
        per_batch = b * units_per_request
        busy_s = float(rep.samples_ns.sum()) / 1e9
        lo_mean, hi_mean = lat.mean_ci95_ms
        point_flags = [f for f in lat.flags if not f.startswith("n=")]  # percentile flags stay on latency rows
        if b > cycle.size:
            point_flags.append(f"batch size {b} exceeds the pool of {cycle.size}: payloads repeat within a batch")
        points.append(
            OfflinePoint(
                batch_size=b,
                n_batches=rep.n,
                units=per_batch * rep.n,
                busy_s=busy_s,
                throughput_per_s=per_batch * rep.n / busy_s if busy_s > 0 else float("inf"),
                throughput_ci95_per_s=(_units_per_s(per_batch, hi_mean), _units_per_s(per_batch, lo_mean)),
                per_unit_ms=lat.mean_ms / per_batch,
                latency=lat,
                stopped_by=rep.stopped_by,
                flags=point_flags,
            )
        )
    best = max(points, key=lambda p: p.throughput_per_s)
    return OfflineResult(
        unit=unit,
        units_per_request=units_per_request,
        points=points,
        best_batch_size=best.batch_size,
        best_throughput_per_s=best.throughput_per_s,
        cold_first_ms=cold_first_ms,
        pool_size=cycle.size,
        stopped_by=stopped_by,
    )


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def _memory_limit_hit(sweep: AdaptiveSweep) -> str:
    """Why the next, larger batch must not run ("" when it may): process RSS or CUDA memory near its limit."""
    if sweep.memory_limit_bytes is not None:
        import psutil  # noqa: PLC0415

        rss = psutil.Process().memory_info().rss
        if rss >= sweep.memory_limit_bytes:
            return f"memory limit: RSS {rss / 2**30:.2f} GiB >= {sweep.memory_limit_bytes / 2**30:.2f} GiB"
    torch = sys.modules.get("torch")  # only when the cell already uses torch: never imported for this
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        total = torch.cuda.get_device_properties(0).total_memory
        peak = torch.cuda.max_memory_reserved()
        if peak >= sweep.cuda_memory_fraction * total:
            return f"memory limit: CUDA reserved {peak / 2**30:.1f} of {total / 2**30:.1f} GiB"
    return ""


# ---------------------------------------------------------------- single stream


@dataclass
class SingleStreamResult:
    unit: str
    units_per_request: float
    latency: TimingSummary
    throughput_per_s: float  # units / s when requests are sent one after another
    cold_first_ms: float | None
    n: int
    stopped_by: str
    pool_size: int
    load: str = SINGLE_STREAM

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def metric_rows(self) -> list[MetricRow]:
        """latency_p50_ms ... latency_p99_ms, latency_mean_ms, latency_cold_first_ms and
        `throughput_{unit}_per_s` for one-at-a-time serving."""
        rows = _summary_rows(self.latency, prefix="latency", load=self.load)
        lo, hi = self.latency.mean_ci95_ms
        rows.append(
            MetricRow(
                f"throughput_{self.unit}_per_s",
                self.throughput_per_s,
                f"{self.unit}/s",
                load=self.load,
                n=self.n,
                ci95_low=_units_per_s(self.units_per_request, hi),
                ci95_high=_units_per_s(self.units_per_request, lo),
            )
        )
        return rows


def single_stream(
    serve: Serve,
    pool: Any,
    *,
    unit: str = "requests",
    units_per_request: float = 1.0,
    rule: StopRule | None = None,
    seed: int = 0,
    cold: bool = True,
    sync: Sync = no_sync,
    progress: Progress | None = None,
    clock: Clock = REAL_CLOCK,
) -> SingleStreamResult:
    """One request (a batch of one payload) at a time, back to back."""
    unit = _check_unit(unit)
    units_per_request = _checks.positive("units_per_request", units_per_request)
    rule = rule or DEFAULT_SINGLE_STREAM_RULE
    cycle = PayloadCycle(pool, seed)
    rep = measure_repeated(
        serve,
        make_input=lambda i: cycle.batch(i, 1),
        sync=sync,
        cold=cold,
        clock=clock,
        progress=progress,
        **vars(rule),
    )
    lat = rep.summary(name="single-stream latency")
    return SingleStreamResult(
        unit=unit,
        units_per_request=units_per_request,
        latency=lat,
        throughput_per_s=_units_per_s(units_per_request, lat.mean_ms),
        cold_first_ms=lat.cold_first_ms,
        n=rep.n,
        stopped_by=rep.stopped_by,
        pool_size=cycle.size,
    )


# ---------------------------------------------------------------- server


@dataclass
class ServerResult:
    unit: str
    target_rate_per_s: float
    offered_rate_per_s: float  # arrivals actually scheduled / their time span
    achieved_rate_per_s: float  # completions / (last completion - start)
    n_scheduled: int
    n_served: int
    n_censored: int  # arrived but unserved when the run stopped: latency is a lower bound
    n_not_arrived: int  # scheduled after the run stopped (aborted or time bound): not counted
    duration_s: float
    slo_ms: float
    percentile: float
    latency_at_percentile_ms: float
    slo_met: bool
    latency: TimingSummary  # scheduled arrival -> completion (censored values included)
    queue_wait: TimingSummary | None  # scheduled arrival -> start of service (served requests)
    service: TimingSummary | None  # start -> completion (served requests)
    wakeup_lateness_ms: dict[str, float]  # harness: late starts when the server was idle (p50/p99/max)
    stopped_by: str  # "all served", "time bound" or "slo missed (early stop)"
    seed: int
    load: str = SERVER
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def metric_rows(self) -> list[MetricRow]:
        rows = _summary_rows(self.latency, prefix="latency", load=self.load)
        extra = "; ".join(self.flags)
        if extra:
            for r in rows:
                r.flag = "; ".join(f for f in (r.flag, extra) if f)
        rows.append(
            MetricRow(
                "offered_rate_per_s", self.offered_rate_per_s, f"{self.unit}/s", load=self.load, n=self.n_scheduled
            )
        )
        rows.append(
            MetricRow(
                "achieved_rate_per_s",
                self.achieved_rate_per_s,
                f"{self.unit}/s",
                load=self.load,
                n=self.n_served,
                flag=extra,
            )
        )
        return rows


def poisson_arrivals_ns(
    rate_per_s: float, *, duration_s: float | None = None, n_requests: int | None = None, seed: int = 0
) -> np.ndarray:
    """Arrival offsets (ns from the start, first at 0 + one gap) of a Poisson process, vectorised."""
    rng = np.random.default_rng(seed)
    if n_requests is not None:
        n = n_requests
    else:
        expected = rate_per_s * float(duration_s)  # type: ignore[arg-type]
        n = int(expected + 10 * math.sqrt(expected) + 10)
    gaps = rng.exponential(1.0 / rate_per_s, size=n)
    arrivals = np.cumsum(gaps)
    if duration_s is not None:
        while n_requests is None and arrivals[-1] < duration_s:  # astronomically rare: extend the draw
            more = np.cumsum(rng.exponential(1.0 / rate_per_s, size=n)) + arrivals[-1]
            arrivals = np.concatenate([arrivals, more])
        arrivals = arrivals[arrivals < duration_s]
    return np.round(arrivals * 1e9).astype(np.int64)


def _validate_server(
    rate_per_s: Any, duration_s: Any, n_requests: Any, slo_ms: Any, percentile: Any, max_drain_s: Any
) -> tuple[float, float | None, int | None, float, float, float]:
    rate = _checks.positive("rate_per_s", rate_per_s, "give the server load a positive arrival rate")
    if duration_s is None and n_requests is None:
        raise ConfigError("the server load needs duration_s or n_requests to bound it; pass one of them")
    dur = None if duration_s is None else _checks.positive("duration_s", duration_s, "pass a positive duration")
    nreq = None if n_requests is None else _checks.count("n_requests", n_requests, 1)
    slo = _checks.positive("slo_ms", slo_ms, "pass a latency objective in milliseconds, e.g. 100")
    pct = _checks.percentile("percentile", percentile)
    drain = max(2 * slo / 1e3, 1.0) if max_drain_s is None else _checks.positive("max_drain_s", max_drain_s)
    if drain * 1e3 < slo:
        raise ConfigError(
            f"max_drain_s ({drain:g}) is shorter than the SLO ({slo:g} ms): censored requests could "
            "not be told to have missed it; raise max_drain_s"
        )
    return rate, dur, nreq, slo, pct, drain


def server(
    serve: Serve,
    pool: Any,
    rate_per_s: float,
    *,
    unit: str = "requests",
    duration_s: float | None = None,
    n_requests: int | None = None,
    slo_ms: float = 100.0,
    percentile: float = 99.0,
    max_drain_s: float | None = None,
    stop_when_slo_missed: bool = False,
    seed: int = 0,
    sync: Sync = no_sync,
    clock: Clock = REAL_CLOCK,
) -> ServerResult:
    """Open-loop Poisson arrivals at `rate_per_s` to a single FIFO server calling serve(batch of one).

    For request i, scheduled at a_i: the server waits until max(now, a_i), serves it, and latency = done - a_i.
    Bounded: arrivals stop at duration_s (or after n_requests); serving stops at the last arrival +
    max_drain_s (default max(1 s, 2 x SLO)). Requests still queued then are censored: their latency is at
    least (stop - a_i) >= max_drain_s >= SLO, so they are counted as SLO misses, which makes the
    `slo_met` verdict exact even when the latency percentile itself is only a lower bound.
    stop_when_slo_missed: end as soon as more requests have missed the SLO than the percentile allows
    (the verdict is then certain); the SLO search uses it so that overloaded trials cost little.
    """
    rate, dur, nreq, slo, pct, drain = _validate_server(
        rate_per_s, duration_s, n_requests, slo_ms, percentile, max_drain_s
    )
    unit = _check_unit(unit)
    cycle = PayloadCycle(pool, seed)
    arr = poisson_arrivals_ns(rate, duration_s=dur, n_requests=nreq, seed=seed)
    n = int(arr.size)
    if n == 0:
        raise ConfigError(
            f"no arrival falls within duration_s={dur:g} at rate {rate:g}/s; raise the duration or the rate"
        )
    slo_ns = int(slo * 1e6)
    # the verdict is certain once this many latencies exceed the SLO (see np.percentile's linear rule)
    decisive = n - int(math.floor((n - 1) * pct / 100.0))
    starts = np.zeros(n, dtype=np.int64)
    dones = np.zeros(n, dtype=np.int64)
    now = clock.now_ns
    sync()
    t0 = now() + 1_000_000  # 1 ms head start so the first arrival is not already late
    hard_end = t0 + int(arr[-1]) + int(drain * 1e9)
    served = 0
    misses = 0
    stopped_by = "all served"
    for i in range(n):
        payload = cycle.batch(i, 1)
        target = t0 + int(arr[i])
        if now() < target:
            clock.sleep_until_ns(target)
        s = now()
        serve(payload)
        if sync is not no_sync:
            sync()
        d = now()
        starts[i] = s
        dones[i] = d
        served = i + 1
        if served == n:
            break
        if d >= hard_end:
            stopped_by = "time bound"
            break
        if stop_when_slo_missed:
            misses += d - target > slo_ns
            # queued requests that have already waited longer than the SLO will miss it too
            waiting_too_long = int(np.searchsorted(arr, d - t0 - slo_ns, side="right")) - served
            if misses + max(waiting_too_long, 0) >= decisive:
                stopped_by = "slo missed (early stop)"
                break
    stop_ns = int(dones[served - 1])
    sched = t0 + arr
    arrived = int(np.searchsorted(arr, stop_ns - t0, side="right"))
    n_censored = max(arrived - served, 0)
    lat_ns = np.concatenate([dones[:served] - sched[:served], stop_ns - sched[served : served + n_censored]])
    flags: list[str] = []
    if n_censored:
        flags.append(
            f"{n_censored} of {served + n_censored} requests unserved at the stop: their latencies are lower bounds"
        )
    if stopped_by != "all served":
        flags.append(f"stopped: {stopped_by}")
    # no cv "noisy" flag on server latencies: queueing makes them widely spread by nature, not by noise
    latency = summarize(
        lat_ns, unit="ns", name=f"server latency at {rate:g}/s", percentiles=_pcts_with(pct), noisy_cv=None
    )
    queue_wait = summarize(
        starts[:served] - sched[:served], unit="ns", name="queue wait", percentiles=_pcts_with(pct), noisy_cv=None
    )
    service = summarize(dones[:served] - starts[:served], unit="ns", name="service time", percentiles=_pcts_with(pct))
    # late starts while the server was idle are the harness's wake-up error, not queueing
    idle = np.ones(served, dtype=bool)
    idle[1:] = dones[: served - 1] <= sched[1:served]
    late_ms = (starts[:served][idle] - sched[:served][idle]) / 1e6
    wakeup: dict[str, float] = (
        {
            "n": int(late_ms.size),
            "p50_ms": float(np.percentile(late_ms, 50)),
            "p99_ms": float(np.percentile(late_ms, 99)),
            "max_ms": float(late_ms.max()),
        }
        if late_ms.size
        else {"n": 0}
    )
    value = latency.p(pct).value_ms
    met = stopped_by != "slo missed (early stop)" and value <= slo
    span_s = float(arr[min(arrived, n) - 1]) / 1e9 if arrived else 0.0
    elapsed_s = (stop_ns - t0) / 1e9
    return ServerResult(
        unit=unit,
        target_rate_per_s=rate,
        offered_rate_per_s=(arrived / span_s) if span_s > 0 else float("nan"),
        achieved_rate_per_s=served / elapsed_s if elapsed_s > 0 else float("nan"),
        n_scheduled=n,
        n_served=served,
        n_censored=n_censored,
        n_not_arrived=n - max(arrived, served),
        duration_s=elapsed_s,
        slo_ms=slo,
        percentile=pct,
        latency_at_percentile_ms=value,
        slo_met=bool(met),
        latency=latency,
        queue_wait=queue_wait,
        service=service,
        wakeup_lateness_ms=wakeup,
        stopped_by=stopped_by,
        seed=seed,
        flags=flags,
    )


def _pcts_with(pct: float) -> tuple[float, ...]:
    return tuple(sorted({50.0, 90.0, 95.0, 99.0, float(pct)}))


# ---------------------------------------------------------------- SLO search


@dataclass
class SloTrial:
    rate_per_s: float
    n_requests: int
    n_served: int
    n_censored: int
    latency_ms: float  # at the search's percentile
    latency_ci95_ms: tuple[float, float]
    achieved_rate_per_s: float
    met: bool
    stopped_by: str
    elapsed_s: float
    flag: str = ""


@dataclass
class SloSearchResult:
    unit: str
    slo_ms: float
    percentile: float
    max_qps_at_slo: float  # highest tested rate that met the SLO (0 if none did)
    bracket_per_s: tuple[float | None, float | None]  # (highest rate met, lowest rate missed above it)
    capacity_estimate_per_s: float  # 1 / mean single-stream service time
    trials: list[SloTrial]
    at_max: ServerResult | None  # the full server result at max_qps_at_slo
    stopped_by: str  # "converged", "budget", "max_trials", "no rate met"
    elapsed_s: float
    load: str = SERVER
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def metric_rows(self) -> list[MetricRow]:
        """`max_qps_at_slo` (flagged when the deciding trial's percentile is untrustworthy or the search
        did not converge) plus the server rows at that rate."""
        at = self.at_max
        own = list(self.flags)
        if at is not None:
            pf = at.latency.p(self.percentile).flag
            if pf:
                own.append(pf)
        rows = [
            MetricRow(
                "max_qps_at_slo",
                self.max_qps_at_slo,
                f"{self.unit}/s",
                load=self.load,
                n=at.n_scheduled if at else None,
                flag="; ".join(own),
            )
        ]
        if at is not None:
            rows.extend(at.metric_rows())
        return rows


def server_slo_search(
    serve: Serve,
    pool: Any,
    *,
    unit: str = "requests",
    slo_ms: float = 100.0,
    percentile: float = 99.0,
    start_rate_per_s: float | None = None,
    trial_s: float = 2.0,
    min_trial_requests: int = 200,
    max_trial_requests: int = 5000,
    budget_s: float = 60.0,
    max_trials: int = 12,
    rel_tol: float = 0.05,
    seed: int = 0,
    sync: Sync = no_sync,
    progress: Progress | None = None,
    clock: Clock = REAL_CLOCK,
) -> SloSearchResult:
    """Find the highest Poisson rate whose `percentile` latency (from scheduled arrival) is <= slo_ms.

    1. Capacity estimate c = 1 / mean service time from a short single-stream run (unless start_rate_per_s).
    2. Bracket: try c; while met, double; while missed, halve.
    3. Bisect geometrically between the highest rate met and the lowest missed above it until their ratio
       is within 1 + rel_tol, the budget is spent, or max_trials is reached.
    Each trial runs about trial_s seconds (min/max request counts apply) with early stop once the SLO is
    certainly missed. The budget is checked before each trial (a trial is shrunk to fit, or skipped).
    """
    unit = _check_unit(unit)
    slo = _checks.positive("slo_ms", slo_ms, "pass a latency objective in milliseconds, e.g. 100")
    pct = _checks.percentile("percentile", percentile)
    trial_s = _checks.positive("trial_s", trial_s, "give each SLO-search trial a positive duration")
    budget_s = _checks.positive("budget_s", budget_s, "give the SLO search a positive time budget")
    min_req = _checks.count("min_trial_requests", min_trial_requests, 1)
    max_req = _checks.count("max_trial_requests", max_trial_requests, 1)
    if min_req > max_req:
        raise ConfigError(
            f"min_trial_requests ({min_req}) exceeds max_trial_requests ({max_req}); "
            "raise max_trial_requests or lower min_trial_requests"
        )
    max_trials = _checks.count("max_trials", max_trials, 1)
    rel_tol = _checks.positive("rel_tol", rel_tol, "use e.g. 0.05 to stop when the bracket is within 5%")
    if start_rate_per_s is not None:
        start_rate_per_s = _checks.positive("start_rate_per_s", start_rate_per_s, "or leave it unset")
    PayloadCycle(pool, seed)  # validates the pool before any work
    drain_s = max(2 * slo / 1e3, 0.5)

    def report(msg: str, done: int) -> None:
        if progress is not None:
            progress(ProgressEvent("slo-search", done, (clock.now_ns() - t_start) / 1e9, msg))

    t_start = clock.now_ns()
    flags: list[str] = []
    if start_rate_per_s is None:
        est_budget = min(1.0, 0.1 * budget_s)
        probe = single_stream(
            serve,
            pool,
            unit=unit,
            seed=seed,
            sync=sync,
            clock=clock,
            rule=StopRule(
                min_count=20,
                min_duration_s=est_budget / 2,
                max_count=10_000,
                max_duration_s=est_budget,
                warmup_count=3,
                warmup_s=0.0,
            ),
        )
        capacity = 1e3 / probe.latency.mean_ms if probe.latency.mean_ms > 0 else 1e6
        service_p50_ms = probe.latency.p50_ms
    else:
        capacity = start_rate_per_s
        service_p50_ms = None

    trials: list[SloTrial] = []
    results: dict[float, ServerResult] = {}
    lo: float | None = None  # highest rate met
    hi: float | None = None  # lowest rate missed (above lo)
    rate = capacity
    stopped_by = "max_trials"
    if service_p50_ms is not None and service_p50_ms > slo:
        # latency >= service time at any rate, so a median service time above the SLO rules out every rate
        flags.append(
            f"median single-stream service time {service_p50_ms:.4g} ms exceeds the SLO ({slo:g} ms): "
            "no rate can meet it"
        )
        max_trials = 0
    for t in range(max_trials):
        remaining = budget_s - (clock.now_ns() - t_start) / 1e9
        n_req = int(min(max(round(rate * trial_s), min_req), max_req))
        if n_req / rate + drain_s > remaining:
            n_req = int((remaining - drain_s) * rate)
            if n_req < min(min_req, 20):
                stopped_by = "budget"
                break
        t_trial = clock.now_ns()
        res = server(
            serve,
            pool,
            rate,
            unit=unit,
            n_requests=n_req,
            slo_ms=slo,
            percentile=pct,
            max_drain_s=drain_s,
            stop_when_slo_missed=True,
            seed=seed + t,
            sync=sync,
            clock=clock,
        )
        p = res.latency.p(pct)
        trials.append(
            SloTrial(
                rate_per_s=rate,
                n_requests=n_req,
                n_served=res.n_served,
                n_censored=res.n_censored,
                latency_ms=p.value_ms,
                latency_ci95_ms=(p.ci95_low_ms, p.ci95_high_ms),
                achieved_rate_per_s=res.achieved_rate_per_s,
                met=res.slo_met,
                stopped_by=res.stopped_by,
                elapsed_s=(clock.now_ns() - t_trial) / 1e9,
                flag=p.flag,
            )
        )
        report(
            f"slo-search {rate:.4g}/s: {percentile_name(pct)}={p.value_ms:.3g} ms {'met' if res.slo_met else 'missed'}",
            t + 1,
        )
        if res.slo_met:
            results[rate] = res
            lo = rate if lo is None else max(lo, rate)
        else:
            hi = rate if hi is None else min(hi, rate)
        if lo is None:
            rate = rate / 2
        elif hi is None:
            rate = rate * 2
        else:
            if hi / lo <= 1 + rel_tol:
                stopped_by = "converged"
                break
            rate = math.sqrt(lo * hi)
    if lo is None:
        stopped_by = "no rate met"
        if trials:
            flags.append(
                f"no tested rate met {percentile_name(pct)}<={slo:g} ms "
                f"(lowest tried {min(t.rate_per_s for t in trials):.4g}/s)"
            )
        elif max_trials:
            flags.append("the time budget allowed no trial; raise budget_s")
    elif stopped_by != "converged":
        flags.append(
            f"search stopped by {stopped_by} before converging"
            + (f": bracket {lo:.4g}-{hi:.4g}/s" if hi is not None else ": no upper bracket found")
        )
    return SloSearchResult(
        unit=unit,
        slo_ms=slo,
        percentile=pct,
        max_qps_at_slo=lo or 0.0,
        bracket_per_s=(lo, hi),
        capacity_estimate_per_s=capacity,
        trials=trials,
        at_max=results.get(lo) if lo is not None else None,
        stopped_by=stopped_by,
        elapsed_s=(clock.now_ns() - t_start) / 1e9,
        flags=flags,
    )
