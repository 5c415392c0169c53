"""The report's scaling section: present only with a scaling dimension; log-log PNGs and the exponents table."""

from __future__ import annotations

import pytest

from bench.report.scaling import section
from bench.report.view import build_views
from bench.results import CellResult, RunResult

SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)


def _cell(rec: str, n: int, variant: str = "none", ok: bool = True) -> CellResult:
    data = f"synthetic:users={n // 2},items={n},interactions={10 * n},seed=0"
    c = CellResult(
        cell=f"{data}/random-8-1-1/{rec}/{variant}/cpu",
        dataset=data,
        split="random-8-1-1",
        recommender=rec,
        variant=variant,
        device="cpu",
    )
    if not ok:
        c.status, c.error = "failed", f"{rec} cannot fit {n:,} items here: it needs about 298.0 GiB"
        return c
    c.provenance = {"n_items": n}
    c.add("fit_s", 1e-9 * n**3 if rec == "ease" else 1e-4 * n, "s")
    c.add("throughput_users_per_s", 1e6 / n, "users/s", load="offline")
    c.add("peak_rss_bytes", 32.0 * n**2 if rec == "ease" else 1e3 * n, "bytes")
    c.add("usd_per_1k_recs", 1e-9 * n, "usd", load="offline")
    if rec.startswith("llm"):
        c.add("encode_items_s", n / 60.0, "s")
    return c


@pytest.fixture()
def run() -> RunResult:
    cells = [_cell("pop", n) for n in SIZES]
    cells += [_cell("ease", n, ok=n <= 10_000) for n in SIZES]
    cells += [_cell("llm-two-tower", n, "fp32") for n in SIZES[:3]]
    return RunResult(run_id="r", scenario={"name": "scaling"}, provenance={}, cells=cells)


def test_section_draws_one_loglog_png_per_cost_and_tabulates_exponents(run, tmp_path):
    sec = section(run, build_views(run), tmp_path)
    assert sec is not None and sec.key == "scaling"
    keys = {c.key for c in sec.charts}
    assert keys == {
        f"scaling_{m}"
        for m in ("fit_s", "encode_items_s", "throughput_users_per_s", "peak_rss_bytes", "usd_per_1k_recs")
    }
    assert all(c.path.is_file() and c.path.stat().st_size > 10_000 for c in sec.charts)
    # the fitted exponents are in both tables, with R^2 and the number of points
    assert "| fit_s | ease | 3.00 | 1.000 | 3 |" in sec.markdown
    assert "| fit_s | pop | 1.00 | 1.000 | 5 |" in sec.markdown
    assert "| throughput_users_per_s | pop | -1.00 |" in sec.markdown
    # EASE's failed sizes keep their reason; the two-tower's unmeasured sizes are projected, labelled so
    ease_fit = next(line for line in sec.markdown.splitlines() if line.startswith("| fit_s | ease |"))
    assert ease_fit.endswith("| 30k failed, 100k failed |")
    reasons = [line for line in sec.markdown.splitlines() if line.startswith("- ease at")]
    assert len(reasons) == 2 and "298.0 GiB" in reasons[1]  # each reason once, not once per cost
    lm_encode = next(line for line in sec.markdown.splitlines() if line.startswith("| encode_items_s | llm-two-tower"))
    assert "at 100k" in lm_encode and "1670 s at 100k" in lm_encode  # 100,000 / 60 items per s, 3 digits
    assert "projected" in sec.intro_html and "3.00" in sec.table_html
    key, title, body = sec.html_block()
    assert key == "scaling" and body.count("data:image/png;base64,") == len(sec.charts)
    assert sec.markdown_block().startswith("## How cost grows with the catalogue")


def test_no_section_without_a_scaling_dimension(tmp_path):
    run = RunResult(run_id="r", scenario={}, provenance={}, cells=[_cell("pop", 1000), _cell("ease", 1000)])
    assert section(run, build_views(run), tmp_path) is None


def test_a_fit_that_does_not_describe_its_points_is_not_projected(run, tmp_path):
    for cell, factor in zip((c for c in run.cells if c.recommender == "llm-two-tower"), (1.0, 6.0, 0.3)):
        row = cell.metric("throughput_users_per_s")
        row.value *= factor  # scattered: R^2 well below the projection threshold
    sec = section(run, build_views(run), tmp_path)
    lines = sec.markdown.splitlines()
    noisy = next(line for line in lines if line.startswith("| throughput_users_per_s | llm-two-tower fp32 |"))
    encode = next(line for line in lines if line.startswith("| encode_items_s | llm-two-tower fp32 |"))
    assert noisy.split(" | ")[7] == "–" and "at 100k" in encode.split(" | ")[7]


def test_the_analysis_step_records_the_growth_fits_and_the_report_draws_those(run, tmp_path):
    """Computed once, at the end of a run: the fits travel in results.json, and the section shows what was
    recorded (a changed record shows up), not a fit of its own."""
    from bench import results
    from bench.growth import fit_run
    from tests.support.analysed import analysed

    analysed(run, threads_used=2)
    path = results.write_json(run, tmp_path / "results.json")
    stored = results.load(path)
    assert stored.derived.growth  # recorded in the file
    shown = results.with_derived(stored)
    assert {(r["points"]["recommender"], r["points"]["metric"]) for r in stored.derived.growth} == {
        (f.points.recommender, f.points.metric) for f in fit_run(shown)
    }
    record = next(
        r for r in stored.derived.growth if r["points"]["recommender"] == "pop" and r["points"]["metric"] == "fit_s"
    )
    record["fit"]["exponent"] = 1.23
    sec = section(shown, build_views(shown), tmp_path)
    assert sec is not None and "| fit_s | pop | 1.23 |" in sec.markdown
