"""The report's model-size section: shown only when the run varies model size or generates text."""

from __future__ import annotations

import re

import pytest
from test_llm_sizes import _run

from bench.report import write_report
from bench.results import SIZE_FIT_RECOMMENDER, CellResult, MetricRow, RunResult
from tests.support.analysed import analysed

pytest.importorskip("matplotlib")


def _explain_cell() -> CellResult:
    c = CellResult(
        cell="syn/random-8-1-1/llm-explain[gpt2-small]/fp32/cpu",
        dataset="syn",
        split="random-8-1-1",
        recommender="llm-explain",
        variant="fp32",
        device="cpu",
        label="cost-only",
        params={"model": "gpt2-small-cost-only"},
    )
    c.add("new_tokens_per_rec", 32, "")
    c.add("n_parameters", 124_439_808, "")
    c.metrics.append(MetricRow("throughput_users_per_s", 2.0, "users/s", load="offline", n=5, label="cost-only"))
    for p, v in (("p50", 210.0), ("p90", 260.0), ("p99", 300.0), ("mean", 220.0)):
        c.add(
            f"ttft_{p}_ms",
            v,
            "ms",
            load="single-stream",
            n=20,
            ci95_low=v * 0.9,
            ci95_high=v * 1.1,
            flag="n=20<1000: p99 unreliable" if p == "p99" else "",
        )
    c.add("time_per_output_token_p50_ms", 40.0, "ms", load="single-stream", n=20)
    c.add("output_tokens_per_s", 20.0, "tokens/s", load="single-stream", n=20)
    c.add("flops_per_rec", 5.2e10, "FLOP", label="estimated")
    return c


def test_a_size_run_gets_the_chart_the_fit_table_and_labelled_projections(tmp_path):
    run = _run()
    run.cells.append(_explain_cell())
    index = write_report(analysed(run), tmp_path)
    html = index.read_text()
    md = (tmp_path / "report.md").read_text()
    assert (tmp_path / "size_fit.png").stat().st_size > 10_000
    assert 'id="model-size"' in html and 'id="size_fit"' in html
    assert "projected 7B" in html and "label-projected" in html and "28 GB" in html
    assert "1.10" in html and "0.90" in html  # the fitted exponents of fp32 and onnx-int8
    assert "## Model size" in md and "(projected)" in md and "Explanation step" in md
    assert "TTFT p50 ms" in html and "210 [189–231]" in html
    # the size fits have their own section, not a row of dashes in the cell tables
    summary = html.split('id="summary"')[1].split('id="charts"')[0]
    assert SIZE_FIT_RECOMMENDER not in summary
    assert not re.search(r"^\| [^|]*size-fit", md, flags=re.M)


def test_a_run_without_sizes_or_a_decoder_has_no_size_section(tmp_path):
    run = RunResult(run_id="r", scenario={"name": "x"}, provenance={})
    c = CellResult(
        cell="syn/random-8-1-1/pop/none/cpu",
        dataset="syn",
        split="random-8-1-1",
        recommender="pop",
        variant="none",
        device="cpu",
    )
    c.metrics.append(MetricRow("throughput_users_per_s", 1000.0, "users/s", load="offline", n=5))
    run.cells.append(c)
    index = write_report(analysed(run), tmp_path)
    assert 'id="model-size"' not in index.read_text()
    assert not (tmp_path / "size_fit.png").exists()
    assert "## Model size" not in (tmp_path / "report.md").read_text()
