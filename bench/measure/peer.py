"""Peer check: does the suite's timer agree with the plainest possible timing loop on the same callable?

Both run in one process on the same callable, interleaved in blocks (suite, plain, suite, plain, ...) so
that slow drift (thermal, other load) hits both alike. They agree when the bootstrap 95% intervals of
their medians overlap, or when the medians differ by less than `rel_tol` (default 2%: below anything a
recbench comparison claims). The verdict and both medians are returned as plain data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.measure import _checks
from bench.measure.stats import summarize
from bench.measure.timer import Sync, measure_repeated, no_sync


@dataclass
class PeerCheck:
    n: int
    suite_median_ms: float
    suite_ci95_ms: tuple[float, float]
    plain_median_ms: float
    plain_ci95_ms: tuple[float, float]
    ratio: float  # suite / plain
    intervals_overlap: bool
    agree: bool
    rel_tol: float
    method: str = (
        "suite: bench.measure.timer.measure_repeated; plain: perf_counter() around each call in a "
        "for loop; interleaved blocks; agree = overlapping 95% bootstrap intervals of the medians "
        "or |ratio - 1| <= rel_tol"
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def peer_check(
    fn: Callable[[], Any],
    n: int = 200,
    *,
    blocks: int = 4,
    warmup: int = 5,
    rel_tol: float = 0.02,
    sync: Sync = no_sync,
    seed: int = 0,
) -> PeerCheck:
    """Time fn() n times with the suite's timer and n times with a plain perf_counter loop."""
    blocks = _checks.count("blocks", blocks, 1)
    n = _checks.count("n", n, blocks, f"time at least one call per block ({blocks} blocks)")
    warmup = _checks.count("warmup", warmup, 0)
    rel_tol = _checks.non_negative("rel_tol", rel_tol)
    for _ in range(warmup):
        fn()
    per_block = [n // blocks + (1 if i < n % blocks else 0) for i in range(blocks)]
    suite_ns: list[np.ndarray] = []
    plain_s: list[float] = []
    perf_counter = time.perf_counter
    for size in per_block:
        rep = measure_repeated(
            fn,
            min_count=size,
            max_count=size,
            min_duration_s=0.0,
            max_duration_s=3600.0,
            warmup_count=0,
            warmup_s=0.0,
            cold=False,
            sync=sync,
        )
        suite_ns.append(rep.samples_ns)
        for _ in range(size):  # the plain loop, deliberately naive
            sync()
            t0 = perf_counter()
            fn()
            sync()
            plain_s.append(perf_counter() - t0)
    suite = summarize(np.concatenate(suite_ns), unit="ns", percentiles=(50.0,), seed=seed, keep_samples=False)
    plain = summarize(np.asarray(plain_s), unit="s", percentiles=(50.0,), seed=seed + 1, keep_samples=False)
    s50, p50 = suite.p(50), plain.p(50)
    overlap = s50.ci95_low_ms <= p50.ci95_high_ms and p50.ci95_low_ms <= s50.ci95_high_ms
    ratio = s50.value_ms / p50.value_ms if p50.value_ms > 0 else float("nan")
    return PeerCheck(
        n=n,
        suite_median_ms=s50.value_ms,
        suite_ci95_ms=(s50.ci95_low_ms, s50.ci95_high_ms),
        plain_median_ms=p50.value_ms,
        plain_ci95_ms=(p50.ci95_low_ms, p50.ci95_high_ms),
        ratio=ratio,
        intervals_overlap=bool(overlap),
        agree=bool(overlap or abs(ratio - 1) <= rel_tol),
        rel_tol=rel_tol,
    )
