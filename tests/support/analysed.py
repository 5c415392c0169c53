"""A test run as `recbench run` leaves it: its derived section computed by the analysis step."""

from __future__ import annotations

from typing import Any

from bench import cost
from bench.analysis.derive import AnalysisOptions, derive
from bench.results import RunResult


def analysed(run: RunResult, **options: Any) -> RunResult:
    """`run` with `run.derived` from bench.analysis.derive (default prices; no hosted-API prompts unless given)."""
    options.setdefault("hosted", None)
    run.derived = derive(run, AnalysisOptions(prices=cost.load_prices(options.pop("prices", None)), **options))
    return run
