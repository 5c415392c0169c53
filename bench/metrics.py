"""The metrics catalogue: every figure name recbench writes, its unit, which direction is better, and a label.

Names are stable and lower-case (results.csv is scripted against): add entries, never rename them. An entry
whose `prefix` is true names a family (`projected_usd_per_1k_recs@` + an instance). `derived` marks the figures
the analysis step (bench.analysis) computes from a run's cells; a cell never writes them, and the results file
keeps them in its `derived` section. Readers (compare, report, cost) take names and directions from here instead
of repeating literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bench.measure.load_registry import OFFLINE

Better = Literal["higher", "lower", "none"]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: Better
    label: str
    #: computed by the analysis step after the cells ran (bench.analysis), never measured by a cell
    derived: bool = False
    #: `name` is a prefix: the figure's full name is name + a suffix (an instance, a hosted entry, a metric)
    prefix: bool = False
    #: derived only at these loads (a cell measures the same name at other loads); None = at every load
    derived_loads: tuple[str, ...] | None = None


# ---------------------------------------------------------------- names other modules use
NDCG_10 = "ndcg@10"
RECALL_10 = "recall@10"
THROUGHPUT = "throughput_users_per_s"
MAX_QPS_AT_SLO = "max_qps_at_slo"
FOOTPRINT = "footprint_bytes"
PEAK_RSS = "peak_rss_bytes"
FLOPS_PER_REC = "flops_per_rec"
BYTES_PER_REC = "bytes_per_rec"
BYTES_SHARED_PER_CALL = "bytes_shared_per_call"
USD_PER_1K = "usd_per_1k_recs"
PROJECTED_PREFIX = "projected_usd_per_1k_recs@"
ONE_TIME_USD = "one_time_usd"
ONE_TIME_PER_1K = "one_time_usd_per_1k_recs"
ENERGY_PER_1K = "energy_usd_per_1k_recs"
HOSTED_USD = "hosted_usd_per_1k_recs"
HOSTED_INPUT = "hosted_input_tokens_per_rec"
HOSTED_CACHED = "hosted_cached_input_tokens_per_rec"
HOSTED_OUTPUT = "hosted_output_tokens_per_rec"
HOSTED_SAME_PROMPT_PREFIX = "hosted_same_prompt_usd_per_1k_recs@"
QUALITY_RETAINED = "quality_retained_vs_fp32"
OUTPUT_TOKENS_PER_S = "output_tokens_per_s"
SIZE_FIT_EXPONENT_PREFIX = "size_fit_exponent@"
SIZE_FIT_R2_PREFIX = "size_fit_r2@"
SIZE_PROJECTED_PREFIX = "size_projected_"

_QUALITY_RE = re.compile(r"^(ndcg|recall|hit|mrr|precision|map|coverage)@\d+$")

CATALOGUE: tuple[Metric, ...] = (
    # quality (measured by the cell); families by K are matched by _QUALITY_RE
    Metric("rmse", "", "lower", "rating RMSE"),
    Metric("mae", "", "lower", "rating MAE"),
    # speed and memory
    Metric("fit_s", "s", "lower", "fit wall time"),
    Metric(THROUGHPUT, "users/s", "higher", "best offline throughput"),
    Metric(MAX_QPS_AT_SLO, "users/s", "higher", "highest Poisson rate meeting the p99 SLO"),
    Metric("latency_p50_ms", "ms", "lower", "p50 latency"),
    Metric("latency_p90_ms", "ms", "lower", "p90 latency"),
    Metric("latency_p99_ms", "ms", "lower", "p99 latency"),
    Metric(PEAK_RSS, "bytes", "lower", "peak RSS above the cell's baseline"),
    Metric(FOOTPRINT, "bytes", "lower", "static footprint"),
    Metric(FLOPS_PER_REC, "FLOP", "lower", "analytic FLOPs per recommendation"),
    Metric("flops_per_user", "FLOP", "lower", "analytic FLOPs per user"),
    Metric("flops_per_request", "FLOP", "lower", "analytic FLOPs per request"),
    Metric(BYTES_PER_REC, "bytes", "lower", "analytic bytes moved per recommendation"),
    Metric(
        BYTES_SHARED_PER_CALL,
        "bytes",
        "lower",
        "of bytes_per_rec, the model state one batched call reads once for all its requests (analytic)",
    ),
    Metric("bytes_per_user", "bytes", "lower", "analytic bytes moved per user"),
    Metric("bytes_per_request", "bytes", "lower", "analytic bytes moved per request"),
    # cost (bench.cost, through bench.analysis)
    Metric(USD_PER_1K, "usd", "lower", "US$ per 1,000 recommendations (measured)", derived=True),
    Metric(
        PROJECTED_PREFIX,
        "usd",
        "lower",
        "US$ per 1,000 recommendations on other hardware (projected)",
        derived=True,
        prefix=True,
    ),
    Metric(ONE_TIME_USD, "usd", "lower", "one-time cost (fit, preparation)", derived=True),
    Metric(ONE_TIME_PER_1K, "usd", "lower", "one-time cost amortised per 1,000 recommendations", derived=True),
    Metric(ENERGY_PER_1K, "usd", "lower", "energy cost per 1,000 recommendations", derived=True),
    Metric(HOSTED_USD, "usd", "lower", "hosted-API US$ per 1,000 recommendations (estimated)", derived=True),
    Metric(HOSTED_INPUT, "tokens", "lower", "hosted-API input tokens per recommendation", derived=True),
    Metric(HOSTED_CACHED, "tokens", "lower", "hosted-API cached input tokens per recommendation", derived=True),
    Metric(HOSTED_OUTPUT, "tokens", "lower", "hosted-API output tokens per recommendation", derived=True),
    Metric(
        HOSTED_SAME_PROMPT_PREFIX,
        "usd",
        "lower",
        "a decoder cell's own request at a hosted API's prices, per 1,000 recommendations",
        derived=True,
        prefix=True,
    ),
    # utilisation and roofline (bench.analysis.cells)
    Metric("achieved_gflops", "GFLOP/s", "higher", "achieved GFLOP/s", derived=True),
    Metric("utilisation_pct_of_peak", "%", "higher", "percent of the measured peak", derived=True),
    Metric("arithmetic_intensity_flop_per_byte", "FLOP/byte", "none", "arithmetic intensity", derived=True),
    Metric("achieved_gbs", "GB/s", "higher", "achieved memory bandwidth", derived=True),
    Metric("pct_of_bound", "%", "higher", "percent of the roofline bound", derived=True),
    # harness overhead and the quality gate
    Metric("harness_overhead_per_call_ms", "ms", "lower", "harness cost per call", derived=True),
    Metric("harness_overhead_pct", "%", "lower", "harness share of a cell's single-user p50", derived=True),
    Metric(QUALITY_RETAINED, "ratio", "higher", "NDCG@10 retained against fp32", derived=True),
    # generation rate: measured single-stream by a cell, derived for the offline load
    Metric(
        OUTPUT_TOKENS_PER_S, "tokens/s", "higher", "generated tokens per second", derived=True, derived_loads=(OFFLINE,)
    ),
    # size fits (bench.sizes)
    Metric(SIZE_FIT_EXPONENT_PREFIX, "", "none", "power-law exponent against parameters", derived=True, prefix=True),
    Metric(SIZE_FIT_R2_PREFIX, "", "higher", "R^2 of the log-log size fit", derived=True, prefix=True),
    Metric(SIZE_PROJECTED_PREFIX, "", "none", "a figure projected to a larger model", derived=True, prefix=True),
    # online replay (bench.online)
    Metric("update_usd", "usd", "lower", "cost of one update", derived=True),
    Metric("update_usd_cumulative", "usd", "lower", "initial fit plus every update so far", derived=True),
    Metric("update_usd_total", "usd", "lower", "cost of every update", derived=True),
    Metric("replay_usd_total", "usd", "lower", "initial fit plus every update", derived=True),
    Metric("update_usd_per_day", "usd", "lower", "update cost a day at the stated event rate", derived=True),
    Metric("ndcg@10_diff_vs_full_update", "", "higher", "NDCG@10 minus the full-update strategy's", derived=True),
    Metric("recall@10_diff_vs_full_update", "", "higher", "Recall@10 minus the full-update strategy's", derived=True),
    Metric("ndcg@10_diff_vs_full_update_early", "", "higher", "the same, first half of the steps", derived=True),
    Metric("ndcg@10_diff_vs_full_update_late", "", "higher", "the same, second half of the steps", derived=True),
    Metric("update_usd_ratio_vs_full_update", "ratio", "lower", "update cost over the full update's", derived=True),
    Metric(
        "fresh_recall@10_diff_vs_best_cf",
        "",
        "higher",
        "recall on fresh items minus the best classic cell's",
        derived=True,
    ),
)

_EXACT = {m.name: m for m in CATALOGUE if not m.prefix}
_PREFIXES = tuple(m for m in CATALOGUE if m.prefix)


def lookup(name: str) -> Metric | None:
    """The catalogue entry of a figure name (an exact entry, a prefix family, or a quality metric @K)."""
    if name in _EXACT:
        return _EXACT[name]
    for m in _PREFIXES:
        if name.startswith(m.name):
            return m
    if _QUALITY_RE.match(name):
        return Metric(name, "", "higher", name.replace("@", " at "))
    return None


def is_quality(name: str) -> bool:
    """A ranking-quality figure at some K (ndcg@10, recall@20, ...): higher is better."""
    return bool(_QUALITY_RE.match(name))


def is_derived(name: str, load: str = "") -> bool:
    """Whether a row of this name (and load) is computed by the analysis step rather than measured by a cell."""
    m = lookup(name)
    if m is None or not m.derived:
        return False
    return m.derived_loads is None or load in m.derived_loads


def suffix(name: str, prefix: str) -> str | None:
    """The part of a family member's name after its prefix (an instance, a hosted entry); None if not a member."""
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


def better(name: str) -> Better | None:
    """ "higher", "lower" or "none" (no direction); None for a name the catalogue does not know."""
    m = lookup(name)
    return m.better if m is not None else None
