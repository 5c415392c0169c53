"""Executors: one registered from outside the package runs a scenario without the runner knowing it; bad
executor options are one line and exit 2 before any work; a node whose data differ fails its cell with the
reason; per-node records drive utilisation and prices."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import executors, results
from bench.analysis.cells import add_utilisation
from bench.cli import _instances, main
from bench.errors import ConfigError
from bench.executors.base import CellTask
from bench.executors.local import LocalExecutor, run_cell_isolated
from bench.results import CellResult, RunResult
from bench.scenario import CellSpec, Settings

DATASET = "synthetic:users=60,items=40,interactions=900,seed=2"


def write_scenario(path: Path) -> Path:
    path.write_text(f'''"""Executor test scenario."""
from bench.scenario import CellSpec, Scenario, Settings
SCENARIO = Scenario(name="exec", description="test", cells=(CellSpec({DATASET!r}, "random-8-1-1", "pop", loads=()),
                    CellSpec({DATASET!r}, "random-8-1-1", "noop", loads=())), settings=Settings(threads=1))
''')
    return path


class RecordingExecutor(LocalExecutor):
    """A test double from outside the package: the local executor, recording every task it is given."""

    name = "recording"
    seen: list[CellTask] = []

    def submit(self, task: CellTask) -> None:
        RecordingExecutor.seen.append(task)
        super().submit(task)

    def provenance(self) -> dict:
        return {"name": self.name, "cells_per_node": 1}


def test_an_executor_registered_from_outside_runs_the_scenario(tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "_REGISTRY", dict(executors._REGISTRY))
    executors.register("recording", RecordingExecutor)
    RecordingExecutor.seen = []
    code = main(
        [
            "run",
            str(write_scenario(tmp_path / "s.py")),
            "--executor",
            "recording",
            "--out",
            str(tmp_path / "out"),
            "--no-report",
        ]
    )
    assert code == 0
    run = results.load(next((tmp_path / "out").glob("*/results.json")))
    assert [t.spec.recommender for t in RecordingExecutor.seen] == ["pop", "noop"]
    assert all(len(t.data_checksum) == 64 for t in RecordingExecutor.seen)  # the driver's, for the node to check
    measured = [c for c in run.cells if c.recommender in ("pop", "noop")]
    assert all(c.provenance["executor"]["name"] == "recording" for c in measured)
    assert run.provenance["executor"]["name"] == "recording"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--executor", "slurm"], "unknown executor 'slurm': choose one of local, ray"),
        (["--cells-per-node", "2"], "the local executor runs one cell at a time"),
        (["--address", "auto"], "--address applies to --executor ray"),
        (["--instance", "=g5.xlarge"], "write NODE=NAME"),
        (["--instance", "nodeA=m9.huge"], "unknown instance 'm9.huge'"),
    ],
)
def test_bad_executor_options_are_one_line_and_exit_2_before_any_work(tmp_path, capsys, args, needle):
    code = main(["run", str(write_scenario(tmp_path / "s.py")), "--out", str(tmp_path / "out"), "--no-report", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_executor_ray_without_ray_installed_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as where the extra is missing
    code = main(
        [
            "run",
            str(write_scenario(tmp_path / "s.py")),
            "--executor",
            "ray",
            "--out",
            str(tmp_path / "out"),
            "--no-report",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "pip install 'recbench[ray]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_ray_address_that_is_not_one_is_refused():
    pytest.importorskip("ray")
    with pytest.raises(ConfigError, match="not a Ray address"):
        executors.create("ray", address="http://head:8265")
    with pytest.raises(ConfigError, match="whole number >= 1"):
        executors.create("ray", cells_per_node=0)


def test_a_node_whose_data_differ_fails_its_cell_with_the_reason():
    task = CellTask(0, CellSpec(DATASET, "random-8-1-1", "pop", loads=()), Settings(threads=1), data_checksum="0" * 64)
    result = run_cell_isolated(task)
    assert result.status == "failed"
    assert "holds other data" in result.error and "0000000000000000" in result.error
    assert result.provenance["cell_started_unix_s"] <= result.provenance["cell_ended_unix_s"]


def test_instance_options_split_into_a_default_and_per_node_mappings():
    assert _instances(["c7i.xlarge", "10.0.0.5=g5.xlarge", "gpu-1=g6.xlarge"]) == (
        "c7i.xlarge",
        {"10.0.0.5": "g5.xlarge", "gpu-1": "g6.xlarge"},
    )
    with pytest.raises(ConfigError, match="one default instance"):
        _instances(["c7i.xlarge", "g5.xlarge"])


def _cell_on(node: str) -> CellResult:
    c = CellResult(
        cell=f"d/s/ease[{node}]/none/cpu",
        dataset="d",
        split="s",
        recommender="ease",
        variant="none",
        device="cpu",
        provenance={"node": node, "threads": 2},
    )
    c.add("throughput_users_per_s", 1000.0, "users/s", load="offline", n=50)
    c.add("flops_per_rec", 2e6, "FLOP", label="estimated")
    return c


def test_utilisation_and_cost_use_the_peaks_and_price_of_the_node_that_ran_the_cell():
    from bench import cost

    fast, slow = _cell_on("fast"), _cell_on("slow")
    run = RunResult(
        "r",
        {},
        {},
        cells=[fast, slow],
        machine={
            "threads": 2,
            "nodes": {"fast": {"peak_gemm": {"gflops": 40.0}}, "slow": {"peak_gemm": {"gflops": 10.0}}},
        },
    )
    add_utilisation(run)
    assert fast.metric("utilisation_pct_of_peak").value == pytest.approx(5.0)
    assert slow.metric("utilisation_pct_of_peak").value == pytest.approx(20.0)

    cost.add_costs(run, None, None, 2, node_instances={"fast": "g5.xlarge"}, hosted=None)
    assert fast.extras["cost"]["instance"] == "g5.xlarge" and fast.extras["cost"]["share"] == 1.0
    assert slow.extras["cost"]["instance"] == "c7i.xlarge" and slow.extras["cost"]["share"] == 0.5
    assert fast.metric("usd_per_1k_recs").value == pytest.approx(1.006 / 3600)
    assert run.derived.pricing is not None and run.derived.pricing.node_instances == {"fast": "g5.xlarge"}


def test_rows_name_the_node_and_its_machine_not_the_drivers():
    c = _cell_on("gpu-1")
    c.provenance["executor"] = {"name": "ray", "cells_per_node": 2}
    run = RunResult(
        "r",
        {},
        {"machine": {"cpu_model": "driver cpu", "usable_cores": 2, "machine_fingerprint": "d"}},
        cells=[c],
        machine={
            "nodes": {"gpu-1": {"machine": {"cpu_model": "node cpu", "usable_cores": 8, "machine_fingerprint": "n"}}}
        },
    )
    rows = results.csv_rows(run)
    assert rows and all(
        r["node"] == "gpu-1"
        and r["executor"] == "ray"
        and r["cells_per_node"] == "2"
        and r["machine"] == "node cpu x8 [n]"
        for r in rows
    )
