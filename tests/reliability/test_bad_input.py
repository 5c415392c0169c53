"""Every bad input is refused before any work: one line on stderr naming the problem, exit 2, no traceback,
no run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_one_line_exit_2, recbench_process, run_folders

from bench.cli import main

EASE_CELL = "CellSpec(D, S, 'ease', loads=())"
OFFLINE_CELL = "CellSpec(D, S, 'pop', loads=('offline',))"


def cli(argv: list[str]) -> int:
    """The CLI in this process; argparse's usage errors end in SystemExit, whose code is the exit status."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _run(tmp_path, capsys, *argv: str) -> tuple[int, str, list]:
    out = tmp_path / "out"
    code = cli(["run", *argv, "--out", str(out), "--no-report"])
    return code, capsys.readouterr().err, run_folders(out)


@pytest.fixture()
def readme(tmp_path):
    """A file holding both generated blocks, passed as `--readme` and as `--doc`."""
    from bench.findings import BRIEF_END, BRIEF_START, END, START

    path = tmp_path / "README.md"
    path.write_text(f"# x\n\n{START}\n{END}\n\n{BRIEF_START}\n{BRIEF_END}\n")
    return path


@pytest.mark.parametrize(
    "options, needle",
    [
        (["--seed", "-1"], "seed"),
        (["--slo-ms", "inf"], "slo_ms"),
        (["--slo-ms", "nan"], "slo_ms"),
        (["--cell-timeout=-inf"], "cell_timeout_s"),
        (["--cell-timeout=nan"], "cell_timeout_s"),
        (["--threads", "0"], "threads"),
        (["--k", "0"], "k=0"),
        (["--quality-users", "-3"], "quality users"),
        (["--batch-sizes", "1000000000"], "batch size 1,000,000,000"),
        (["--batch-sizes", "0,8"], "batch sizes"),
        (["--batch-sizes", "1,x"], "integers"),
        (["--recommenders", ""], "names nothing"),
        (["--recommenders", " , "], "names nothing"),
        (["--recommenders", "nosuch"], "unknown recommender"),
        (["--dataset", "nosuch-data"], "unknown dataset"),
        (["--dataset", "synthetic:users=inf"], "integer"),
        (["--device", "tpu"], "invalid choice"),
        (["--frobnicate"], "unrecognized"),
    ],
)
def test_bad_option_is_one_line_and_no_run_folder(tmp_path, capsys, write_scenario, options, needle):
    code, err, folders = _run(tmp_path, capsys, str(write_scenario(OFFLINE_CELL)), *options)
    assert_one_line_exit_2(code, err, needle)
    assert folders == []


@pytest.mark.parametrize(
    "cells, kw, needle",
    [
        ("CellSpec(D, S, 'ease', device='tpu', loads=())", {}, "device 'tpu'"),
        ("CellSpec(D, S, 'itemknn', params={'k': -5}, loads=())", {}, "k"),
        ("CellSpec(D, S, 'ease', params={'l2': math.inf}, loads=())", {}, "finite"),
        ("CellSpec(D, S, 'ease', params={'l2': float('nan')}, loads=())", {}, "finite"),
        ("CellSpec(D, S, 'ease', params={'lambda': 3}, loads=())", {}, "no parameter"),
        ("CellSpec(D, S, 'ease', loads=('offline', 'burst'))", {}, "unknown load"),
        ("CellSpec(D, 'random-5-5', 'ease', loads=())", {}, "unknown split"),
        ("CellSpec(D, S, 'ease', batch_sizes=(0,))", {}, "batch sizes"),
        (f"{EASE_CELL}, {EASE_CELL}", {}, "more than once"),
        (EASE_CELL, {"name": "../escape"}, "not allowed"),
        (EASE_CELL, {"name": "/abs/name"}, "not allowed"),
        (EASE_CELL, {"settings": "offline_min_s=float('nan')"}, "offline_min_s"),
        (EASE_CELL, {"settings": "server_budget_s=math.inf"}, "server_budget_s"),
        (EASE_CELL, {"settings": "quality_gate=float('nan')"}, "quality_gate"),
        (EASE_CELL, {"settings": "seed=-4"}, "seed"),
        (EASE_CELL, {"prelude": "raise RuntimeError('broken on purpose')", "build": True}, "build() raised"),
        (EASE_CELL, {"prelude": "import no_such_module_here"}, "failed to load"),
        ("", {}, "non-empty tuple of CellSpec"),
        ("'not a cell',", {}, "CellSpec"),
        ("D", {}, "CellSpec"),
    ],
)
def test_bad_scenario_is_one_line_and_no_run_folder(tmp_path, capsys, write_scenario, cells, kw, needle):
    code, err, folders = _run(tmp_path, capsys, str(write_scenario(cells, **kw)))
    assert_one_line_exit_2(code, err, needle)
    assert folders == []


