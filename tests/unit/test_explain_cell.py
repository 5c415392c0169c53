"""A cost-only llm-explain cell end to end (in process): no quality, TTFT rows from the recommender's own timings,
every measured row labelled cost-only, and the derived figures a run adds after the cells."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from bench.cell import run_cell  # noqa: E402
from bench.scenario import CellSpec, Settings  # noqa: E402

TINY = "synthetic:users=40,items=30,interactions=600,seed=3"
NEW_TOKENS = 4


@pytest.fixture(scope="module")
def cell(tmp_path_factory, model_cache_dir):
    from tests.support.models import build_tiny_model

    torch.set_num_threads(1)
    model = build_tiny_model(tmp_path_factory.mktemp("gpt2") / "tiny-gpt2", kind="gpt2", name="tiny-gpt2")
    spec = CellSpec(
        TINY,
        "random-8-1-1",
        "llm-explain",
        variant="fp32",
        tag="tiny",
        params={
            "model": str(model),
            "cache_dir": str(model_cache_dir),
            "retriever": "pop",
            "new_tokens": NEW_TOKENS,
            "list_titles": 3,
            "ttft_requests": 6,
            "ttft_min_requests": 6,
            "warmup_requests": 1,
        },
        loads=("offline", "single-stream"),
    )
    settings = Settings(
        threads=1,
        k=5,
        ks=(5,),
        batch_sizes=(1, 4),
        offline_min_s=0.01,
        offline_min_batches=2,
        stream_min_count=5,
        stream_min_s=0.01,
        stream_max_s=1.0,
        warmup_count=1,
    )
    return run_cell(spec, settings)


def test_a_random_weight_decoder_cell_is_cost_only_and_has_no_quality(cell):
    assert cell.label == "cost-only"
    assert cell.metric("ndcg@5") is None and cell.metric("recall@5") is None
    assert cell.metric("throughput_users_per_s", "offline") is not None
    measured_like = [m for m in cell.metrics if m.label not in ("estimated", "projected")]
    assert measured_like and all(m.label == "cost-only" for m in measured_like)


def test_ttft_rows_carry_n_and_intervals_and_sit_below_the_whole_request(cell):
    for p in ("p50", "p90", "p99", "mean"):
        row = cell.metric(f"ttft_{p}_ms", "single-stream")
        assert row is not None and row.n == 6 and row.ci95_low <= row.value <= row.ci95_high
    assert cell.metric("ttft_p99_ms").flag  # 6 samples cannot carry a p99: flagged, not hidden
    assert cell.metric("ttft_p50_ms").value <= cell.metric("explain_request_p50_ms").value
    assert cell.metric("time_per_output_token_p50_ms") is not None
    assert cell.metric("output_tokens_per_s", "single-stream").n == 6
    timing = next(t for t in cell.timings if t["load"] == "single-stream:ttft")
    assert len(timing["samples_ms"]) == 6
    # the latency CDF reads plain single-stream timings only: the request latency, never TTFT
    assert any(t["load"] == "single-stream" for t in cell.timings)


def test_generation_figures_and_flops_are_recorded(cell):
    assert cell.metric("new_tokens_per_rec").value == NEW_TOKENS
    assert cell.metric("flops_per_rec").value > 0 and cell.metric("flops_per_rec").label == "estimated"
    from bench.analysis.sizes import add_size_figures
    from bench.results import RunResult

    run = RunResult(run_id="r", scenario={}, provenance={}, cells=[cell])
    add_size_figures(run)
    best = max(m.value for m in cell.metrics if m.metric == "throughput_users_per_s" and m.load == "offline")
    assert cell.metric("output_tokens_per_s", "offline").value == pytest.approx(best * NEW_TOKENS)
