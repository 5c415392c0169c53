"""Timing statistics: percentiles with seeded bootstrap 95% intervals, their sample count, and trust flags.

Percentile-trust rule (documented, used everywhere a percentile is shown):
    the p-th percentile is trusted only when at least MIN_TAIL_SAMPLES (10) samples lie beyond it,
    i.e. n * (1 - p) >= 10  ->  p50 needs n >= 20, p90 >= 100, p95 >= 200, p99 >= 1000.
Why: a tail percentile is decided by the few samples above it. With fewer than ~10 of them the estimate is
one or two order statistics (for n < 100 the "p99" is simply the maximum), its bootstrap interval collapses
onto the sample maximum and under-covers, and a single hiccup moves it. Ten tail samples is the usual floor
for a stable empirical quantile (it is the same "10 events" heuristic used for rare-event estimates), and
it reproduces MLPerf LoadGen's practice of demanding a minimum query count for tail-latency claims.
Flagged figures are still reported, never hidden.

Noise flag: a coefficient of variation above NOISY_CV (0.25) marks the distribution as noisy: two runs
that differ by less than the spread cannot be told apart without the intervals.

Bootstrap: percentile bootstrap with `n_resamples` (default 1000) resamples from a seeded numpy Generator,
vectorised (see `bootstrap` for how percentiles are resampled exactly at O(n_resamples) cost).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.errors import BenchError, ConfigError
from bench.measure.row import MetricRow

MIN_TAIL_SAMPLES = 10
NOISY_CV = 0.25
DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
N_RESAMPLES = 1000
#: the mean's bootstrap works on (resamples x n) blocks of at most this many elements (~32 MB of float64)
_CHUNK_ELEMENTS = 1 << 22
#: above this many samples the mean's interval is the normal one (resampling would cost n_resamples x n)
_MEAN_RESAMPLE_MAX_N = 10_000
_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def min_samples_for(percentile: float, min_tail: int = MIN_TAIL_SAMPLES) -> int:
    """Smallest n for which `percentile` (e.g. 99) has at least `min_tail` samples beyond it."""
    tail = 1.0 - percentile / 100.0
    # round before ceil: 10 / (1 - 0.99) is 1000.0000000000009 in floating point
    return int(math.ceil(round(min_tail / tail, 6)))


def percentile_name(percentile: float) -> str:
    """50 -> 'p50', 99.9 -> 'p99.9'."""
    return "p" + (f"{percentile:g}")


@dataclass
class Percentile:
    """One percentile estimate with its 95% bootstrap interval and trust flag."""

    percentile: float
    value_ms: float
    ci95_low_ms: float
    ci95_high_ms: float
    n: int
    min_n: int
    flag: str = ""

    @property
    def trusted(self) -> bool:
        return not self.flag


@dataclass
class TimingSummary:
    """A latency distribution in milliseconds: point estimates, intervals, flags and the raw samples."""

    n: int
    mean_ms: float
    mean_ci95_ms: tuple[float, float]
    std_ms: float
    cv: float
    min_ms: float
    max_ms: float
    percentiles: dict[str, Percentile]
    flags: list[str] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)
    cold_first_ms: float | None = None
    name: str = ""
    n_resamples: int = N_RESAMPLES
    seed: int = 0

    # convenient, stable accessors --------------------------------------------------
    def p(self, percentile: float) -> Percentile:
        key = percentile_name(percentile)
        if key not in self.percentiles:
            raise KeyError(f"{key} was not computed; pass percentiles=(..., {percentile:g}) to summarize()")
        return self.percentiles[key]

    @property
    def p50_ms(self) -> float:
        return self.p(50).value_ms

    @property
    def p90_ms(self) -> float:
        return self.p(90).value_ms

    @property
    def p99_ms(self) -> float:
        return self.p(99).value_ms

    @property
    def noisy(self) -> bool:
        return any(f.startswith("noisy") for f in self.flags)

    def to_dict(self, include_samples: bool = True) -> dict[str, Any]:
        """Plain JSON-ready data. Top-level `p50_ms`... for quick readers; details under `percentiles`."""
        out: dict[str, Any] = {"name": self.name, "unit": "ms", "n": self.n}
        for key, pct in self.percentiles.items():
            out[f"{key}_ms"] = _finite(pct.value_ms)
        out.update(
            mean_ms=_finite(self.mean_ms),
            mean_ci95_ms=[_finite(v) for v in self.mean_ci95_ms],
            std_ms=_finite(self.std_ms),
            cv=_finite(self.cv),
            min_ms=_finite(self.min_ms),
            max_ms=_finite(self.max_ms),
            cold_first_ms=_finite(self.cold_first_ms),
            percentiles={
                k: {kk: _finite(vv) if isinstance(vv, float) else vv for kk, vv in asdict(v).items()}
                for k, v in self.percentiles.items()
            },
            flags=list(self.flags),
            bootstrap={"method": "percentile", "n_resamples": self.n_resamples, "seed": self.seed},
        )
        if include_samples:
            out["samples_ms"] = list(self.samples_ms)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimingSummary:
        """Inverse of to_dict (JSON nulls come back as NaN)."""

        def num(v: Any) -> float:
            return float("nan") if v is None else float(v)

        try:
            pcts = {
                k: Percentile(
                    percentile=num(v["percentile"]),
                    value_ms=num(v["value_ms"]),
                    ci95_low_ms=num(v["ci95_low_ms"]),
                    ci95_high_ms=num(v["ci95_high_ms"]),
                    n=int(v["n"]),
                    min_n=int(v["min_n"]),
                    flag=v.get("flag") or "",
                )
                for k, v in data["percentiles"].items()
            }
            boot = data.get("bootstrap", {})
            return cls(
                n=int(data["n"]),
                mean_ms=num(data["mean_ms"]),
                mean_ci95_ms=tuple(num(v) for v in data["mean_ci95_ms"]),  # type: ignore[arg-type]
                std_ms=num(data["std_ms"]),
                cv=num(data["cv"]),
                min_ms=num(data["min_ms"]),
                max_ms=num(data["max_ms"]),
                percentiles=pcts,
                flags=list(data.get("flags", [])),
                samples_ms=list(data.get("samples_ms", [])),
                cold_first_ms=None if data.get("cold_first_ms") is None else float(data["cold_first_ms"]),
                name=data.get("name", ""),
                n_resamples=int(boot.get("n_resamples", N_RESAMPLES)),
                seed=int(boot.get("seed", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BenchError(
                f"malformed timing summary ({exc.__class__.__name__}: {exc}); "
                "re-run `recbench run` to produce a valid results file"
            ) from None

    def metric_rows(
        self,
        prefix: str = "latency",
        unit: str = "ms",
        load: str = "",
        include: Sequence[str] = ("p50", "p90", "p95", "p99", "mean"),
    ) -> list[MetricRow]:
        return metric_rows(self, prefix=prefix, unit=unit, load=load, include=include)


def _finite(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def to_ms(samples: Iterable[float] | np.ndarray, unit: str) -> np.ndarray:
    if unit not in _TO_MS:
        raise ConfigError(f"unknown time unit {unit!r}; use one of {', '.join(_TO_MS)}")
    return np.asarray(samples, dtype=np.float64) * _TO_MS[unit]


def bootstrap(
    samples: np.ndarray, percentiles: Sequence[float], n_resamples: int = N_RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap 95% intervals for the given percentiles and for the mean.

    Returns (pct_ci, mean_ci): pct_ci has shape (len(percentiles), 2), mean_ci shape (2,).

    Percentiles: each resample's percentile is drawn exactly, without materialising the resample. A
    resample is x_sorted[floor(n * U_i)] for n iid uniforms, so its j-th order statistic is
    x_sorted[floor(n * U_(j))], where U_(j) ~ Beta(j, n + 1 - j), and the next one is
    U_(j+1) = U_(j) + (1 - U_(j)) * Beta(1, n - j). np.percentile's linear rule needs exactly those two
    order statistics, so this has the same distribution as resampling n values and calling np.percentile,
    at O(n_resamples) cost instead of O(n_resamples * n).
    Mean: ordinary resampling (vectorised, in chunks) up to _MEAN_RESAMPLE_MAX_N samples; beyond that the
    normal interval mean +- 1.96 * sd / sqrt(n), which the bootstrap matches closely at such n.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = x.size
    rng = np.random.default_rng(seed)
    pct_ci = np.empty((len(percentiles), 2))
    for row, pc in enumerate(percentiles):  # a handful of percentiles, each fully vectorised
        h = (n - 1) * pc / 100.0
        k = int(math.floor(h))  # 0-based order statistic below the percentile
        frac = h - k
        u_k = rng.beta(k + 1, n - k, size=n_resamples)
        lower = x[np.minimum((n * u_k).astype(np.int64), n - 1)]
        if frac > 0 and k + 1 < n:
            u_next = u_k + (1.0 - u_k) * rng.beta(1, n - k - 1, size=n_resamples)
            upper = x[np.minimum((n * u_next).astype(np.int64), n - 1)]
            stat = lower + frac * (upper - lower)
        else:
            stat = lower
        pct_ci[row] = np.percentile(stat, [2.5, 97.5])
    if n <= _MEAN_RESAMPLE_MAX_N:
        means = np.empty(n_resamples)
        rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
        for start in range(0, n_resamples, rows):  # chunks of resamples, never a loop over samples
            b = min(rows, n_resamples - start)
            means[start : start + b] = x[rng.integers(0, n, size=(b, n), dtype=np.int64)].mean(axis=1)
        mean_ci = np.percentile(means, [2.5, 97.5])
    else:
        half = 1.959964 * x.std(ddof=1) / math.sqrt(n)
        mean_ci = np.array([x.mean() - half, x.mean() + half])
    return pct_ci, mean_ci


def summarize(
    samples: Iterable[float] | np.ndarray,
    *,
    unit: str,
    name: str = "",
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    min_tail: int = MIN_TAIL_SAMPLES,
    noisy_cv: float | None = NOISY_CV,
    cold_first: float | None = None,
    keep_samples: bool = True,
) -> TimingSummary:
    """Summarise timing samples given in `unit` ("ns", "us", "ms" or "s"); everything returned is in ms.

    `cold_first` (same unit) is the first, cold call, reported apart and never mixed into the samples.
    Raw samples are kept in ms rounded to 1 ns (the clock's resolution: nothing lost, nothing invented).
    """
    x = to_ms(samples, unit).ravel()
    if x.size == 0:
        raise BenchError(
            f"no timing samples to summarise{f' for {name}' if name else ''}; "
            "raise min_count / min_duration_s so at least one call is timed"
        )
    if not np.all(np.isfinite(x)):
        raise BenchError(
            f"timing samples{f' for {name}' if name else ''} contain NaN or infinity; "
            "check the clock or the values passed to summarize()"
        )
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}; use about 1000")
    for pc in percentiles:
        if not 0 < pc < 100:
            raise ConfigError(f"percentile {pc!r} is outside (0, 100); pass values such as 50, 90, 99")
    n = int(x.size)
    pcts = [float(p) for p in percentiles]
    values = np.percentile(x, pcts)
    pct_ci, mean_ci = bootstrap(x, pcts, n_resamples=n_resamples, seed=seed)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    cv = std / mean if n > 1 and mean > 0 else float("nan")

    flags: list[str] = []
    out: dict[str, Percentile] = {}
    for pc, value, (lo, hi) in zip(pcts, values, pct_ci):
        need = min_samples_for(pc, min_tail)
        key = percentile_name(pc)
        flag = "" if n >= need else f"n={n}<{need}: {key} unreliable (fewer than {min_tail} samples above it)"
        if flag:
            flags.append(flag)
        out[key] = Percentile(
            percentile=pc,
            value_ms=float(value),
            ci95_low_ms=float(lo),
            ci95_high_ms=float(hi),
            n=n,
            min_n=need,
            flag=flag,
        )
    if noisy_cv is not None and math.isfinite(cv) and cv > noisy_cv:
        flags.append(f"noisy: cv={cv:.2f}>{noisy_cv:g}")
    cold_ms = None if cold_first is None else float(to_ms([cold_first], unit)[0])
    return TimingSummary(
        n=n,
        mean_ms=mean,
        mean_ci95_ms=(float(mean_ci[0]), float(mean_ci[1])),
        std_ms=std,
        cv=cv,
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        percentiles=out,
        flags=flags,
        samples_ms=np.round(x, 6).tolist() if keep_samples else [],
        cold_first_ms=cold_ms,
        name=name,
        n_resamples=n_resamples,
        seed=seed,
    )


_ROW_SCALE = {"ms": 1.0, "s": 1e-3, "us": 1e3, "ns": 1e6}


def metric_rows(
    summary: TimingSummary,
    *,
    prefix: str = "latency",
    unit: str = "ms",
    load: str = "",
    include: Sequence[str] = ("p50", "p90", "p95", "p99", "mean"),
) -> list[MetricRow]:
    """Result rows `{prefix}_p50_{unit}` ... `{prefix}_mean_{unit}` with n, 95% interval and flag.

    A percentile row carries its own trust flag; the noise flag (cv too high) is appended to every row,
    since it concerns the whole distribution a reader might quote from any single row.
    """
    if unit not in _ROW_SCALE:
        raise ConfigError(f"unknown unit {unit!r} for metric rows; use one of {', '.join(_ROW_SCALE)}")
    scale = _ROW_SCALE[unit]
    noise = [f for f in summary.flags if f.startswith("noisy")]
    rows: list[MetricRow] = []
    for key in include:
        if key == "mean":
            value, lo, hi, own = summary.mean_ms, *summary.mean_ci95_ms, ""
        elif key in summary.percentiles:
            pct = summary.percentiles[key]
            value, lo, hi, own = pct.value_ms, pct.ci95_low_ms, pct.ci95_high_ms, pct.flag
        else:
            raise ConfigError(
                f"metric row {key!r} not in the summary (has {', '.join(summary.percentiles)}, mean); "
                "compute it with summarize(percentiles=...)"
            )
        flag = "; ".join(f for f in [own, *noise] if f)
        rows.append(
            MetricRow(
                metric=f"{prefix}_{key}_{unit}",
                value=value * scale,
                unit=unit,
                load=load,
                n=summary.n,
                ci95_low=lo * scale,
                ci95_high=hi * scale,
                flag=flag,
            )
        )
    if summary.cold_first_ms is not None:
        rows.append(
            MetricRow(
                metric=f"{prefix}_cold_first_{unit}", value=summary.cold_first_ms * scale, unit=unit, load=load, n=1
            )
        )  # one observation, a fact rather than an estimate: n=1 says so
    return rows