def test_scenario_file_with_a_syntax_error(tmp_path, capsys):
    path = tmp_path / "broken.py"
    path.write_text("SCENARIO = (\n")
    code, err, folders = _run(tmp_path, capsys, str(path))
    assert_one_line_exit_2(code, err, "SyntaxError")
    assert folders == []


@pytest.mark.parametrize(
    "name", ["../../../tmp/evil", "/tmp/evil", "quick/../quick", "nosuch", "..", "", "scenarios/quick"]
)
def test_scenario_names_are_looked_up_among_packaged_scenarios_only(tmp_path, capsys, name):
    (tmp_path / "evil.py").write_text("raise SystemExit('this file must never run')\n")
    code, err, folders = _run(tmp_path, capsys, name)
    assert_one_line_exit_2(code, err, "unknown scenario")
    assert folders == []


def test_missing_py_file_is_refused(tmp_path, capsys):
    code, err, folders = _run(tmp_path, capsys, str(tmp_path / "absent.py"))
    assert_one_line_exit_2(code, err, "does not exist")


def _data_scenario(write_scenario, csv_path):
    return write_scenario(f"CellSpec({str(csv_path)!r}, S, 'pop', loads=())")


@pytest.mark.parametrize(
    "rows, needle",
    [
        ("user,item,rating\n1,1,4\n1,2,inf\n", "non-finite"),
        ("user,item,rating\n1,1,4\n1,2,-Infinity\n", "non-finite"),
        ("user,item,rating\n1,1,4\n1,2,1e39\n", "out-of-range"),
        ("user,item,rating\n1,1,4\n1,2,nan\n", "non-numeric"),
        ("user,item,timestamp\n1,1,10\n1,2,inf\n", "timestamp"),
        ("user,item,timestamp\n1,1,10\n1,2,1e300\n", "timestamp"),
    ],
)
def test_non_finite_numbers_in_data_are_refused(tmp_path, capsys, write_scenario, rows, needle):
    data = tmp_path / "ratings.csv"
    data.write_text(rows)
    code, err, folders = _run(tmp_path, capsys, str(_data_scenario(write_scenario, data)))
    assert_one_line_exit_2(code, err, needle)
    assert "ratings.csv" in err and folders == []


def test_a_split_without_test_users_is_refused(tmp_path, capsys, write_scenario):
    data = tmp_path / "one_each.csv"  # one interaction per user: nothing is left to test on
    data.write_text("user,item\n" + "".join(f"{u},{u}\n" for u in range(40)))
    code, err, folders = _run(tmp_path, capsys, str(_data_scenario(write_scenario, data)))
    assert_one_line_exit_2(code, err, "no test users")
    assert folders == []


def test_non_finite_price_is_refused(tmp_path, capsys, write_scenario):
    from importlib import resources

    sheet = resources.files("bench").joinpath("prices.toml").read_text()
    bad = tmp_path / "prices.toml"
    bad.write_text(sheet.replace("amortise_over_recs = ", "amortise_over_recs = inf #", 1))
    code, err, folders = _run(tmp_path, capsys, str(write_scenario(EASE_CELL)), "--prices", str(bad))
    assert_one_line_exit_2(code, err, "amortise_over_recs")
    assert folders == []


def test_data_without_an_action_is_refused(capsys):
    assert_one_line_exit_2(cli(["data"]), capsys.readouterr().err, "needs an action")


