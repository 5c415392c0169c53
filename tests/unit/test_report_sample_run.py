"""A realistic synthetic RunResult (built by hand, never measured) for the cost, report and compare tests.

Cells: pop, ease, itemknn, llm-two-tower fp32 and onnx-int8, a cost-only pairwise cell, a failed rerank cell
and a gated int8 cell; metrics and timing dicts shaped as the runner writes them.
Importable from sibling test modules: `from test_report_sample_run import make_run, tiny_split`.
"""

from __future__ import annotations

import numpy as np

from bench.data.dataset import Dataset, Interactions, ItemText, Split
from bench.results import CellResult, RunResult

DATASET, SPLIT = "ml-100k", "random-8-1-1"


def _cell(
    rec: str,
    variant: str,
    *,
    label: str = "measured",
    status: str = "ok",
    error: str | None = None,
    family_seed: int = 0,
) -> CellResult:
    return CellResult(
        cell=f"{DATASET}/{SPLIT}/{rec}/{variant}/cpu",
        dataset=DATASET,
        split=SPLIT,
        recommender=rec,
        variant=variant,
        device="cpu",
        status=status,
        error=error,
        label=label,
        family="llm" if rec.startswith("llm") else "test" if rec == "noop" else "classic",
        provenance={
            "threads": {
                "threads": 2,
                "logical_cpus": 16,
                "affinity_cpus": 16,  # pin_threads' record
                "torch_num_threads": 2,
                "ort_intra_op_threads": 2,
            },
            "seed": 0,
            "data_checksum": "0f3c9a" + "0" * 58,
        },
    )


def _timed(
    cell: CellResult,
    rng: np.random.Generator,
    *,
    median_ms: float,
    n: int,
    batch_ms: float,
    throughput: float,
    qps: float,
) -> None:
    """Offline batch sweep, single-stream latency with raw samples, a server SLO figure."""
    for batch, scale in ((1, 0.25), (32, 0.8), (256, 1.0)):
        cell.add(
            "throughput_users_per_s",
            throughput * scale,
            "users/s",
            load="offline",
            n=20,
            ci95_low=throughput * scale * 0.97,
            ci95_high=throughput * scale * 1.03,
            flag="" if batch == 256 else f"batch {batch}",
        )
    offline = rng.lognormal(np.log(batch_ms), 0.05, size=40)
    cell.timings.append(
        {
            "name": "offline batch=256",
            "load": "offline",
            "unit": "batches",
            "n": 40,
            "samples_ms": offline.round(4).tolist(),
        }
    )
    samples = rng.lognormal(np.log(median_ms), 0.25, size=n)
    cell.timings.append(
        {
            "name": "single-stream",
            "load": "single-stream",
            "unit": "requests",
            "n": n,
            "samples_ms": samples.round(4).tolist(),
        }
    )
    for p in (50, 90, 99):
        flag = "n<1000: p99 unreliable" if p == 99 and n < 1000 else ""
        value = float(np.percentile(samples, p))
        cell.add(
            f"latency_p{p}_ms",
            value,
            "ms",
            load="single-stream",
            n=n,
            ci95_low=value * 0.95,
            ci95_high=value * 1.05,
            flag=flag,
        )
    cell.add("max_qps_at_slo", qps, "requests/s", load="server", n=1000)


