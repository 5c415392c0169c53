"""The terminal summary names every cell in full (tags in brackets are not taken for markup) and flags with '*'."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bench import console as console_mod
from bench.results import CellResult, RunResult


def test_summary_keeps_tags_and_stars_flagged_percentiles(monkeypatch, tmp_path: Path):
    cell = CellResult(
        cell="d/s/llm-rerank[n=50]/fp32/cpu",
        dataset="d",
        split="s",
        recommender="llm-rerank",
        variant="fp32",
        device="cpu",
    )
    cell.add("latency_p99_ms", 12.5, "ms", load="single-stream", n=40, flag="n=40<1000: p99 unreliable")
    cell.add("throughput_users_per_s", 0.764, "users/s", load="offline")
    other = CellResult(
        cell="d/s/ease/none/cpu", dataset="d", split="s", recommender="ease", variant="none", device="cpu"
    )
    run = RunResult("r1", {}, {}, cells=[cell, other])
    recorded = Console(record=True, width=200)
    monkeypatch.setattr(console_mod, "Console", lambda **kw: recorded)
    console_mod.print_summary(run, tmp_path)
    text = recorded.export_text()
    assert "llm-rerank[n=50]/fp32" in text
    assert "12.5*" in text and "0.764" in text
