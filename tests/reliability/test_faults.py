"""Every fault leaves valid results files, no orphaned cell process, and the reason in the failed row."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from conftest import recbench_process, run_folders

from bench import results
from bench.cli import main

#: the acceptance bound: no cell process may be alive this long after its parent died
ORPHAN_GRACE_S = 2.0
LONG_CELL = "CellSpec(D, S, 'sleeping', params={'seconds': 120}, loads=())"


def _descendants_with_watchdog(proc: psutil.Process, timeout_s: float = 90.0) -> list[psutil.Process]:
    """The run's descendants, once its cell process is past start-up (its parent watchdog thread is running:
    the cell starts it before anything else, so it has two threads or more)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kids = proc.children(recursive=True)
        cells = [k for k in kids if _is_cell(k)]
        if cells and all(_threads(c) >= 2 for c in cells):
            return kids
        time.sleep(0.05)
    raise AssertionError(f"no cell process started under {proc.pid} within {timeout_s} s")


def _is_cell(p: psutil.Process) -> bool:
    try:
        return "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())
    except psutil.Error:
        return False


def _threads(p: psutil.Process) -> int:
    try:
        return p.num_threads()
    except psutil.Error:
        return 0


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture()
def long_run(tmp_path, write_scenario):
    """`recbench run` as a real process, stopped inside a 120 s cell."""
    out = tmp_path / "out"
    proc = recbench_process(["run", str(write_scenario(LONG_CELL)), "--out", str(out), "--no-report"], cwd=tmp_path)
    try:
        kids = _descendants_with_watchdog(psutil.Process(proc.pid))
        yield proc, kids, out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
        for k in psutil.Process().children(recursive=True):  # never leave anything behind, even on failure
            if k.pid in {c.pid for c in kids}:
                k.kill()


@pytest.mark.kill
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_no_cell_outlives_its_parent(long_run, sig):
    proc, kids, out = long_run
    pids = [k.pid for k in kids]
    assert pids
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    time.sleep(ORPHAN_GRACE_S)
    assert [pid for pid in pids if _alive(pid)] == [], f"still running {ORPHAN_GRACE_S} s after {sig.name}"
    # whatever the signal, the results on disk are a complete, valid file
    [folder] = run_folders(out)
    run = results.load(folder)
    json.loads((folder / "results.json").read_text())
    assert (folder / "results.csv").read_text().startswith("run_id,cell,")
    if sig != signal.SIGKILL:  # a signal the parent can handle: the interrupted cell is a failed row saying so
        assert proc.returncode == 128 + sig
        [cell] = run.cells
        assert cell.status == "failed" and f"interrupted ({sig.name})" in cell.error
        err = proc.stderr.read()
        assert "Traceback" not in err and f"terminated by {sig.name}" in err


@pytest.mark.kill
def test_a_cell_killed_from_outside_is_a_failed_row_and_the_run_goes_on(tmp_path, write_scenario):
    cells = f"{LONG_CELL}, CellSpec(D, S, 'noop', loads=())"
    out = tmp_path / "out"
    proc = recbench_process(["run", str(write_scenario(cells)), "--out", str(out), "--no-report"], cwd=tmp_path)
    kids = _descendants_with_watchdog(psutil.Process(proc.pid))
    [cell] = [k for k in kids if _is_cell(k)]
    cell.kill()  # what the kernel's OOM killer does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err
    run = results.load(run_folders(out)[0])
    status = {c.recommender: c for c in run.cells}
    assert status["sleeping"].status == "failed" and "killed by SIGKILL" in status["sleeping"].error
    assert status["noop"].status == "ok"


def test_a_raising_cell_and_a_timed_out_cell_are_failed_rows_with_their_reasons(tmp_path, write_scenario):
    cells = (
        "CellSpec(D, S, 'failing', loads=()), CellSpec(D, S, 'sleeping', params={'seconds': 60}, loads=()), "
        "CellSpec(D, S, 'noop', loads=())"
    )
    out = tmp_path / "out"
    code = main(
        ["run", str(write_scenario(cells, settings="threads=1, cell_timeout_s=3.0")), "--out", str(out), "--no-report"]
    )
    assert code == 1
    run = results.load(run_folders(out)[0])
    by_name = {c.recommender: c for c in run.cells}
    failing, sleeping, noop = by_name["failing"], by_name["sleeping"], by_name["noop"]
    assert failing.status == "failed" and "fit raised on purpose" in failing.error
    assert sleeping.status == "failed" and "timed out after 3 s" in sleeping.error
    assert noop.status == "ok"
    rows = (run_folders(out)[0] / "results.csv").read_text()
    assert "fit raised on purpose" in rows and "timed out after 3 s" in rows


def test_out_of_memory_says_what_the_cell_was_doing_and_what_it_asked_for():
    from bench.executors.base import out_of_memory as _out_of_memory

    plain = _out_of_memory(MemoryError(), "fitting")
    assert plain.startswith("out of memory while fitting") and "not reported" in plain and "GiB was available" in plain
    sized = _out_of_memory(
        MemoryError("Unable to allocate 37.3 GiB for an array with shape (100000, 100000)"), "fitting"
    )
    assert "37.3 GiB" in sized


def test_a_parent_gone_before_the_watchdog_starts_ends_the_child(tmp_path):
    """The start-up race: a cell whose parent died before it ran its first line exits at once."""
    import subprocess
    import sys

    code = (
        "import os, sys; from bench.lifeline import die_with_parent, ORPHAN_EXIT; "
        "die_with_parent(os.getppid() + 1); print('still here')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    from bench.lifeline import ORPHAN_EXIT

    assert done.returncode == ORPHAN_EXIT and "still here" not in done.stdout


# ------------------------------------------------------------------ a full disk


def _enospc(*_args, **_kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_leaves_the_previous_file_whole_and_says_how_much_space(tmp_path, monkeypatch):
    from bench.errors import DiskFullError

    target = tmp_path / "results.json"
    results.atomic_write_text(target, '{"old": true}')
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(DiskFullError) as info:
        results.atomic_write_text(target, "x" * 3_000_000)
    message = str(info.value)
    assert str(target) in message and "2.86 MiB needed" in message and "MiB free" in message and "\n" not in message
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


def test_a_full_disk_during_the_report_is_one_line_and_leaves_no_partial_png(tmp_path, monkeypatch, capsys):
    from conftest import small_run

    run_dir = tmp_path / "run"
    results.write(small_run(), run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    monkeypatch.setattr(os, "fsync", _enospc)
    code = main(["report", str(run_dir)])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "no space left" in lines[0] and "Traceback" not in err
    after = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert after == before  # nothing new, nothing changed, no 0-byte PNG


def test_charts_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A kill while a chart is being written (here: the write raising) leaves no PNG rather than a truncated one."""
    from conftest import small_run

    from bench.report import write_report

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(small_run(), tmp_path)
    assert list(tmp_path.glob("*.png")) == [] and list(tmp_path.glob(".*")) == []


def test_compare_markdown_to_a_full_device_is_one_line(tmp_path, capsys):
    from conftest import small_run

    results.write(small_run(), tmp_path)
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    code = main(["compare", str(tmp_path), str(tmp_path), "--markdown", "/dev/full"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
