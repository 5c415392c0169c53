"""`--executor ray` on a real local Ray cluster: a head and a second node, each a raylet with its own resources.

Proves: the `ci` scenario's quality figures are those of the local executor; rows say which node ran them;
no two timed cells overlapped on one node (from the start and end times the cells record); a node killed
mid-cell gives that cell a failed row with the reason while the others finish; a driver killed mid-run is
finished by `--resume` without measuring any cell twice. Every Ray process is stopped in teardown.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="needs the recbench[ray] extra")
psutil = pytest.importorskip("psutil")

from bench import results, runner  # noqa: E402
from bench.cli import main  # noqa: E402
from bench.errors import BenchError  # noqa: E402
from bench.scenario import load as load_scenario  # noqa: E402
from tests.support.recommenders import PLUGIN  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
DATASET = "synthetic:users=120,items=80,interactions=2500,seed=5"
QUALITY = ("ndcg@10", "recall@10", "hit@10", "mrr@10", "precision@10", "coverage@10", "ndcg@20", "recall@20")


def _ray_children() -> list[psutil.Process]:
    """Ray processes this test process started (raylets, GCS, workers), alive."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            if (
                p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE
                and ("site-packages/ray/" in cmd or cmd.startswith("ray::"))
            ):  # Ray's binaries, scripts, workers
                out.append(p)
        except psutil.Error:
            pass
    return out


