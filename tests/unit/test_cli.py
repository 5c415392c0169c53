"""Bad input to `recbench run` gets one line naming the problem, exit 2, and no run folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bench.cli import main

TINY = "synthetic:users=60,items=40,interactions=900,seed=1"


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(
        textwrap.dedent(f'''
        """tiny"""
        from bench.scenario import CellSpec, Scenario, Settings
        SCENARIO = Scenario(name="tiny", description="t", cells=(CellSpec({TINY!r}, "random-8-1-1", "pop", loads=()),),
                            settings=Settings(threads=1))
    ''')
    )
    return path


def run_bad(tmp_path: Path, capsys, *args: str, out: Path | None = None) -> str:
    out = out or tmp_path / "out"
    code = main(["run", *args, "--out", str(out), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert not list(out.glob("*/results.json")) if out.is_dir() else True  # nothing half-written
    assert len(err) == 1 and err[0].startswith("recbench: error: ")
    return err[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["no-such-scenario"], ["unknown scenario", "quick"]),
        (["{scenario}", "--recommenders", "nosuch"], ["unknown recommender 'nosuch'", "ease"]),
        (["{scenario}", "--dataset", "nosuchset"], ["nosuchset"]),
        (["{scenario}", "--dataset", "{tmp}/missing.csv"], ["missing.csv"]),
        (["{scenario}", "--k", "0"], ["k=0"]),
        (["{scenario}", "--k", "41"], ["k=41", "40"]),
        (["{scenario}", "--slo-ms", "0"], ["SLO"]),
        (["{scenario}", "--batch-sizes", "0,32"], ["batch sizes"]),
        (["{scenario}", "--cell-timeout", "-1"], ["timeout"]),
        (["{scenario}", "--threads", "0"], ["threads"]),
    ],
)
def test_bad_run_input_is_one_line_and_exit_2(tmp_path, capsys, scenario, args, words):
    args = [a.format(scenario=scenario, tmp=tmp_path) for a in args]
    line = run_bad(tmp_path, capsys, *args)
    for word in words:
        assert word in line


def test_unwritable_output_directory_is_refused_before_any_work(tmp_path, capsys, scenario):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    line = run_bad(tmp_path, capsys, str(scenario), out=blocker / "reports")
    assert "cannot write results" in line and "--out" in line


def test_a_data_file_with_missing_columns_is_named(tmp_path, capsys, scenario):
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,rating\n1,5\n")
    line = run_bad(tmp_path, capsys, str(scenario), "--dataset", str(bad))
    assert "item" in line


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for command in ("run", "list", "report", "compare", "data", "selfcheck"):
        assert command in text
