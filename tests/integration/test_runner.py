"""The runner end to end on a small synthetic dataset: isolation, failed cells, the results contract."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

from bench import per_user, results
from bench.cli import main
from tests.support.recommenders import PLUGIN

DATASET = "synthetic:users=150,items=120,interactions=4000,seed=3"
FAST = (
    "seed=0, threads=1, cell_timeout_s={timeout}, batch_sizes=(1, 16), offline_min_s=0.05, offline_min_batches=3, "
    "stream_min_count=30, stream_min_s=0.05, stream_max_s=0.5, warmup_count=2, server_budget_s=8.0, "
    "server_requests=30, slo_ms=100.0"
)


def write_scenario(tmp_path: Path, cells: str, timeout: float = 120.0, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(f'''
        """A tiny scenario for tests."""
        from bench.scenario import CellSpec, Scenario, Settings
        D, S = {DATASET!r}, "random-8-1-1"
        SCENARIO = Scenario(name={name!r}, description="test", cells=({cells}),
                            settings=Settings({FAST.format(timeout=timeout)}), plugins=({PLUGIN!r},))
    ''')
    )
    return path


def run_cli(tmp_path: Path, scenario: Path, *extra: str) -> tuple[int, Path | None]:
    out = tmp_path / "out"
    code = main(["run", str(scenario), "--out", str(out), "--no-report", *extra])
    runs = sorted(out.glob("*/results.json")) if out.exists() else []
    return code, (runs[-1].parent if runs else None)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """pop and ease measured; one recommender that raises and one that sleeps past the cell timeout."""
    tmp = tmp_path_factory.mktemp("mixed")
    cells = (
        'CellSpec(D, S, "pop"), CellSpec(D, S, "failing"), '
        'CellSpec(D, S, "sleeping", params={"seconds": 60}), '
        'CellSpec(D, S, "ease", params={"l2": 50.0}, loads=("offline", "single-stream", "server")),'
    )
    code, run_dir = run_cli(tmp, write_scenario(tmp, cells, timeout=20.0))
    return code, run_dir


def test_a_raising_and_a_timed_out_cell_become_failed_rows_while_the_others_complete(mixed_run):
    code, run_dir = mixed_run
    assert code == 1  # some cell failed: the exit code says so
    run = results.load(run_dir)
    status = {c.recommender: c for c in run.cells if c.recommender in {"pop", "failing", "sleeping", "ease"}}
    assert status["pop"].status == "ok" and status["ease"].status == "ok"
    assert status["failing"].status == "failed" and "fit raised on purpose" in status["failing"].error
    assert status["sleeping"].status == "failed" and "timed out after 20 s" in status["sleeping"].error
    assert status["ease"].metric("ndcg@10").value > status["pop"].metric("ndcg@10").value


def test_each_measured_cell_keeps_its_users_own_figures_whose_means_are_its_quality_rows(mixed_run):
    _, run_dir = mixed_run
    run = results.load(run_dir)
    for name in ("pop", "ease"):
        cell = next(c for c in run.cells if c.recommender == name)
        pu = per_user.of_cell(cell)
        assert pu is not None and pu.n == cell.metric("ndcg@10").n
        for metric in ("ndcg@10", "recall@10", "hit@10", "mrr@10", "precision@10", "ndcg@20"):
            assert pu.metric(metric).mean() == pytest.approx(cell.metric(metric).value, abs=1e-12), metric
    assert all(not c.per_user for c in run.cells if c.status == "failed")


def test_results_file_validates_and_csv_keeps_the_contract_columns(mixed_run):
    _, run_dir = mixed_run
    data = json.loads((run_dir / "results.json").read_text())
    assert data["schema_version"] == results.SCHEMA_VERSION
    with open(run_dir / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:11] == [
            "run_id",
            "cell",
            "dataset",
            "split",
            "recommender",
            "variant",
            "device",
            "load",
            "metric",
            "value",
            "unit",
        ]
        rows = list(reader)
    failed = [r for r in rows if r["recommender"] == "failing"]
    assert failed and failed[0]["status"] == "failed" and "raised on purpose" in failed[0]["flag"]
    ndcg = [r for r in rows if r["recommender"] == "ease" and r["metric"] == "ndcg@10"]
    assert len(ndcg) == 1 and 0 < float(ndcg[0]["value"]) <= 1
    # provenance on every row
    assert all(r["code_version"] and r["machine"] and r["packages"] for r in rows)
    # and on the run: how long it took and how busy the machine was, before the run and after each cell
    assert data["provenance"]["wall_s"] > 0
    assert len(data["provenance"]["machine_load"]["samples"]) == len(data["cells"]) + 1
    # cells are measured cells only, each with its family; what was derived from them lives in `derived`
    # (the sleeping cell's process was killed at its timeout: the runner records its family from the registry)
    assert {c["recommender"]: c["family"] for c in data["cells"]} == {
        "pop": "classic",
        "ease": "classic",
        "failing": "test",
        "sleeping": "test",
    }
    assert data["derived"]["pricing"]["local_default_instance"] and "cost" not in data["provenance"]
    ease = next(c for c in data["cells"] if c["recommender"] == "ease")
    assert not any(m["metric"] == "usd_per_1k_recs" for m in ease["metrics"])
    assert any(m["metric"] == "usd_per_1k_recs" for m in data["derived"]["cells"][ease["cell"]]["metrics"])
    assert any(r["metric"] == "usd_per_1k_recs" and r["recommender"] == "ease" for r in rows)  # the CSV as before
    assert all(r["seed"] == "0" and len(r["data_checksum"]) == 64 for r in rows if r["recommender"] == "ease")


def test_every_timing_row_has_n_percentiles_and_raw_samples(mixed_run):
    _, run_dir = mixed_run
    run = results.load(run_dir)
    ease = next(c for c in run.cells if c.recommender == "ease")
    loads = {t["load"] for t in ease.timings}
    assert loads == {"offline", "single-stream", "server"}
    for t in ease.timings:
        assert t["n"] == len(t["samples_ms"]) > 0
        assert t["p50_ms"] <= t["p90_ms"] <= t["p99_ms"]
    assert ease.metric("max_qps_at_slo", "server") is not None


def test_a_p99_from_too_few_samples_is_flagged_in_json_and_csv(mixed_run):
    _, run_dir = mixed_run
    run = results.load(run_dir)
    ease = next(c for c in run.cells if c.recommender == "ease")
    p99 = ease.metric("latency_p99_ms", "single-stream")
    assert p99.n is not None and p99.n < 1000 and p99.flag  # 30-ish samples cannot support a p99
    with open(run_dir / "results.csv", newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["recommender"] == "ease" and r["metric"] == "latency_p99_ms" and r["load"] == "single-stream"
        ]
    assert rows and rows[0]["flag"]


def test_same_seed_gives_identical_quality_and_another_seed_another_split(tmp_path):
    cells = 'CellSpec(D, S, "ease", params={"l2": 50.0}, loads=()),'
    scenario = write_scenario(tmp_path, cells)
    figures = []
    for seed in ("0", "0", "1"):
        code, run_dir = run_cli(tmp_path / seed / str(len(figures)), scenario, "--seed", seed)
        assert code == 0
        cell = results.load(run_dir).cells[0]
        figures.append(({m.metric: m.value for m in cell.metrics if "@" in m.metric}, cell.provenance["n_test"]))
    assert figures[0] == figures[1]
    assert figures[0][0] != figures[2][0]