@pytest.fixture(scope="module")
def cluster():
    """Head ("head", 2 CPUs) and a second node ("worker", 2 CPUs): separate raylets on this machine."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "node_name": "head", "include_dashboard": False})
    try:
        c.add_node(num_cpus=2, node_name="worker")
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        # on a loaded machine Ray's head processes (dashboard, monitors) can take a while to exit: give them
        # time, then kill what is left, by pid (all started by this fixture), and check none survives
        _, left = psutil.wait_procs(_ray_children(), timeout=20)
        for p in left:
            p.kill()
        _, survivors = psutil.wait_procs(left, timeout=10)
        assert not survivors, f"Ray processes survived teardown: {[p.pid for p in survivors]}"


def _ensure_worker(c) -> None:
    """The second node, (re)added if an earlier test killed it."""
    if not any(n.get("Alive") and n.get("NodeName") == "worker" for n in _nodes(c)):
        c.add_node(num_cpus=2, node_name="worker")
        c.wait_for_nodes()


def _nodes(c) -> list[dict]:
    ray.init(address=c.address, log_to_driver=False)
    try:
        return ray.nodes()
    finally:
        ray.shutdown()


def _write_scenario(path: Path, cells: str, name: str) -> Path:
    path.write_text(f'''"""Cluster test scenario."""
from bench.scenario import CellSpec, Scenario, Settings
D, S = {DATASET!r}, "random-8-1-1"
SCENARIO = Scenario(name={name!r}, description="test", cells=({cells}), settings=Settings(seed=0, threads=1),
                    plugins=({PLUGIN!r},))
''')
    return path


def _intervals_overlap(cells) -> list[tuple[str, str]]:
    """Pairs of cells that ran at the same time on the same node, from their recorded start and end times."""
    by_node: dict[str, list] = {}
    for c in cells:
        p = c.provenance
        by_node.setdefault(p["node"], []).append((p["cell_started_unix_s"], p["cell_ended_unix_s"], c.cell))
    clashes = []
    for spans in by_node.values():
        spans.sort()
        for (_, e1, a), (s2, _, b) in zip(spans, spans[1:]):
            if s2 < e1:
                clashes.append((a, b))
    return clashes


def test_ci_through_ray_matches_local_quality_records_nodes_and_never_overlaps_on_a_node(cluster, tmp_path):
    try:
        from bench.data import load_dataset

        load_dataset("ml-100k", allow_download=False, progress=False)
    except BenchError as exc:
        pytest.skip(f"MovieLens-100K not cached (recbench data fetch ml-100k): {exc}")
    _ensure_worker(cluster)
    assert main(["run", "ci", "--out", str(tmp_path / "local"), "--no-report"]) == 0
    assert (
        main(
            [
                "run",
                "ci",
                "--executor",
                "ray",
                "--address",
                cluster.address,
                "--out",
                str(tmp_path / "ray"),
                "--no-report",
            ]
        )
        == 0
    )
    local = results.load(next((tmp_path / "local").glob("*/results.json")))
    on_ray = results.load(next((tmp_path / "ray").glob("*/results.json")))
    measured = [c for c in on_ray.cells if c.recommender in ("pop", "itemknn", "ease", "ials")]
    assert len(measured) == 4 and all(c.status == "ok" for c in measured)

    for cell in measured:
        mine = {m.metric: m.value for m in cell.metrics if m.metric in QUALITY}
        theirs = {m.metric: m.value for m in local.cell(cell.cell).metrics if m.metric in QUALITY}
        assert mine and mine == theirs, cell.cell  # identical, not close: same data, split, seed and code

    nodes = {c.provenance["node"] for c in measured}
    assert nodes == {"head", "worker"}  # both nodes worked, and each row says which one
    assert set(on_ray.machine["nodes"]) >= nodes
    for name in nodes:
        assert on_ray.machine["nodes"][name]["machine"]["machine_fingerprint"]
    assert all(c.provenance["executor"]["cells_per_node"] == 1 for c in measured)
    assert _intervals_overlap(measured) == []  # 4 cells on 2 nodes: a node ran cells one after another
    assert len({c.provenance["cell_pid"] for c in measured}) == 4  # a fresh worker process per cell
    with open(next((tmp_path / "ray").glob("*/results.csv")), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["recommender"] in ("pop", "itemknn", "ease", "ials")]
    assert rows and all(
        r["executor"] == "ray" and r["node"] in ("head", "worker") and r["cells_per_node"] == "1" for r in rows
    )


def test_killing_a_node_mid_cell_fails_that_cell_with_the_reason_and_the_others_finish(cluster, tmp_path):
    _ensure_worker(cluster)
    cells = (
        'CellSpec(D, S, "sleeping", params={"seconds": 1.0}, tag="a", loads=()), '
        'CellSpec(D, S, "sleeping", params={"seconds": 60.0}, tag="b", loads=()), '
        'CellSpec(D, S, "pop", loads=()), CellSpec(D, S, "itemknn", loads=()),'
    )
    scenario = load_scenario(str(_write_scenario(tmp_path / "kill.py", cells, "kill")))
    worker = next(n for n in cluster.worker_nodes)
    killed = threading.Event()

    def listener(event, spec, message):
        # the long cell started on the second node: kill that node while the cell sleeps in fit
        if event == "start" and spec.tag == "b" and "worker" in message and not killed.is_set():
            killed.set()
            threading.Timer(3.0, lambda: cluster.remove_node(worker, allow_graceful=False)).start()

    run, _ = runner.run(
        scenario,
        runner.RunOptions(
            out_root=tmp_path / "out", report=False, executor="ray", executor_options={"address": cluster.address}
        ),
        listener,
    )
    assert killed.is_set(), "the long cell never started on the worker node"
    by_tag = {c.cell: c for c in run.cells}
    victim = next(c for name, c in by_tag.items() if "[b]" in name)
    assert victim.status == "failed" and "node worker died" in victim.error
    assert victim.provenance["node"] == "worker"
    others = [c for c in run.cells if c is not victim]
    assert len(others) == 3 and all(c.status == "ok" for c in others)
    assert {c.provenance["node"] for c in others} <= {"head", "worker"}
    assert run.provenance["executor"]["nodes_left_out"]["worker"] == "died during the run"


def test_a_driver_killed_mid_run_is_finished_by_resume_without_measuring_a_cell_twice(cluster, tmp_path):
    _ensure_worker(cluster)
    cells = ", ".join(f'CellSpec(D, S, "sleeping", params={{"seconds": 1.5}}, tag="{i}", loads=())' for i in range(4))
    path = _write_scenario(tmp_path / "resume.py", cells + ",", "resume")
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            str(path),
            "--executor",
            "ray",
            "--address",
            cluster.address,
            "--out",
            str(out),
            "--no-report",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        before = _wait_for_cells(out, driver, at_least=2)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    run_dir = before["dir"]
    done_before = {c["cell"]: c["provenance"] for c in before["cells"]}
    assert 2 <= len(done_before) < 4

    assert (
        main(["run", "--resume", str(run_dir), "--executor", "ray", "--address", cluster.address, "--no-report"]) == 0
    )
    final = results.load(run_dir)
    measured = [c for c in final.cells if c.recommender == "sleeping"]
    assert len(measured) == 4 and all(c.status == "ok" for c in measured)
    for c in measured:  # cells measured before the kill are kept as they were, not measured again
        if c.cell in done_before:
            assert c.provenance["cell_started_unix_s"] == done_before[c.cell]["cell_started_unix_s"]
            assert c.provenance["cell_pid"] == done_before[c.cell]["cell_pid"]
    resumed = final.provenance["resumed"]
    assert len(resumed) == 1 and sorted(resumed[0]["cells"]) == sorted(
        c.cell for c in measured if c.cell not in done_before
    )
    # 1-thread cells on 2-CPU nodes: Ray's own accounting would let two share a node; the executor's rule did not
    assert _intervals_overlap(measured) == []


def _wait_for_cells(out: Path, proc: subprocess.Popen, at_least: int, timeout_s: float = 180.0) -> dict:
    """The run's results.json once it holds `at_least` cells (read while the driver keeps rewriting it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the driver ended before it could be killed"
        for path in out.glob("*/results.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # atomic writes make this rare; read again
            if len(data.get("cells", [])) >= at_least:
                return {"dir": path.parent, "cells": data["cells"]}
        time.sleep(0.2)
    raise AssertionError(f"no {at_least} cells recorded within {timeout_s:g} s")
