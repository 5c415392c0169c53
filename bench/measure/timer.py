"""Timing primitives: a nanosecond clock, a device-sync hook, and repeated timing with a two-sided stop rule.

- Time is read with `time.perf_counter_ns` (monotonic, ns resolution, no float rounding).
- A `Sync` is a zero-argument callable run just before the clock is read at start and at stop, so that
  asynchronous device work (CUDA kernels) is inside the timed region: `torch.cuda.synchronize` on CUDA,
  nothing on CPU (the CPU loop skips the call entirely so that harness overhead stays minimal).
- `measure_repeated` reports the cold first call apart, warms up, then times until BOTH a minimum count
  and a minimum duration are reached, or a cap (maximum count or duration) is hit.
- Producing the call's input (e.g. picking the next batch of user ids) happens outside the timed region.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bench.errors import ConfigError
from bench.measure import _checks
from bench.measure.stats import TimingSummary, summarize

Sync = Callable[[], None]


def no_sync() -> None:
    """The CPU sync: nothing to wait for."""


def make_sync(device: str = "cpu") -> Sync:
    """The sync hook for a device string ("cpu", "cuda", "cuda:1").

    Imports torch only for CUDA devices (a CPU cell never pays for importing torch).
    """
    kind = str(device).split(":", 1)[0].lower()
    if kind == "cpu":
        return no_sync
    if kind == "cuda":
        try:
            import torch  # noqa: PLC0415 - only CUDA cells need torch here
        except ImportError:
            raise ConfigError(
                f"device {device!r} needs torch with CUDA, and torch is not installed; "
                "install a CUDA build of torch or use --device cpu"
            ) from None
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} requested but torch.cuda.is_available() is False on this machine; use --device cpu"
            )
        dev = torch.device(device)

        def cuda_sync() -> None:
            torch.cuda.synchronize(dev)

        return cuda_sync
    raise ConfigError(f"unknown device {device!r} for timing; use 'cpu' or 'cuda[:N]'")


class Clock(Protocol):
    """Where time comes from. The real clock reads perf_counter_ns; tests inject a fake one."""

    def now_ns(self) -> int: ...

    def sleep_until_ns(self, deadline_ns: int) -> None: ...


class PerfClock:
    """perf_counter_ns, with a sleep that wakes on time: it sleeps to `spin_ns` before the deadline,
    then spins, because `time.sleep` can overshoot by 50-100 us and, in the server load, oversleeping
    would be counted as the server's latency."""

    def __init__(self, spin_ns: int = 200_000) -> None:
        self.spin_ns = int(spin_ns)

    @staticmethod
    def now_ns() -> int:
        return time.perf_counter_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        while True:
            remaining = deadline_ns - time.perf_counter_ns()
            if remaining <= 0:
                return
            if remaining > self.spin_ns:
                time.sleep((remaining - self.spin_ns) / 1e9)


REAL_CLOCK = PerfClock()


def time_call(fn: Callable[..., Any], *args: Any, sync: Sync = no_sync, clock: Clock = REAL_CLOCK) -> tuple[Any, int]:
    """Call fn(*args) once; returns (result, elapsed_ns) with sync before both clock reads."""
    sync()
    t0 = clock.now_ns()
    out = fn(*args)
    sync()
    return out, clock.now_ns() - t0


@dataclass
class StopRule:
    """When to stop timing. Measurement stops once BOTH min_count calls and min_duration_s seconds are
    reached, or as soon as either cap (max_count, max_duration_s) is hit. Warm-up runs until both
    warmup_count calls (the cold first call included) and warmup_s seconds are done."""

    min_count: int = 100
    min_duration_s: float = 1.0
    max_count: int = 100_000
    max_duration_s: float = 30.0
    warmup_count: int = 5
    warmup_s: float = 0.2

    def __post_init__(self) -> None:
        self.min_count = _checks.count("min_count", self.min_count, 1)
        self.max_count = _checks.count("max_count", self.max_count, 1)
        self.min_duration_s = _checks.non_negative("min_duration_s", self.min_duration_s)
        self.max_duration_s = _checks.positive(
            "max_duration_s", self.max_duration_s, "give the timing loop a time cap in seconds"
        )
        self.warmup_count = _checks.count("warmup_count", self.warmup_count, 0)
        self.warmup_s = _checks.non_negative("warmup_s", self.warmup_s)
        if self.min_count > self.max_count:
            raise ConfigError(
                f"min_count ({self.min_count}) exceeds max_count ({self.max_count}); raise max_count or lower min_count"
            )
        if self.min_duration_s > self.max_duration_s:
            raise ConfigError(
                f"min_duration_s ({self.min_duration_s:g}) exceeds max_duration_s "
                f"({self.max_duration_s:g}); raise max_duration_s or lower min_duration_s"
            )


@dataclass
class ProgressEvent:
    phase: str  # "warmup" or "measure"
    done: int  # calls completed in this phase
    elapsed_s: float  # seconds spent in this phase
    message: str = ""


Progress = Callable[[ProgressEvent], None]