def make_run(run_id: str = "20260801-quick-sample", seed: int = 0) -> RunResult:
    rng = np.random.default_rng(seed)
    cells = []

    pop = _cell("pop", "none")
    pop.add("fit_s", 0.012, "s", n=1)
    pop.add("ndcg@10", 0.1532, "", n=943)
    pop.add("recall@10", 0.1021, "", n=943)
    _timed(pop, rng, median_ms=0.21, n=600, batch_ms=4.0, throughput=60000.0, qps=2500.0)
    pop.add("peak_rss_bytes", 18_500_000, "bytes", n=120)
    pop.add("footprint_bytes", 13_456, "bytes")
    pop.add("flops_per_rec", 3_364.0, "flops", label="estimated")
    cells.append(pop)

    ease = _cell("ease", "none")
    ease.add("fit_s", 1.84, "s", n=1)
    ease.add("ndcg@10", 0.3412, "", n=943)
    ease.add("recall@10", 0.2731, "", n=943)
    _timed(ease, rng, median_ms=0.95, n=1500, batch_ms=30.0, throughput=8200.0, qps=900.0)
    ease.add("peak_rss_bytes", 61_000_000, "bytes", n=300)
    ease.add("footprint_bytes", 11_316_496, "bytes")
    ease.add("flops_per_rec", 2 * 85 * 1682.0, "flops", label="estimated")
    ease.add("bytes_per_rec", 85 * 1682 * 4.0, "bytes", label="estimated")
    ease.add("energy_j_per_rec", 0.0021, "J", label="estimated")
    cells.append(ease)

    knn = _cell("itemknn", "none")
    knn.add("fit_s", 0.41, "s", n=1)
    knn.add("ndcg@10", 0.2876, "", n=943)
    knn.add("recall@10", 0.2310, "", n=943)
    _timed(knn, rng, median_ms=0.7, n=1200, batch_ms=22.0, throughput=11000.0, qps=1100.0)
    knn.add("peak_rss_bytes", 44_000_000, "bytes", n=250)
    knn.add("footprint_bytes", 5_400_000, "bytes")
    cells.append(knn)

    tt32 = _cell("llm-two-tower", "fp32")
    tt32.add("fit_s", 2.1, "s", n=1)
    tt32.add("encode_items_s", 38.5, "s", n=1)
    tt32.add("ndcg@10", 0.1398, "", n=943)
    tt32.add("recall@10", 0.0987, "", n=943)
    _timed(tt32, rng, median_ms=24.0, n=300, batch_ms=1700.0, throughput=150.0, qps=35.0)
    tt32.add("peak_rss_bytes", 420_000_000, "bytes", n=900)
    tt32.add("footprint_bytes", 90_900_000, "bytes")
    tt32.add("flops_per_rec", 0.5e9, "flops", label="estimated")
    tt32.add("bytes_per_rec", 9.1e7 / 64, "bytes", label="estimated")
    cells.append(tt32)

    tt8 = _cell("llm-two-tower", "onnx-int8")
    tt8.add("fit_s", 2.0, "s", n=1)
    tt8.add("encode_items_s", 15.2, "s", n=1)
    tt8.add("prep_s", 21.7, "s", n=1)
    tt8.add("ndcg@10", 0.1381, "", n=943)
    tt8.add("recall@10", 0.0975, "", n=943)
    _timed(tt8, rng, median_ms=9.5, n=300, batch_ms=980.0, throughput=260.0, qps=70.0)
    tt8.add("peak_rss_bytes", 260_000_000, "bytes", n=700)
    tt8.add("footprint_bytes", 23_000_000, "bytes")
    tt8.add("flops_per_rec", 0.5e9, "flops", label="estimated")
    tt8.add("quality_retained_vs_fp32", 0.1381 / 0.1398, "ratio")
    tt8.add("energy_j_per_rec", 0.31, "J", label="measured")
    cells.append(tt8)

    pair = _cell("llm-pairwise", "fp32", label="cost-only")
    pair.add("fit_s", 55.0, "s", n=1)
    _timed(pair, rng, median_ms=120.0, n=150, batch_ms=8000.0, throughput=31.0, qps=6.0)
    pair.add("peak_rss_bytes", 510_000_000, "bytes", n=800)
    pair.add("footprint_bytes", 438_000_000, "bytes")
    cells.append(pair)

    cells.append(
        _cell(
            "llm-rerank",
            "fp32",
            status="failed",
            error="MemoryError: cross-encoder batch of 4096 pairs did not fit; lower rerank_batch",
        )
    )

    gated = _cell(
        "llm-two-tower",
        "int8",
        status="gated",
        error="ndcg@10 0.0512 is 36.6% of fp32's 0.1398, below the 95% quality gate: its cost does not count",
    )
    gated.add("ndcg@10", 0.0512, "", n=943)
    gated.add("recall@10", 0.0311, "", n=943)
    _timed(gated, rng, median_ms=30.0, n=300, batch_ms=2400.0, throughput=105.0, qps=25.0)
    gated.add("footprint_bytes", 32_000_000, "bytes")
    cells.append(gated)

    provenance = {
        "start_time_utc": "2026-08-01T10:00:00+00:00",
        "code": {"commit": "3f2a9c1d0b7e4a6f8c2d1e0f9a8b7c6d5e4f3a2b", "dirty": False, "branch": "main"},
        "packages": {"recbench": "0.1.0", "torch": "2.13.0+cpu", "onnxruntime": "1.32.0", "numpy": "2.4.6"},
        "python": {"version": "3.11.7", "implementation": "CPython"},
        "machine": {
            "cpu_model": "Intel(R) Xeon(R) Platinum 8488C",
            "physical_cores": 2,
            "logical_cores": 4,
            "usable_cores": 2,
            "memory_total_bytes": 8 * 2**30,
            "gpus": [],
            "machine_fingerprint": "a0a16bcebb34abae",
        },
    }
    return RunResult(
        run_id=run_id,
        scenario={"name": "quick", "settings": {"seed": 0, "k": 10, "threads": 2}},
        provenance=provenance,
        cells=cells,
        created_at="2026-08-01T10:00:00+00:00",
        machine={"peak_gemm": {"gflops": 150.0}, "memory_bandwidth": {"gbs": 12.0}, "threads": 2},
    )


def tiny_split(n_users: int = 30, n_items: int = 40, seed: int = 0) -> Split:
    """A small dataset with real-looking titles, for hosted-prompt token counting."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users, dtype=np.int32), 8)
    items = rng.integers(0, n_items, size=len(users)).astype(np.int32)
    ts = np.arange(len(users), dtype=np.int64)
    inter = Interactions(users, items, np.ones(len(users), dtype=np.float32), ts)
    words = ["Story", "Heat", "Night", "Return", "Empire", "River", "Ghost", "Summer", "City", "Dream"]
    titles = [f"The {words[i % 10]} of {words[(i * 3 + 1) % 10]} {i}" for i in range(n_items)]
    text = ItemText(
        titles=titles,
        years=np.full(n_items, 1995, dtype=np.int32),
        genres=[("Drama", "Comedy") if i % 2 else ("Action",) for i in range(n_items)],
    )
    ds = Dataset("tiny", inter, n_users, n_items, text, np.arange(n_users), np.arange(n_items))
    empty = inter.subset(np.zeros(len(users), dtype=bool))
    return Split("random-8-1-1", seed, ds, inter, empty, empty)


def test_sample_run_round_trips_through_the_results_contract(tmp_path):
    from bench import results

    run = make_run()
    results.write(run, tmp_path)
    back = results.load(tmp_path)
    assert [c.cell for c in back.cells] == [c.cell for c in run.cells]
    assert {c.status for c in back.cells} == {"ok", "failed", "gated"}
    assert back.cell(run.cells[1].cell).timings[1]["samples_ms"] == run.cells[1].timings[1]["samples_ms"]
