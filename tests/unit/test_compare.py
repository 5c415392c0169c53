"""The regression gate: hard on deterministic figures, Mann-Whitney U + effect size on raw timing samples."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from test_report_sample_run import make_run, tiny_split

from bench import cost, results
from bench.compare import Tolerances, compare, main_compare
from bench.errors import BenchError

EASE = "ml-100k/random-8-1-1/ease/none/cpu"
TT8 = "ml-100k/random-8-1-1/llm-two-tower/onnx-int8/cpu"


@pytest.fixture(scope="module")
def base_run():
    run = make_run()
    workload = cost.hosted_workload(tiny_split(), n_prompts=6, history_len=5, n_candidates=12)
    cost.add_costs(run, None, None, 2, hosted=[workload])
    return run


@pytest.fixture()
def head(base_run):
    return copy.deepcopy(base_run)


def _write(run, path):
    results.write(run, path)
    return path / "results.json"


def _metric(run, cell, metric, load=None):
    """A cell's figure, or a hosted-API line's (derived entries are compared under the same names)."""
    unit = run.cell(cell) or next(h for h in run.derived.hosted if h.name == cell)
    return unit.metric(metric, load)


def test_a_run_compared_with_itself_exits_0(base_run, tmp_path, capsys):
    path = _write(base_run, tmp_path / "a")
    assert main_compare(path, path) == 0
    out = capsys.readouterr().out
    assert "OK:" in out and "REGRESSION" not in out
    verdict = compare(base_run, base_run)
    assert not verdict.regressions and not verdict.warnings
    assert any(f.kind == "timing" and f.verdict == "ok" for f in verdict.findings)


def test_ease_ndcg_lowered_by_002_exits_1_and_names_the_figure(base_run, head, tmp_path, capsys):
    _metric(head, EASE, "ndcg@10").value -= 0.02
    code = main_compare(_write(base_run, tmp_path / "a"), _write(head, tmp_path / "b"))
    assert code == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "ease" in out and "ndcg@10" in out
    [finding] = compare(base_run, head).regressions
    assert (finding.cell, finding.metric) == (EASE, "ndcg@10")
    assert finding.base == pytest.approx(0.3412) and finding.head == pytest.approx(0.3212)
    assert finding.delta == pytest.approx(-0.02)


def test_quality_change_within_tolerance_passes(base_run, head):
    _metric(head, EASE, "ndcg@10").value -= 0.004
    assert compare(base_run, head).exit_code == 0
    assert compare(base_run, head, Tolerances(quality_abs=0.001)).exit_code == 1


def test_rating_error_rising_is_a_regression(base_run, head):
    base = copy.deepcopy(base_run)
    base.cell(EASE).add("rmse", 0.91, "rating")
    head.cell(EASE).add("rmse", 0.93, "rating")
    [finding] = compare(base, head).regressions
    assert finding.metric == "rmse"


@pytest.mark.parametrize(
    "cell, metric",
    [
        (EASE, "footprint_bytes"),
        (TT8, "flops_per_rec"),
        ("tiny/random-8-1-1/hosted-llm/gpt-4o-mini/api", "hosted_input_tokens_per_rec"),
    ],
)
def test_deterministic_figures_growing_past_tolerance_regress(base_run, head, cell, metric):
    _metric(head, cell, metric).value *= 1.05
    [finding] = compare(base_run, head).regressions
    assert (finding.cell, finding.metric) == (cell, metric)


def test_a_cell_that_fails_in_head_regresses(base_run, head):
    cell = head.cell(TT8)
    cell.status, cell.error, cell.metrics, cell.timings = "failed", "RuntimeError: boom", [], []
    [finding] = compare(base_run, head).regressions
    assert finding.cell == TT8 and finding.metric == "status" and "boom" in finding.detail


def test_a_missing_quality_figure_regresses(base_run, head):
    cell = head.cell(EASE)
    cell.metrics = [m for m in cell.metrics if m.metric != "recall@10"]
    [finding] = compare(base_run, head).regressions
    assert finding.metric == "recall@10" and finding.detail == "missing in head"


def _scale_timing(run, cell, name, factor, seed=1):
    rng = np.random.default_rng(seed)
    for t in run.cell(cell).timings:
        if t["name"] == name:
            t["samples_ms"] = (
                np.asarray(t["samples_ms"]) * factor * rng.lognormal(0, 0.01, len(t["samples_ms"]))
            ).tolist()


def test_slower_timing_warns_by_default_and_fails_when_strict(base_run, head):
    _scale_timing(head, EASE, "single-stream", 1.3)
    soft = compare(base_run, head)
    assert soft.exit_code == 0
    [warning] = soft.warnings
    assert warning.cell == EASE and "single-stream" in warning.metric and "Mann-Whitney" in warning.detail
    strict = compare(base_run, head, strict_timing=True)
    assert strict.exit_code == 1 and strict.regressions[0].metric == warning.metric


def test_a_significant_but_small_slowdown_is_not_flagged(base_run, head):
    _scale_timing(head, EASE, "single-stream", 1.05)  # p tiny on 1500 samples, but under the 10% effect size
    verdict = compare(base_run, head, strict_timing=True)
    finding = next(f for f in verdict.findings if f.cell == EASE and f.kind == "timing" and "single-stream" in f.metric)
    assert finding.verdict == "ok" and verdict.exit_code == 0


def test_a_faster_head_is_an_improvement(base_run, head):
    _scale_timing(head, TT8, "single-stream", 0.7)
    finding = next(
        f
        for f in compare(base_run, head).findings
        if f.cell == TT8 and f.kind == "timing" and "single-stream" in f.metric
    )
    assert finding.verdict == "improved"


def test_cost_only_cells_have_no_quality_gate(base_run, head):
    pair = head.cell("ml-100k/random-8-1-1/llm-pairwise/fp32/cpu")
    pair.add("ndcg@10", 0.01, "")  # a random-weight model's quality must never be judged
    assert compare(base_run, head).exit_code == 0


def test_no_cell_in_common_is_bad_input(base_run, head, tmp_path, capsys):
    for c in head.cells:
        c.cell = "other/" + c.cell
    for h in head.derived.hosted:
        h.name = "other/" + h.name
    with pytest.raises(BenchError, match="no measured cell in common"):
        compare(base_run, head)
    assert main_compare(_write(base_run, tmp_path / "a"), _write(head, tmp_path / "b")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no measured cell in common" in err and "\n" not in err


@pytest.mark.parametrize(
    "content, needle",
    [
        ('{"schema_version": 1, "run_id": "x", "cells": [{"cell": ', "not valid JSON"),  # truncated
        ("not json at all", "not valid JSON"),
        ('{"schema_version": 99, "run_id": "x", "cells": []}', "newer than this recbench"),
        ('{"schema_version": 1, "cells": [{"bogus": 1}]}', "malformed results file"),
    ],
)
def test_bad_results_files_exit_2_with_one_line(base_run, tmp_path, capsys, content, needle):
    good = _write(base_run, tmp_path / "a")
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main_compare(good, bad) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and str(bad) in err
    assert main_compare(tmp_path / "missing.json", good) == 2


def test_verdict_files_for_ci(base_run, head, tmp_path):
    _metric(head, EASE, "ndcg@10").value -= 0.02
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    code = main_compare(
        _write(base_run, tmp_path / "a"),
        _write(head, tmp_path / "b"),
        json_path=tmp_path / "verdict.json",
        markdown_path=summary,
    )
    assert code == 1
    data = json.loads((tmp_path / "verdict.json").read_text())
    assert data["exit_code"] == 1
    [reg] = [f for f in data["findings"] if f["verdict"] == "regression"]
    assert reg["cell"] == EASE and reg["metric"] == "ndcg@10" and reg["delta"] == pytest.approx(-0.02)
    md = summary.read_text()
    assert md.startswith("earlier step\n") and "| " + EASE + " | ndcg@10 |" in md and "REGRESSION" in md


def test_different_machines_are_noted(base_run, head):
    head.provenance["machine"] = {**head.provenance["machine"], "machine_fingerprint": "ffff0000ffff0000"}
    assert any("different machines" in n for n in compare(base_run, head).notes)


# ---------------------------------------------------------------- schema 1 and 2 compare alike

#: committed schema-1 files (generative's holds hosted-API lines and a size fit as pseudo-cells); gpu and
#: llm_sizes were re-derived, and so rewritten as schema 2, on 2026-11-29
SCHEMA_1_FILES = [
    "reports/baselines/ci/results.json",
    "reports/findings/generative.json",
    "reports/findings/coldstart.json",
    "reports/findings/scaling.json",
]


@pytest.mark.parametrize("path", SCHEMA_1_FILES)
def test_a_schema_1_file_and_its_schema_2_rewrite_give_the_same_verdict_and_findings(path, tmp_path):
    """The committed files are schema 1 (pseudo-cells, derived rows inside cells): upgraded on read and written
    back as schema 2, each compares against the original exactly as the original compares against itself."""
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / path
    assert json.loads(source.read_text())["schema_version"] == 1
    old = results.load(source)
    new_path = results.write_json(old, tmp_path / "results.json")
    data = json.loads(new_path.read_text())
    assert data["schema_version"] == 2 and "cost" not in data["provenance"]
    assert not {c["recommender"] for c in data["cells"]} & {"hosted-llm", "size-fit"}
    new = results.load(new_path)
    reference = compare(old, old).to_dict()
    assert reference["findings"]  # not vacuous: figures were compared
    assert compare(old, new).to_dict() == reference
    assert compare(new, old).to_dict() == reference
