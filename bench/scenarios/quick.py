"""The default: ML-100K random-8-1-1, every classic recommender and the zero-shot MiniLM two-tower (fp32, onnx-int8)."""

from bench.scenario import CellSpec, Scenario, Settings

DATASET, SPLIT = "ml-100k", "random-8-1-1"
CLASSIC = ["pop", "itemknn", "userknn", "biasedmf", "ease", "ials"]
# the server-load SLO search is the slowest load; run it where the comparison needs it
WITH_SERVER = {"ease"}

cells = [
    CellSpec(
        DATASET,
        SPLIT,
        name,
        loads=("offline", "single-stream", "server") if name in WITH_SERVER else ("offline", "single-stream"),
    )
    for name in CLASSIC
]
# a MiniLM forward is ~1.6 GFLOP per profile: batch 256 would add a minute per cell and say nothing batch 32 does not
cells += [
    CellSpec(
        DATASET,
        SPLIT,
        "llm-two-tower",
        variant=v,
        params={"model": "minilm", "mode": "zero-shot"},
        loads=("offline", "single-stream", "server"),
        batch_sizes=(1, 32),
    )
    for v in ("fp32", "onnx-int8")
]
# the harness's own per-call cost, to set beside the cheapest real cell
cells += [CellSpec(DATASET, SPLIT, "noop", loads=("single-stream",))]

SCENARIO = Scenario(
    name="quick",
    description=__doc__,
    cells=tuple(cells),
    settings=Settings(
        seed=0,
        threads=2,
        batch_sizes=(1, 32, 256),
        offline_min_s=0.5,
        offline_min_batches=3,
        stream_min_count=200,
        stream_min_s=1.0,
        stream_max_s=4.0,
        server_budget_s=12.0,
        server_requests=200,
        slo_ms=100.0,
    ),
)