@dataclass
class RepeatedTiming:
    """Raw result of measure_repeated: per-call samples in ns, the cold first call apart."""

    samples_ns: np.ndarray
    cold_first_ns: int | None
    warmup_count: int
    warmup_s: float
    measure_s: float
    stopped_by: str  # "min_count+min_duration", "max_count" or "max_duration"
    rule: StopRule = field(default_factory=StopRule)

    @property
    def n(self) -> int:
        return int(self.samples_ns.size)

    def summary(self, name: str = "", **kwargs: Any) -> TimingSummary:
        """The TimingSummary of the samples (ms), with the cold first call attached and the stop reason
        flagged when a cap cut measurement short of its minimums."""
        s = summarize(self.samples_ns, unit="ns", name=name, cold_first=self.cold_first_ns, **kwargs)
        if self.stopped_by != "min_count+min_duration" and (
            self.n < self.rule.min_count or self.measure_s < self.rule.min_duration_s
        ):
            s.flags.append(
                f"stopped by {self.stopped_by} before min_count={self.rule.min_count} and "
                f"min_duration_s={self.rule.min_duration_s:g} were both reached"
            )
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "cold_first_ns": self.cold_first_ns,
            "warmup_count": self.warmup_count,
            "warmup_s": self.warmup_s,
            "measure_s": self.measure_s,
            "stopped_by": self.stopped_by,
            "rule": vars(self.rule).copy(),
        }


_PROGRESS_EVERY_NS = 250_000_000


def measure_repeated(
    fn: Callable[..., Any],
    *,
    min_count: int = 100,
    min_duration_s: float = 1.0,
    max_count: int = 100_000,
    max_duration_s: float = 30.0,
    warmup_count: int = 5,
    warmup_s: float = 0.2,
    make_input: Callable[[int], Any] | None = None,
    sync: Sync = no_sync,
    cold: bool = True,
    progress: Progress | None = None,
    clock: Clock = REAL_CLOCK,
) -> RepeatedTiming:
    """Time `fn` repeatedly.

    fn: called as fn() or, with `make_input`, as fn(make_input(i)) where i counts every call made (cold,
        warm-up and measured); make_input runs before the clock starts, so choosing inputs is not timed.
    cold: time the first call apart as `cold_first_ns` (it counts towards warmup_count). Pass False when
        this callable already ran in this process (e.g. the second batch size of a sweep).
    Stop rule: see StopRule. The rule is validated before any call is made.
    """
    rule = StopRule(
        min_count=min_count,
        min_duration_s=min_duration_s,
        max_count=max_count,
        max_duration_s=max_duration_s,
        warmup_count=warmup_count,
        warmup_s=warmup_s,
    )
    now = clock.now_ns
    call_index = 0

    def one_call() -> int:
        nonlocal call_index
        if make_input is None:
            if sync is no_sync:
                t0 = now()
                fn()
                t1 = now()
            else:
                sync()
                t0 = now()
                fn()
                sync()
                t1 = now()
        else:
            arg = make_input(call_index)
            if sync is no_sync:
                t0 = now()
                fn(arg)
                t1 = now()
            else:
                sync()
                t0 = now()
                fn(arg)
                sync()
                t1 = now()
        call_index += 1
        return t1 - t0

    cold_first_ns = one_call() if cold else None
    warm_done = 1 if cold else 0

    # warm-up: both count and seconds (the cold call counts towards the count)
    warm_start = now()
    warm_end_ns = warm_start + int(rule.warmup_s * 1e9)
    last_report = warm_start
    while warm_done < rule.warmup_count or now() < warm_end_ns:
        one_call()
        warm_done += 1
        if progress is not None and now() - last_report >= _PROGRESS_EVERY_NS:
            last_report = now()
            progress(ProgressEvent("warmup", warm_done, (last_report - warm_start) / 1e9))
    warmup_elapsed_s = (now() - warm_start) / 1e9

    samples: list[int] = []
    append = samples.append
    start = now()
    min_end = start + int(rule.min_duration_s * 1e9)
    max_end = start + int(rule.max_duration_s * 1e9)
    last_report = start
    stopped_by = "min_count+min_duration"
    while True:
        append(one_call())
        t = now()
        n = len(samples)
        if n >= rule.min_count and t >= min_end:
            break
        if n >= rule.max_count:
            stopped_by = "max_count"
            break
        if t >= max_end:
            stopped_by = "max_duration"
            break
        if progress is not None and t - last_report >= _PROGRESS_EVERY_NS:
            last_report = t
            progress(ProgressEvent("measure", n, (t - start) / 1e9))
    measure_s = (now() - start) / 1e9
    if progress is not None:
        progress(ProgressEvent("measure", len(samples), measure_s, f"done ({stopped_by})"))
    return RepeatedTiming(
        samples_ns=np.asarray(samples, dtype=np.int64),
        cold_first_ns=cold_first_ns,
        warmup_count=warm_done,
        warmup_s=warmup_elapsed_s,
        measure_s=measure_s,
        stopped_by=stopped_by,
        rule=rule,
    )
