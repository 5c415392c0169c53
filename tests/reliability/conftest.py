"""Helpers for the reliability suite: tiny scenario files, the CLI run in-process or as a real process, and
checks that a failure was one line with nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.recommenders import PLUGIN

#: small enough that a cell's data load and split take a fraction of a second
DATASET = "synthetic:users=60,items=50,interactions=1200,seed=1"
FAST_SETTINGS = (
    "seed=0, threads=1, batch_sizes=(1, 8), offline_min_s=0.05, offline_min_batches=2, "
    "stream_min_count=10, stream_min_s=0.05, stream_max_s=0.3, warmup_count=1, server_budget_s=2.0, "
    "server_requests=10"
)


def scenario_source(
    cells: str, name: str = "rel", settings: str = FAST_SETTINGS, prelude: str = "", build: bool = False
) -> str:
    body = (
        (
            f"def build():\n    {prelude or 'pass'}\n    return Scenario(name={name!r}, description='t', "
            f"cells=tuple([{cells}]), settings=Settings({settings}), plugins=({PLUGIN!r},))\n"
        )
        if build
        else (
            f"{prelude}\nSCENARIO = Scenario(name={name!r}, description='t', cells=tuple([{cells}]), settings=Settings({settings}), "
            f"plugins=({PLUGIN!r},))\n"
        )
    )
    return (
        textwrap.dedent(f'''
        """A reliability-test scenario."""
        import math
        from bench.scenario import CellSpec, Scenario, Settings
        D, S = {DATASET!r}, "random-8-1-1"
    ''')
        + body
    )


@pytest.fixture()
def write_scenario(tmp_path):
    def write(cells: str, name: str = "rel", **kw) -> Path:
        path = tmp_path / f"scenario_{len(list(tmp_path.glob('scenario_*.py')))}.py"
        path.write_text(scenario_source(cells, name=name, **kw))
        return path

    return write


def assert_one_line_exit_2(code: int, err: str, needle: str = "") -> None:
    """Exit 2, exactly one non-empty line on stderr, no traceback, naming the problem."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}, stderr: {err!r}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    assert "Traceback" not in err
    if needle:
        assert needle.lower() in lines[0].lower(), lines[0]


def run_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


def recbench_process(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    """`recbench ARGS` as a real process (its own process group, so a test can signal it alone)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        **kw,
    )


def small_run(cell_name: str = "d/random-8-1-1/ease/none/cpu", dataset: str = "d", error: str | None = None):
    """A RunResult with one measured EASE cell (quality, throughput, latency with samples) and its provenance."""
    from bench.results import CellResult, RunResult

    cell = CellResult(
        cell=cell_name,
        dataset=dataset,
        split="random-8-1-1",
        recommender="ease",
        variant="none",
        device="cpu",
        status="failed" if error else "ok",
        error=error,
    )
    if not error:
        cell.add("ndcg@10", 0.31, "", n=900)
        cell.add("footprint_bytes", 1_000_000, "bytes")
        cell.add("throughput_users_per_s", 5000.0, "users/s", load="offline")
        cell.add("latency_p99_ms", 2.5, "ms", load="single-stream", n=300)
        cell.timings.append(
            {"load": "single-stream", "name": "latency", "samples_ms": [1.0 + i / 100 for i in range(50)]}
        )
    cell.provenance = {"seed": 0, "threads": 1, "data_checksum": "abc"}
    return RunResult(
        run_id="rel-20260101T000000Z-0001",
        scenario={"name": "rel"},
        provenance={"machine": {"cpu_model": "test cpu", "usable_cores": 2}},
        cells=[cell],
        created_at="2026-01-01T00:00:00+00:00",
    )
