"""`recbench run --resume RUN_DIR` with the local executor: an interrupted run is finished in place, each cell
measured once; a run whose failed cells are rerun gets its run-level figures derived afresh; a resume under
another configuration is refused in one line before any work."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import results
from bench.cli import main
from tests.support.recommenders import PLUGIN

ROOT = Path(__file__).resolve().parents[2]
DATASET = "synthetic:users=120,items=80,interactions=2500,seed=5"


def write_scenario(path: Path, cells: str, name: str = "resumable") -> Path:
    path.write_text(f'''"""Resume test scenario."""
from bench.scenario import CellSpec, Scenario, Settings
D, S = {DATASET!r}, "random-8-1-1"
SCENARIO = Scenario(name={name!r}, description="test", cells=({cells}), settings=Settings(seed=0, threads=1),
                    plugins=({PLUGIN!r},))
''')
    return path


def measured(run) -> list:
    return run.cells  # derived figures live in run.derived, never among the cells


@pytest.mark.slow
def test_a_driver_killed_mid_run_is_finished_by_resume_without_measuring_a_cell_twice(tmp_path):
    cells = ", ".join(f'CellSpec(D, S, "sleeping", params={{"seconds": 1.5}}, tag="{i}", loads=())' for i in range(4))
    path = write_scenario(tmp_path / "four.py", cells + ",")
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", str(path), "--out", str(out), "--no-report"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        before = None
        while before is None and time.monotonic() < deadline:
            assert driver.poll() is None, "the run ended before it could be interrupted"
            children = psutil.Process(driver.pid).children(recursive=True)
            for results_path in out.glob("*/results.json"):
                data = json.loads(results_path.read_text())
                if len(data["cells"]) >= 2:
                    before = (results_path.parent, {c["cell"]: c["provenance"] for c in data["cells"]})
            time.sleep(0.1)
        assert before is not None, "two cells were not recorded within 120 s"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=30)  # the cell in flight ends on its own (broken pipe)
        for p in alive:  # never leave one behind
            p.kill()
    run_dir, done_before = before
    assert 2 <= len(done_before) < 4

    assert main(["run", "--resume", str(run_dir), "--no-report"]) == 0
    final = results.load(run_dir)
    cells = measured(final)
    assert [c.cell for c in cells] == [f"{DATASET}/random-8-1-1/sleeping[{i}]/none/cpu" for i in range(4)]
    assert all(c.status == "ok" for c in cells)
    for c in cells:  # cells recorded before the kill are kept exactly, not measured again
        if c.cell in done_before:
            assert c.provenance["cell_pid"] == done_before[c.cell]["cell_pid"]
            assert c.provenance["cell_started_unix_s"] == done_before[c.cell]["cell_started_unix_s"]
    session = final.provenance["resumed"][0]
    assert sorted(session["cells"]) == sorted(c.cell for c in cells if c.cell not in done_before)
    assert final.provenance["wall_s"] > 0 and (run_dir / "results.csv").is_file()


def test_resume_reruns_only_failed_cells_and_derives_run_figures_afresh(tmp_path):
    """A finished run with a failed cell: --resume measures that cell alone; the ok cells keep their figures
    and gain no second copy of any derived row (cost, utilisation)."""
    cells = (
        'CellSpec(D, S, "ease", params={"l2": 50.0}, loads=("offline",), batch_sizes=(8,)), '
        'CellSpec(D, S, "noop", loads=()),'
    )
    path = write_scenario(tmp_path / "two.py", cells)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    run_dir = next((tmp_path / "out").glob("*/results.json")).parent
    first = results.with_derived(results.load(run_dir))  # cells with their derived rows, as readers see them
    ease_before = next(c for c in first.cells if c.recommender == "ease")
    assert ease_before.metric("usd_per_1k_recs") is not None and ease_before.metric("achieved_gflops") is not None
    for name in ("results.json", "measured.json"):  # as if the noop cell had failed (a crash, a timeout, a node)
        data = json.loads((run_dir / name).read_text())
        noop = next(c for c in data["cells"] if c["recommender"] == "noop")
        noop.update(status="failed", error="simulated failure", metrics=[])
        (run_dir / name).write_text(json.dumps(data))
    noop_pid = noop["provenance"]["cell_pid"]

    assert main(["run", "--resume", str(run_dir), "--no-report"]) == 0
    final = results.with_derived(results.load(run_dir))
    ease = next(c for c in final.cells if c.recommender == "ease")
    assert ease.provenance["cell_pid"] == ease_before.provenance["cell_pid"]  # not measured again
    assert [m.metric for m in ease.metrics] == [m.metric for m in ease_before.metrics]  # derived rows once, not twice
    noop = next(c for c in final.cells if c.recommender == "noop")
    assert noop.status == "ok" and noop.provenance["cell_pid"] != noop_pid  # measured again, in a fresh process
    assert final.provenance["resumed"][0]["cells"] == [f"{DATASET}/random-8-1-1/noop/none/cpu"]


@pytest.mark.parametrize(
    "change, expected",
    [
        (["--seed", "1"], "its seed is 0, this run's 1"),
        (["--recommenders", "pop"], "its cells differ"),
        (["--threads", "2"], "its threads is 1, this run's 2"),
    ],
)
def test_resume_under_another_configuration_is_refused_in_one_line(tmp_path, capsys, change, expected):
    path = write_scenario(tmp_path / "one.py", 'CellSpec(D, S, "pop", loads=()), CellSpec(D, S, "noop", loads=()),')
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    run_dir = next((tmp_path / "out").glob("*/results.json")).parent
    before = (run_dir / "results.json").read_bytes()
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--no-report", *change]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot resume" in err and expected in err
    assert (run_dir / "results.json").read_bytes() == before  # nothing touched


def test_resume_of_another_code_version_is_refused(tmp_path, capsys):
    path = write_scenario(tmp_path / "one.py", 'CellSpec(D, S, "noop", loads=()),')
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    run_dir = next((tmp_path / "out").glob("*/results.json")).parent
    for name in ("results.json", "measured.json"):  # as if another commit had measured it
        data = json.loads((run_dir / name).read_text())
        data["provenance"]["code"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
        (run_dir / name).write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "measured with code version 0123456789ab" in err and len(err.strip().splitlines()) == 1


def test_resume_of_a_directory_without_results_is_refused(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path), "--no-report"]) == 2
    assert "no results.json there" in capsys.readouterr().err
