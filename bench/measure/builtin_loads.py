"""The packaged loads as `Load`s: offline (batch-size sweep), single-stream, server (SLO search).

Each wraps its engine in bench.measure.loads with a config dataclass and turns the engine's result into
the rows, timings and extras a cell records. bench.measure.load_registry names them (PACKAGED) and builds
them on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.measure import loads as engines
from bench.measure.load_registry import OFFLINE, SERVER, SINGLE_STREAM, LoadContext, LoadOutput

Serve = Callable[[np.ndarray], Any]
#: how an offline sweep chooses its batch sizes
FIXED, ADAPTIVE = "fixed", "adaptive"


@dataclass(frozen=True)
class OfflineConfig:
    """Batch-size sweep: `sweep` "fixed" runs `batch_sizes`; "adaptive" grows the batch 1, 2, 4, ... until
    throughput gains less than `min_gain`, or `max_batch`, `time_limit_s` (per cell) or memory stops it."""

    batch_sizes: tuple[int, ...] = (1, 32, 256)
    sweep: str = FIXED
    min_gain: float = 0.05
    max_batch: int = 4096
    time_limit_s: float = 120.0
    #: each batch size is timed for at least this long and this many batches
    min_s: float = 1.0
    min_batches: int = 3


@dataclass(frozen=True)
class SingleStreamConfig:
    """One request at a time: at least `min_count` requests and `min_s` seconds, at most `max_s`."""

    min_count: int = 200
    min_s: float = 2.0
    max_s: float = 10.0
    warmup_count: int = 5


@dataclass(frozen=True)
class ServerConfig:
    """Open-loop Poisson arrivals: the highest rate whose p99 latency meets `slo_ms`, found within `budget_s`;
    each trial serves at least `min_trial_requests` requests."""

    slo_ms: float = 100.0
    budget_s: float = 20.0
    min_trial_requests: int = 300


def _positive(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message + "; fix the option or the scenario's Settings")


class OfflineLoad:
    name = OFFLINE
    config_type = OfflineConfig

    def describe(self, config: OfflineConfig) -> str:
        return "offline load: batch-size sweep"

    def check(self, config: OfflineConfig) -> None:
        _positive(
            bool(config.batch_sizes) and all(isinstance(b, int) and b > 0 for b in config.batch_sizes),
            "batch sizes must be positive integers",
        )
        _positive(config.sweep in (FIXED, ADAPTIVE), f"offline_sweep={config.sweep!r}: use {FIXED} or {ADAPTIVE}")
        _positive(
            0 <= config.min_gain < 10 and config.max_batch >= 1 and config.time_limit_s > 0,
            "adaptive sweep: min gain in [0, 10), max batch >= 1 and time limit > 0",
        )
        _positive(config.min_s > 0 and config.min_batches > 0, "offline minimum duration and batch count must be > 0")

    def run(self, serve: Serve, config: OfflineConfig, context: LoadContext) -> LoadOutput:
        from bench.measure.energy import EnergyMeter
        from bench.measure.timer import StopRule

        rule = StopRule(
            min_count=config.min_batches,
            min_duration_s=config.min_s,
            max_count=100_000,
            max_duration_s=max(10.0, 4 * config.min_s),
            warmup_count=2,
            warmup_s=0.0,
        )
        sizes: tuple[int, ...] | engines.AdaptiveSweep = config.batch_sizes
        if config.sweep == ADAPTIVE:
            sizes = engines.AdaptiveSweep(
                min_gain=config.min_gain, max_batch=config.max_batch, time_limit_s=config.time_limit_s
            )
        with EnergyMeter() as energy:
            off = engines.offline(
                serve,
                context.pool,
                unit="users",
                batch_sizes=sizes,
                rule=rule,
                seed=context.seed,
                sync=context.sync,
                progress=context.progress,
            )
        out = LoadOutput(rows=off.metric_rows())
        # the sweep's curve (throughput per batch size) and why it ended, for the report's sweep chart
        out.extras["offline_sweep"] = {
            "mode": config.sweep,
            "stopped_by": off.stopped_by,
            "best_batch_size": off.best_batch_size,
            "curve": [{"batch_size": p.batch_size, "throughput_per_s": p.throughput_per_s} for p in off.points],
        }
        out.timings = [
            {
                "load": self.name,
                "batch_size": p.batch_size,
                "unit_of_work": off.unit,
                "throughput_per_s": p.throughput_per_s,
                **p.latency.to_dict(),
            }
            for p in off.points
        ]
        _energy(out, energy.result(), off, self.name)
        return out


def _energy(out: LoadOutput, energy: dict[str, Any], off: engines.OfflineResult, load: str) -> None:
    """Joules per recommendation over the offline sweep, labelled measured (RAPL/NVML) or estimated."""
    joules = energy.get("joules")
    units = sum(p.units for p in off.points)
    if joules is None or not units:
        return
    out.rows.append(
        engines.MetricRow(
            "energy_j_per_rec", float(joules / units), "J", load=load, label=energy.get("label", "estimated")
        )
    )
    # how it was obtained travels with the figure; warm-up calls are in the joules but not in the units
    out.extras["energy_offline"] = {**energy, "scope": "whole offline sweep, warm-up calls included"}


class SingleStreamLoad:
    name = SINGLE_STREAM
    config_type = SingleStreamConfig

    def describe(self, config: SingleStreamConfig) -> str:
        return "single-stream load"

    def check(self, config: SingleStreamConfig) -> None:
        _positive(config.min_count > 0 and config.min_s > 0, "single-stream minimum count and duration must be > 0")
        _positive(config.max_s >= config.min_s, "single-stream max duration must be >= its minimum duration")
        _positive(config.warmup_count >= 0, f"warmup_count={config.warmup_count} must be >= 0")

    def run(self, serve: Serve, config: SingleStreamConfig, context: LoadContext) -> LoadOutput:
        from bench.measure.timer import StopRule

        rule = StopRule(
            min_count=config.min_count,
            min_duration_s=config.min_s,
            max_count=100_000,
            max_duration_s=config.max_s,
            warmup_count=config.warmup_count,
            warmup_s=0.0,
        )
        ss = engines.single_stream(
            serve,
            context.pool,
            unit="requests",
            rule=rule,
            seed=context.seed,
            sync=context.sync,
            progress=context.progress,
        )
        return LoadOutput(
            rows=ss.metric_rows(),
            timings=[{"load": self.name, "batch_size": 1, "unit_of_work": ss.unit, **ss.latency.to_dict()}],
        )


class ServerLoad:
    name = SERVER
    config_type = ServerConfig

    def describe(self, config: ServerConfig) -> str:
        return f"server load: highest Poisson rate with p99 <= {config.slo_ms:g} ms"

    def check(self, config: ServerConfig) -> None:
        _positive(config.slo_ms > 0, f"SLO {config.slo_ms} ms must be > 0")
        _positive(config.budget_s > 0 and config.min_trial_requests > 0, "server budget and request count must be > 0")

    def run(self, serve: Serve, config: ServerConfig, context: LoadContext) -> LoadOutput:
        sv = engines.server_slo_search(
            serve,
            context.pool,
            unit="requests",
            slo_ms=config.slo_ms,
            budget_s=config.budget_s,
            min_trial_requests=config.min_trial_requests,
            seed=context.seed,
            sync=context.sync,
            progress=context.progress,
        )
        out = LoadOutput(rows=sv.metric_rows())
        if sv.at_max is not None:
            out.timings.append(
                {
                    "load": self.name,
                    "batch_size": 1,
                    "unit_of_work": sv.unit,
                    "rate_per_s": sv.at_max.target_rate_per_s,
                    **sv.at_max.latency.to_dict(),
                }
            )
        summary = sv.to_dict()
        summary.pop("at_max", None)  # its latency summary (with raw samples) is already under timings
        out.extras["server_slo_search"] = summary
        return out
