"""Model size: cost-only encoders of 22.7M-335M parameters (fp32, onnx-int8), a fitted cost-vs-parameters law with 1B/7B projections, and a GPT-2-small explanation step.

Every transformer here has random weights with the real architecture (bench.models "...-cost-only"): the cost is
real, the quality meaningless, so every row is labelled cost-only and quality is never computed.

- Encoders: llm-two-tower (zero-shot) with each encoder as both towers, under fp32 (PyTorch eager) and onnx-int8
  (ONNX Runtime dynamic int8). Figures per size: item-encoding seconds (one-time), offline throughput and
  $ per 1k recommendations, single-user latency, peak memory, footprint. bench.sizes fits y = a (N/1e8)^b per
  variant and projects 1B and 7B parameters (labelled projected; 7B fp32 weights alone are 28 GB).
- Decoder: llm-explain, EASE retrieves the top 10, then the GPT-2 small architecture (124M) generates a fixed
  32 new tokens per list (greedy, KV cache) from a prompt with the user's 5 most recent liked titles and the 10
  recommended titles: time to first token, time per output token, tokens/s and $ per 1k recommendations with
  explanations.

Kept to about 10-15 minutes on 2 cores (more the first time, when the random-weight models are built and
exported to ONNX into the model cache): a synthetic catalogue of 300 items (the one-time item encoding of ML-100K's
1,682 items alone takes minutes on BERT-large), item texts as titles only, user profiles of the 5 most recent
liked titles cut at 64 tokens, offline batch sizes 1 and 8, and short loads. Requests are drawn from the
synthetic set's test users (seeded).
"""

from bench.scenario import CellSpec, Scenario, Settings

DATASET = "synthetic:users=400,items=300,interactions=8000,seed=0"
SPLIT = "random-8-1-1"
ENCODERS = {"minilm-l6": "minilm-cost-only", "bert-base": "bert-base-cost-only", "bert-large": "bert-large-cost-only"}
VARIANTS = ("fp32", "onnx-int8")
LOADS = ("offline", "single-stream")
#: the same request shape for every size: only the model changes within a variant
TWO_TOWER = {"mode": "zero-shot", "item_fields": "title", "profile_len": 5, "max_length": 64, "batch_size": 64}
EXPLAIN = {
    "model": "gpt2-small-cost-only",
    "retriever": "ease",
    "new_tokens": 32,
    "list_titles": 10,
    "profile_len": 5,
    "max_prompt_tokens": 256,
    "batch_size": 8,
    "ttft_requests": 20,
    "ttft_min_requests": 10,
    "ttft_max_s": 40.0,
}

cells = [
    CellSpec(
        DATASET, SPLIT, "llm-two-tower", variant=variant, params={"model": model, **TWO_TOWER}, tag=tag, loads=LOADS
    )
    for variant in VARIANTS
    for tag, model in ENCODERS.items()
]
cells.append(
    CellSpec(DATASET, SPLIT, "llm-explain", variant="fp32", params=dict(EXPLAIN), tag="gpt2-small", loads=LOADS)
)

SCENARIO = Scenario(
    name="llm_sizes",
    description=__doc__,
    cells=tuple(cells),
    settings=Settings(
        seed=0,
        threads=2,
        k=10,
        ks=(10,),
        batch_sizes=(1, 8),
        offline_min_s=1.0,
        offline_min_batches=3,
        stream_min_count=20,
        stream_min_s=2.0,
        stream_max_s=6.0,
        warmup_count=2,
        cell_timeout_s=900.0,
    ),
)
