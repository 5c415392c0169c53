"""The report's cold-start section: present only with cold-item metrics; the chart and the table."""

from __future__ import annotations

from bench.report.coldstart import section
from bench.report.view import build_views
from bench.results import CellResult, RunResult


def _cell(rec: str, variant: str, cold: float, warm: float, usd: float) -> CellResult:
    c = CellResult(
        cell=f"ml-100k/cold-items/{rec}/{variant}/cpu",
        dataset="ml-100k",
        split="cold-items",
        recommender=rec,
        variant=variant,
        device="cpu",
    )
    for name, value in (
        ("ndcg@10", cold / 2),
        ("recall@10", cold),
        ("cold_recall@10", cold),
        ("cold_ndcg@10", cold / 2),
        ("cold_share@10", cold * 2),
        ("warm_recall@10", warm),
    ):
        c.add(name, value, "", n=900)
    c.add("throughput_users_per_s", 1.0 / usd, "users/s", load="offline")
    c.add("usd_per_1k_recs", usd, "usd", load="offline")
    return c


def test_section_sets_cold_quality_against_cost(tmp_path):
    run = RunResult(
        run_id="r",
        scenario={"name": "coldstart"},
        provenance={},
        cells=[
            _cell("ease", "none", 0.0, 0.30, 1e-5),
            _cell("pop", "none", 0.0, 0.10, 1e-6),
            _cell("llm-two-tower", "fp32", 0.05, 0.05, 1e-3),
            _cell("llm-hybrid", "fp32", 0.04, 0.29, 2e-3),
        ],
    )
    sec = section(run, build_views(run), tmp_path)
    assert sec is not None and len(sec.charts) == 1
    chart = sec.charts[0]
    assert chart.path.is_file() and set(chart.shown) == {"ease", "pop", "llm-two-tower fp32", "llm-hybrid fp32"}
    lines = sec.markdown.splitlines()
    ease = next(line for line in lines if line.startswith("| ease |"))
    hybrid = next(line for line in lines if line.startswith("| llm-hybrid fp32 |"))
    assert "| 0 |" in ease and "| 0.0400 |" in hybrid and "| 0.290 |" in hybrid
    assert "900 test users" in sec.intro_html


def test_no_section_without_cold_metrics(tmp_path):
    c = CellResult(
        cell="ml-100k/random-8-1-1/ease/none/cpu",
        dataset="ml-100k",
        split="random-8-1-1",
        recommender="ease",
        variant="none",
        device="cpu",
    )
    c.add("recall@10", 0.3, "")
    run = RunResult(run_id="r", scenario={}, provenance={}, cells=[c])
    assert section(run, build_views(run), tmp_path) is None
