"""The HTML/PNG/Markdown report: self-contained, every chart a valid embedded PNG, figures quoted from the run."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image
from test_report_sample_run import make_run, tiny_split

from bench import cost
from bench.report import charts, write_report
from bench.report.headlines import headlines
from bench.report.view import build_views, pct, ratio, sig, usd
from bench.results import RunResult
from tests.support.analysed import analysed


@pytest.fixture(scope="module")
def workload():
    return cost.hosted_workload(tiny_split(), n_prompts=8, history_len=5, n_candidates=12)


@pytest.fixture(scope="module")
def report(tmp_path_factory, workload):
    out = tmp_path_factory.mktemp("report")
    run = make_run()
    cost.add_costs(run, None, None, 2, hosted=[workload])  # what the run's analysis step leaves
    index = write_report(run, out)
    return run, index, index.read_text(encoding="utf-8")


IMG = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", re.S)


def test_every_img_is_an_embedded_png_that_decodes(report):
    _, index, text = report
    sources = IMG.findall(text)
    assert len(sources) == 6  # all six charts have data in the sample run
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(raw)) as im:
            im.verify()
        with Image.open(io.BytesIO(raw)) as im:
            assert im.width >= 600 and im.height >= 250
    for name in ("quality_vs_cost", "throughput", "latency_cdf", "memory", "cost_by_instance", "variants"):
        assert (index.parent / f"{name}.png").is_file()


def test_html_needs_no_network(report):
    _, _, text = report
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert "<style>" in text and "font:" in text  # the CSS is inline


def test_headline_sentences_quote_the_runs_figures(report):
    run, _, text = report
    ease = run.cell("ml-100k/random-8-1-1/ease/none/cpu")
    tt8 = run.cell("ml-100k/random-8-1-1/llm-two-tower/onnx-int8/cpu")
    heads = headlines(build_views(run))
    sentence = next(h for h in heads if h.kind == "llm-vs-classic" and h.text.startswith("llm-two-tower onnx-int8"))
    tt8_usd = tt8.metric("usd_per_1k_recs", load="offline").value
    ease_usd = ease.metric("usd_per_1k_recs", load="offline").value
    share = tt8.metric("ndcg@10").value / ease.metric("ndcg@10").value
    assert sentence.figures["cost_ratio"] == pytest.approx(tt8_usd / ease_usd)
    for quoted in (
        ratio(tt8_usd / ease_usd),
        usd(tt8_usd),
        usd(ease_usd),
        pct(share),
        sig(tt8.metric("ndcg@10").value),
        sig(ease.metric("ndcg@10").value),
    ):
        assert quoted in sentence.text
    assert "costs" in sentence.text and "ease" in sentence.text and "NDCG@10" in sentence.text
    assert sentence.text in text.replace("&#x27;", "'")


def test_variant_and_hosted_headlines(report):
    run, _, _ = report
    heads = headlines(build_views(run))
    variant = next(h for h in heads if h.kind == "variant" and "onnx-int8" in h.text)
    assert variant.figures["speedup"] == pytest.approx(260.0 / 150.0)
    assert ratio(260.0 / 150.0) in variant.text and "99%" in variant.text
    gated = next(h for h in heads if h.kind == "variant" and h.text.startswith("llm-two-tower int8"))
    assert "quality gate" in gated.text
    hosted = [h for h in heads if h.kind == "hosted"]
    assert len(hosted) == 3
    mini = next(h for h in run.derived.hosted if h.entry == "gpt-4o-mini")
    assert usd(mini.metric("hosted_usd_per_1k_recs").value) in next(h.text for h in hosted if "gpt-4o-mini" in h.text)


def test_quality_chart_shows_every_cell_with_quality_and_explains_exclusions(tmp_path):
    run = make_run()
    cost.add_costs(run, None, None, 2, hosted=None)
    views = build_views(run)
    chart = charts.quality_vs_cost(views, tmp_path, "test")
    with_quality = {v.name for v in views if v.quality is not None and not v.cost_only and v.cell.status != "failed"}
    assert set(chart.shown) == with_quality  # ok cells and the gated one (at the cost it would have had)
    assert "llm-pairwise fp32" in chart.note and "cost-only" in chart.note


def test_failed_gated_flagged_and_cost_only_are_shown_as_such(report):
    _, _, text = report
    assert "MemoryError: cross-encoder batch of 4096 pairs did not fit" in text
    assert 'class="status-failed"' in text and 'class="status-gated"' in text
    assert "below the 95% quality gate" in text
    assert "p99*" in text and "n&lt;1000: p99 unreliable" in text
    assert "not reported" in text and "label-cost-only" in text


def test_prices_and_provenance_are_printed_with_source_and_date(report):
    _, _, text = report
    assert "AWS price list, us-east-1 on-demand, Linux, 2026-08" in text  # the mapped instance
    assert "OpenAI API pricing page, 2024-07" in text
    assert "3f2a9c1d" in text and "0f3c9a" in text and "Intel(R) Xeon(R) Platinum 8488C" in text
    assert "per-vCPU share of c7i.xlarge" in text
    assert "o200k_base" in text or "WordPiece" in text  # the tokenizer behind the hosted counts


def test_markdown_summary_carries_headlines_and_flags(report):
    run, index, _ = report
    md = (index.parent / "report.md").read_text()
    assert md.startswith(f"# recbench report: {run.run_id}")
    for h in headlines(build_views(run)):
        assert f"- {h.text}" in md
    assert "\\*1: n&lt;1000: p99 unreliable" in md  # escaped: text from a results file is never raw HTML
    assert "| llm-rerank fp32 | failed: MemoryError" in md


def test_classic_only_run_skips_the_variant_chart_with_a_note(tmp_path):
    full = make_run()
    run = RunResult(
        run_id="classic",
        scenario={},
        provenance={},
        cells=[c for c in full.cells if c.variant == "none"],
        machine=full.machine,
    )
    index = write_report(analysed(run, threads_used=2), tmp_path)
    text = index.read_text()
    assert "No variant with an fp32 reference in this run" in text
    assert not (tmp_path / "variants.png").exists()
    assert len(IMG.findall(text)) == 5


def test_empty_run_still_renders_with_notes(tmp_path):
    run = RunResult(run_id="empty", scenario={}, provenance={}, cells=[])
    text = write_report(run, tmp_path).read_text()
    assert "chart skipped" in text and not IMG.findall(text)


def test_report_reprices_with_another_instance(tmp_path, workload):
    from bench import results
    from bench.analysis.derive import AnalysisOptions, derive

    run = make_run()
    run.derived = derive(
        run, AnalysisOptions(cost.load_prices(), threads_used=2, quality_gate=0.95, hosted=[workload])
    )  # as `recbench run` leaves it
    results.write(run, tmp_path / "a")
    from bench.cli import main

    assert main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "b"), "--instance", "g5.xlarge"]) == 0
    assert "g5.xlarge (--instance)" in (tmp_path / "b" / "index.html").read_text()
    md = (tmp_path / "b" / "report.md").read_text()
    assert usd(1.006 / (3600 * 8200.0) * 1000) in md  # ease's best offline throughput at g5.xlarge's price
    stored = results.load(tmp_path / "a")
    assert stored.derived.pricing is not None and stored.derived.pricing.instance is None  # the file is not changed
    assert len(stored.derived.hosted) == 3  # token counts carried over, not duplicated


def test_report_command_exit_codes(tmp_path, capsys):
    from bench import results
    from bench.cli import main

    run = make_run()
    cost.add_costs(run, None, None, 2, hosted=None)
    results.write(run, tmp_path / "run")
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.html").is_file()
    (tmp_path / "bad.json").write_text('{"schema_version": 1, "run_id": "x", "cel')
    capsys.readouterr()
    assert main(["report", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "error:" in err and "not valid JSON" in err and "\n" not in err
    assert main(["report", str(tmp_path / "run"), "--prices", str(tmp_path / "missing.toml")]) == 2


def test_headline_against_a_classic_reference_scoring_zero_states_it_instead_of_a_nan_share():
    """On cold items CF scores 0: the sentence says so rather than printing 'nan% of its NDCG@10'."""
    run = make_run()
    cost.add_costs(run, None, None, 2, hosted=None)
    for c in run.cells:
        if c.recommender in ("ease", "pop", "itemknn"):
            next(m for m in c.metrics if m.metric == "ndcg@10").value = 0.0
    heads = [h for h in headlines(build_views(run)) if h.kind == "llm-vs-classic"]
    assert heads and all("nan" not in h.text for h in heads)
    assert all("where ease scores 0" in h.text for h in heads)


def test_headlines_never_compare_cells_across_datasets():
    """A run over two catalogues (as scaling is): each language-model cell is set against the classic
    reference on its own data, and each catalogue gets its own frontier."""
    import copy

    first = make_run()
    second = copy.deepcopy(first.cells)
    for c in second:
        c.dataset = "other"
        c.cell = c.cell.replace("ml-100k/", "other/")
        for m in c.metrics:
            if m.metric == "ndcg@10":
                m.value *= 0.5
    run = RunResult(run_id="two", scenario={}, provenance={}, cells=first.cells + second)
    cost.add_costs(run, None, None, 2, hosted=None)
    heads = headlines(build_views(run))
    versus = [h for h in heads if h.kind == "llm-vs-classic"]
    assert len(versus) >= 2
    ease_ndcg = {c.dataset: c.metric("ndcg@10").value for c in run.cells if c.recommender == "ease"}
    for h in versus:  # names carry the dataset: the reference is EASE on the cell's own data
        own = h.text.split(" ", 1)[0]
        assert f"{own} ease" in h.text and h.figures["ref_quality"] == ease_ndcg[own]
    assert sum(h.kind == "frontier" for h in heads) == 2


def test_the_batch_sweep_chart_draws_each_cells_recorded_curve_and_how_it_ended(tmp_path):
    from test_report_sample_run import make_run

    from bench.report import charts
    from bench.report.view import build_views

    run = make_run()
    swept = [c for c in run.cells if c.status == "ok" and c.recommender in ("ease", "pop")]
    for c in swept:
        c.extras["offline_sweep"] = {
            "mode": "adaptive",
            "stopped_by": "gain +2.0% from batch 64 to 128, below 5%",
            "best_batch_size": 128,
            "curve": [{"batch_size": b, "throughput_per_s": 10.0 * b} for b in (1, 2, 4, 8)],
        }
    chart = charts.batch_sweep(build_views(run), tmp_path)
    assert chart.path is not None and chart.path.is_file()
    assert sorted(chart.shown) == sorted(c.cell for c in swept)
    empty = charts.batch_sweep(build_views(make_run()), tmp_path / "none")
    assert empty.path is None and "skipped" in empty.note
