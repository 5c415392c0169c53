"""The report's decoder section: charts and tables from a run's decoder cells, absent without them."""

from __future__ import annotations

import pytest

from bench.recommenders.generative.archs import ARCHS
from bench.report import write_report
from bench.results import CellResult, MetricRow, RunResult
from tests.support.analysed import analysed

pytest.importorskip("matplotlib")


def _decoder(model: str, mode: str = "shared-prefix", n: int = 20, variant: str = "fp32") -> CellResult:
    c = CellResult(
        cell=f"d/s/llm-decoder-rank[{model} {mode} n={n}]/{variant}/cpu",
        dataset="d",
        split="s",
        recommender="llm-decoder-rank",
        variant=variant,
        device="cpu",
        label="cost-only",
        params={"model": model, "mode": mode, "n_candidates": n},
    )
    size = ARCHS[model].n_parameters()
    c.add("n_parameters", size, "")
    c.metrics.append(MetricRow("throughput_users_per_s", 2e8 / size, "users/s", load="offline", n=3, label="cost-only"))
    for p, v in (("p50", 400.0), ("p90", 450.0), ("p99", 480.0), ("mean", 410.0)):
        c.add(f"ttft_{p}_ms", v, "ms", load="single-stream", n=3, ci95_low=v * 0.9, ci95_high=v * 1.1)
        c.add(f"prefill_{p}_ms", v / 4, "ms", load="single-stream", n=3)
        c.add(f"suffix_pass_{p}_ms", v / 2, "ms", load="single-stream", n=3)
    c.add("prompt_tokens_per_rec", 320, "tokens", n=3)
    c.add("output_tokens_per_rec", 0, "tokens", n=3)
    for name, value in (
        ("api_calls_per_rec", n),
        ("api_input_tokens_per_rec", n * 125),
        ("api_prefix_tokens_per_call", 115),
        ("api_output_tokens_per_rec", n),
    ):
        c.add(name, value, "", n=3)
    c.add("kv_cache_bytes_per_rec", 7.9e6, "bytes", label="estimated")
    c.add("flops_per_rec", 2.0 * size * 320, "FLOP", label="estimated")
    c.add("execution_max_abs_diff", 2e-6, "logprob", n=n)
    c.add("naive_over_shared_prefix_time", 8.5, "ratio", load="pairs", n=2, flag="median request time")
    c.add("naive_over_shared_prefix_tokens", 7.4, "ratio", label="estimated")
    c.add("pointwise_request_p50_ms", 3400.0, "ms", load="pairs", n=2)
    c.add("shared_prefix_request_p50_ms", 400.0, "ms", load="pairs", n=2)
    return c


def _run() -> RunResult:
    run = RunResult(
        run_id="r", scenario={"name": "generative"}, provenance={"machine": {"memory_total_bytes": 24 * 2**30}}
    )
    run.cells += [_decoder(m) for m in ("smollm-135m", "smollm2-360m", "qwen2.5-0.5b", "qwen2.5-1.5b")]
    run.cells.append(_decoder("qwen2.5-0.5b", "listwise", 50))
    return run


def test_decoder_cells_get_their_section_with_four_charts_and_the_tables(tmp_path):
    from bench import cost

    index = write_report(analysed(_run(), prices=cost.default_prices_path()), tmp_path)
    html = index.read_text()
    assert 'id="decoders"' in html
    for name in ("decoder_size_fit", "decoder_phases", "decoder_naive_vs_shared", "decoder_local_vs_hosted"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
    assert "projected 7B" in html and "label-cost-only" in html
    assert "8.5x" in html and "2.0e-06" in html  # the comparison: ratio and agreement
    md = (tmp_path / "report.md").read_text()
    assert "## Decoder LLMs ranking candidates (cost-only)" in md and "gpt-4o-mini, same request" in md
    # the decoder fit is in the decoder section only, not in the encoders' model-size section
    assert 'id="model-size"' not in html


def test_a_run_without_decoder_cells_has_no_decoder_section(tmp_path):
    run = RunResult(run_id="r", scenario={"name": "x"}, provenance={})
    c = CellResult(cell="d/s/pop/none/cpu", dataset="d", split="s", recommender="pop", variant="none", device="cpu")
    c.metrics.append(MetricRow("throughput_users_per_s", 1000.0, "users/s", load="offline", n=5))
    run.cells.append(c)
    index = write_report(analysed(run), tmp_path)
    assert 'id="decoders"' not in index.read_text() and not (tmp_path / "decoder_phases.png").exists()


def test_findings_quote_the_comparison_the_hosted_price_and_the_exponent_from_the_run():
    from bench import cost
    from bench.analysis.decoders import add_hosted_same_prompt
    from bench.analysis.sizes import add_size_figures
    from bench.findings import in_brief

    run = _run()
    cost.add_costs(run, hosted=None)
    add_hosted_same_prompt(run)
    add_size_figures(run)
    lines = [line for line in in_brief(run) if line.startswith("`generative`")]
    assert any(
        "8.5x faster than one full prompt per candidate" in line
        and "agree to 2.0e-06" in line
        and "gpt-4o-mini list prices" in line
        for line in lines
    )
    # four Llama-style sizes whose cost was built proportional to parameters: exponent 1
    assert any(
        "grows as parameters^1.00" in line and "4 measured llama-style sizes" in line and "projected to 7B" in line
        for line in lines
    )


def test_a_run_stopped_early_says_so_and_names_the_cells_that_did_not_run():
    from bench.findings import _cut_short

    run = _run()
    assert _cut_short(run) == ""
    run.provenance["cut_short"] = {"why": "deadline", "cells_not_run": ["d/s/llm-decoder-rank[gpt2 x]/fp32/cpu"]}
    assert (
        _cut_short(run) == " **Stopped early** (deadline): 1 of the scenario's cells did not run: "
        "llm-decoder-rank[gpt2 x] fp32."
    )
