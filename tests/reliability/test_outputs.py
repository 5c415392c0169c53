"""compare gates vanished cells; names from results files never become paths, formulas or raw HTML."""

from __future__ import annotations

import copy
import csv
import io

import pytest
from conftest import small_run

from bench import results
from bench.cli import main
from bench.compare import compare
from bench.results import HOSTED_RECOMMENDER, HostedLine, MetricRow

EVIL = "<script>alert(1)</script><!--|x"


def _hosted(name: str = f"d/random-8-1-1/{HOSTED_RECOMMENDER}/gpt-4o-mini/api") -> HostedLine:
    return HostedLine(
        name=name,
        dataset="d",
        split="random-8-1-1",
        entry="gpt-4o-mini",
        label="estimated",
        metrics=[MetricRow("hosted_input_tokens", 120.0, "tokens", label="estimated")],
    )


def _two_cells():
    run = small_run()
    second = copy.deepcopy(run.cells[0])
    second.cell, second.recommender = "d/random-8-1-1/pop/none/cpu", "pop"
    run.cells.append(second)
    return run


def test_a_measured_cell_missing_from_head_is_a_regression(tmp_path, capsys):
    base, head = _two_cells(), _two_cells()
    del head.cells[1]
    verdict = compare(base, head)
    assert verdict.exit_code == 1
    [missing] = verdict.regressions
    assert missing.cell == "d/random-8-1-1/pop/none/cpu" and "missing in head" in missing.detail
    assert "timing warning" not in verdict.headline() and verdict.headline().startswith("REGRESSION")
    results.write(base, tmp_path / "b")
    results.write(head, tmp_path / "h")
    assert main(["compare", str(tmp_path / "b"), str(tmp_path / "h")]) == 1


def test_a_cell_that_failed_in_base_may_disappear(tmp_path):
    base, head = _two_cells(), _two_cells()
    base.cells[1].status, base.cells[1].error, base.cells[1].metrics = "failed", "boom", []
    del head.cells[1]
    assert compare(base, head).exit_code == 0


def test_derived_entries_do_not_count_as_cells_in_common(tmp_path, capsys):
    base, head = small_run(), small_run()
    base.derived.hosted.append(_hosted())
    head.cells, head.derived.hosted = (
        [],
        [_hosted()],
    )  # the measured cell is gone; only the price-sheet estimate is left
    verdict = compare(base, head)  # the same scenario (a derived entry in common), every measured cell gone
    assert verdict.cells_compared == 0 and verdict.exit_code == 1
    assert [f.cell for f in verdict.regressions] == [base.cells[0].cell]
    base.cells = []
    results.write(base, tmp_path / "b")
    results.write(head, tmp_path / "h")
    code = main(["compare", str(tmp_path / "b"), str(tmp_path / "h")])
    err = capsys.readouterr().err
    assert code == 2 and "no measured cell in common" in err and len(err.strip().splitlines()) == 1


def test_a_derived_entry_missing_from_head_is_not_a_regression():
    base, head = small_run(), small_run()
    base.derived.hosted.append(_hosted())
    assert compare(base, head).exit_code == 0


@pytest.mark.parametrize("name", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_results_csv_never_holds_a_formula(tmp_path, name):
    run = small_run(cell_name=f"{name}/random-8-1-1/ease/none/cpu", dataset=name)
    run.cells[0].metrics[0].flag = name
    results.write(run, tmp_path)
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for row in rows:
        for column, value in row.items():
            if column in results.NUMERIC_COLUMNS:
                continue
            assert not value.startswith(results.FORMULA_PREFIXES), (column, value)
        assert row["dataset"] == "'" + name.replace("\r", "\n")  # the original text behind one quote


def test_negative_numbers_stay_numbers_in_results_csv(tmp_path):
    run = small_run()
    run.cells[0].add("delta_vs_fp32", -0.25, "")
    results.write(run, tmp_path)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert [r["value"] for r in rows if r["metric"] == "delta_vs_fp32"] == ["-0.25"]


def test_markdown_outputs_escape_names_and_errors(tmp_path):
    from bench.report import write_report

    run = small_run(cell_name=f"{EVIL}/random-8-1-1/ease/none/cpu", dataset=EVIL)
    failed = small_run(cell_name="d/random-8-1-1/pop/none/cpu", error=f"RuntimeError: {EVIL}").cells[0]
    failed.recommender = "pop"
    run.cells.append(failed)
    write_report(run, tmp_path)
    report_md = (tmp_path / "report.md").read_text()
    base = copy.deepcopy(run)
    base.cells[1].status, base.cells[1].error = "ok", None
    compare_md = compare(base, run).markdown(all_rows=True)
    for text in (report_md, compare_md):
        assert "<script" not in text and "<!--" not in text
        assert "&lt;script&gt;" in text
    assert "\\|x" in compare_md  # a pipe in a name cannot split a table cell


def test_a_run_folder_is_always_inside_out(tmp_path, capsys):
    """Whatever the scenario is called, its run folder is a child of --out (unsafe names are refused)."""
    from bench.errors import ConfigError
    from bench.runner import RunOptions
    from bench.runner import run as run_scenario
    from bench.scenario import CellSpec, Scenario, Settings

    cells = (CellSpec("synthetic:users=40,items=30,interactions=600,seed=1", "random-8-1-1", "noop", loads=()),)
    for name in ("../../outside", "/tmp/outside", "a/b"):
        with pytest.raises(ConfigError, match="not allowed"):
            run_scenario(
                Scenario(name=name, description="", cells=cells, settings=Settings(threads=1)),
                RunOptions(out_root=tmp_path / "out", report=False),
            )
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "outside").exists()
