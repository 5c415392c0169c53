"""The metrics catalogue: one entry per figure name, with unit, direction and whether the analysis derives it."""

from __future__ import annotations

from test_report_sample_run import make_run

from bench import cost, metrics, results
from bench.analysis.derive import AnalysisOptions, derive


def test_what_the_analysis_step_adds_is_exactly_what_the_catalogue_calls_derived():
    run = make_run()
    derived = derive(run, AnalysisOptions(cost.load_prices(), threads_used=2, hosted=None))
    added = {(m.metric, m.load) for d in derived.cells.values() for m in d.metrics}
    assert {name for name, _ in added} >= {metrics.USD_PER_1K, metrics.ONE_TIME_USD, metrics.QUALITY_RETAINED}
    assert all(metrics.is_derived(name, load) for name, load in added)
    assert all(c.metrics == d.metrics for c, d in zip(run.cells, make_run().cells))  # the run itself is unchanged


def test_names_directions_and_families():
    assert metrics.lookup("projected_usd_per_1k_recs@g5.xlarge").prefix
    assert metrics.suffix("projected_usd_per_1k_recs@g5.xlarge", metrics.PROJECTED_PREFIX) == "g5.xlarge"
    assert metrics.better("ndcg@20") == "higher" and metrics.better("latency_p99_ms") == "lower"
    assert metrics.better("no_such_figure") is None
    # a cell measures its own generation rate one request at a time; the offline one is derived from throughput
    assert metrics.is_derived("output_tokens_per_s", "offline")
    assert not metrics.is_derived("output_tokens_per_s", "single-stream")
    names = [m.name for m in metrics.CATALOGUE]
    assert len(names) == len(set(names)) and all(n == n.lower() for n in names)
    assert results.HOSTED_RECOMMENDER == "hosted-llm"  # the CSV's name for hosted lines, stable from schema 1