# ------------------------------------------------------------------ malformed results files


def _results(**overrides) -> dict:
    cell = {
        "cell": "d/s/ease/none/cpu",
        "dataset": "d",
        "split": "s",
        "recommender": "ease",
        "variant": "none",
        "device": "cpu",
        "status": "ok",
        "metrics": [{"metric": "ndcg@10", "value": 0.3, "unit": ""}],
    }
    data = {"schema_version": 1, "run_id": "r1", "scenario": {"name": "quick"}, "provenance": {}, "cells": [cell]}
    for path, value in overrides.items():
        target = data
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return data


MALFORMED = [
    ({"schema_version": 0}, "schema 0"),
    ({"schema_version": -1}, "schema -1"),
    ({"schema_version": "1"}, "schema_version"),
    ({"schema_version": True}, "schema_version"),
    ({"schema_version": 99}, "newer"),
    ({"cells": "all of them"}, "cells is a string"),
    ({"cells": {"a": 1}}, "cells is an object"),
    ({"cells.0": ["x"]}, "cells[0] is a list"),
    ({"cells.0.metrics": "ndcg"}, "metrics is a string"),
    ({"cells.0.metrics.0.value": "0.3"}, "value is a string"),
    ({"cells.0.metrics.0.value": True}, "value is a boolean"),
    ({"cells.0.metrics.0.metric": 5}, "metric is an integer"),
    ({"cells.0.status": "great"}, "status"),
    ({"cells.0.params": [1]}, "params is a list"),
    ({"cells.0.timings": [{"samples_ms": "fast"}]}, "samples_ms"),
    ({"cells.0.timings": [{"samples_ms": [1.0, "x"]}]}, "samples_ms"),
    ({"provenance": "none"}, "provenance is a string"),
    ({"run_id": 7}, "run_id is an integer"),
    ({"scenario": ["quick"]}, "scenario is a list"),
]


@pytest.mark.parametrize("overrides, needle", MALFORMED)
def test_malformed_results_file_is_one_line_for_every_reader(tmp_path, capsys, readme, overrides, needle):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_results()))
    bad.write_text(json.dumps(_results(**overrides)))
    for argv in (
        ["compare", str(good), str(bad)],
        ["compare", str(bad), str(good)],
        ["report", str(bad)],
        ["findings", str(bad), "--store", str(tmp_path / "store"), "--readme", str(readme), "--doc", str(readme)],
    ):
        code = cli(argv)
        err = capsys.readouterr().err
        assert_one_line_exit_2(code, err, needle)
        assert str(bad) in err
    assert not (tmp_path / "store").exists() and not (tmp_path / "index.html").exists()


def test_a_well_formed_file_passes_validation(tmp_path):
    from bench import results

    path = tmp_path / "good.json"
    path.write_text(json.dumps(_results()))
    assert results.load(path).cells[0].metric("ndcg@10").value == 0.3


def test_findings_refuses_a_scenario_name_that_is_a_path(tmp_path, capsys, readme):
    store = tmp_path / "deep" / "store"
    for name in ("../../escaped", "/tmp/escaped", "a/b", "..", ".hidden"):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(_results(**{"scenario": {"name": name}})))
        code = cli(["findings", str(bad), "--store", str(store), "--readme", str(readme), "--doc", str(readme)])
        assert_one_line_exit_2(code, capsys.readouterr().err, "not allowed")
    assert not store.exists() and not (tmp_path / "escaped.json").exists() and not Path("/tmp/escaped.json").exists()


def test_bad_input_from_a_real_process_is_one_line(tmp_path, write_scenario):
    """The same contract outside pytest's process: what a CI job sees."""
    proc = recbench_process(
        ["run", str(write_scenario(EASE_CELL)), "--seed", "-1", "--out", str(tmp_path / "o")], cwd=tmp_path
    )
    out, err = proc.communicate(timeout=120)
    assert_one_line_exit_2(proc.returncode, err, "seed")
    assert not (tmp_path / "o").exists() or run_folders(tmp_path / "o") == []
