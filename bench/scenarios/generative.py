"""Decoders as recommenders on ML-100K: decoder LLMs ranking EASE's candidates (cost-only, 0.1B-1.5B; pointwise, shared-prefix, listwise) and the next-item decoder trained here (llm-generative).

Every decoder is built from its public config with random weights (bench.recommenders.generative.archs): the cost
is real, the ranking meaningless, so every figure is labelled cost-only and no quality is computed. Prompts are
real: each ML-100K user's last 10 TRAIN titles and EASE's top-N candidate titles, tokenised with o200k_base
(the model reads those ids modulo its vocabulary).

- Size curve: shared-prefix ranking of N = 20 candidates by SmolLM-135M, SmolLM2-360M, Qwen2.5-0.5B and
  Qwen2.5-1.5B (one Llama-style family, fitted), and GPT-2 / GPT-2 medium (their own family), fp32;
  7B projected from the fit.
- Candidates: Qwen2.5-0.5B shared-prefix at N = 20, 50, 100; pointwise (one full prompt per candidate) at N = 20;
  listwise (one prompt with all N, generating a 10-number list) at N = 20 (N = 50 took 4 minutes; left out to keep
  the scenario within 30 minutes).
- Precision: Qwen2.5-0.5B shared-prefix at N = 50 in bf16 and int8 (PyTorch dynamic quantisation).
- Shared-prefix against pointwise, on the same (user, candidate) pairs in every shared-prefix cell: score
  agreement and time ratio; on all 50 candidates of one user at N = 50 for Qwen2.5-0.5B fp32, one round (10
  candidates elsewhere, 4 for 1.5B, all 20 for the models below 0.5B).
- Qwen2.5-7B in fp32 needs ~28 GiB for its weights: the memory pre-check refuses it at once on a smaller
  machine, with the figure (the cell fails by design; a 120 s timeout bounds it on a machine that could hold it).
- EASE alone (the retriever) for reference: quality, throughput, cost.
- llm-generative, the next-item decoder trained here (real quality): temporal-loo fp32 and random-8-1-1 under
  fp32, int8, onnx and onnx-int8, beside Pop and EASE on both splits.

Request counts are small for big models: each decoder cell serves one user per request (offline batch 1): 2
untimed requests, then at least 3 timed requests and 2 s for the models below 0.5B, at least 2 and 8 s for the
others (the offline load stops at 4 x its minimum time, at least 10 s, so a slower request is timed once; pointwise
asks for 1); then 3 single-stream requests (2 from 0.5B up) time the phases, and the comparison runs
2 interleaved rounds (1 for 1.5B and the N = 50 acceptance cell) on the warm model.
"""

from typing import Any

from bench.scenario import CellSpec, Scenario, Settings

DATASET, SPLIT = "ml-100k", "random-8-1-1"
RANK = "llm-decoder-rank"
#: the request every decoder cell serves, apart from model, mode and N
COMMON = {"retriever": "ease", "history_len": 10, "list_k": 10, "batch_size": 128}
LOADS = ("offline",)
SMALL = {"offline_min_batches": 3, "offline_min_s": 2.0}  # up to 0.5B: a few more requests
#: 0.5B and up: at least 2 timed requests and 8 s (the load stops at 32 s, so a slower request is timed once)
LARGE = {"offline_min_batches": 2, "offline_min_s": 8.0}


def decoder(
    model: str, mode: str, n: int, variant: str = "fp32", settings: dict[str, Any] | None = None, **extra: Any
) -> CellSpec:
    # cells with their own (larger-model) settings time 2 single-stream requests, the small ones 3 (the default)
    params = {
        "model": model,
        "mode": mode,
        "n_candidates": n,
        **COMMON,
        **({"timed_requests": 2} if settings is not None else {}),
        **extra,
    }
    return CellSpec(
        DATASET,
        SPLIT,
        RANK,
        variant=variant,
        params=params,
        tag=f"{model} {mode} n={n}",
        loads=LOADS,
        batch_sizes=(1,),
        settings=dict(settings or SMALL),
    )


# most important first (a run cut short keeps them): the retriever, the 7B refusal, the acceptance comparison,
# then the size curve, the modes, the precisions
cells = [CellSpec(DATASET, SPLIT, "ease", loads=("offline", "single-stream"))]
# 7B: refused by the memory pre-check where fp32 weights cannot fit
cells += [decoder("qwen2.5-7b", "shared-prefix", 20, settings={**LARGE, "cell_timeout_s": 120.0})]
# pointwise against shared-prefix on all 50 candidates of one user
cells += [decoder("qwen2.5-0.5b", "shared-prefix", 50, settings=LARGE, compare_rounds=1)]
# the size curve: shared-prefix at N = 20, fp32; a Llama-style family and GPT-2
cells += [decoder(m, "shared-prefix", 20) for m in ("smollm-135m", "smollm2-360m")]
cells += [decoder("qwen2.5-0.5b", "shared-prefix", 20, settings=LARGE, compare_candidates=10)]
cells += [decoder("qwen2.5-1.5b", "shared-prefix", 20, settings=LARGE, compare_candidates=4, compare_rounds=1)]
cells += [decoder(m, "shared-prefix", 20) for m in ("gpt2", "gpt2-medium")]
# modes and candidates on the ~0.5B decoder
cells += [decoder("qwen2.5-0.5b", "listwise", 20, settings=LARGE)]
cells += [
    decoder(
        "qwen2.5-0.5b", "pointwise", 20, settings={"offline_min_batches": 1, "offline_min_s": 1.0}, compare_users=0
    ),
    decoder("qwen2.5-0.5b", "shared-prefix", 100, settings=LARGE, compare_candidates=10),
]
# precision
cells += [
    decoder("qwen2.5-0.5b", "shared-prefix", 50, variant=v, settings=LARGE, compare_candidates=10)
    for v in ("bf16", "int8")
]

# llm-generative (#10 item 1): a next-item decoder trained here, with real quality, beside Pop and EASE on the same
# users, on temporal-loo (its natural protocol) and random-8-1-1; fp32 before its variants (the quality gate's
# reference). One training plus its loads took 280-330 s at load 13-17.
GEN = {"train_budget_s": 300.0}
TRAINED_LOADS = ("offline", "single-stream")
# (EASE on random-8-1-1 is the retriever's cell above)
cells += [
    CellSpec(DATASET, split, name, loads=TRAINED_LOADS)
    for split, name in (("temporal-loo", "pop"), ("temporal-loo", "ease"), (SPLIT, "pop"))
]
cells += [CellSpec(DATASET, "temporal-loo", "llm-generative", variant="fp32", params=GEN, loads=TRAINED_LOADS)]
cells += [
    CellSpec(
        DATASET, SPLIT, "llm-generative", variant=v, params={**GEN, "scoring": "mean"}, tag="mean", loads=TRAINED_LOADS
    )
    for v in ("fp32", "int8", "onnx", "onnx-int8")
]

SCENARIO = Scenario(
    name="generative",
    description=__doc__,
    cells=tuple(cells),
    settings=Settings(
        seed=0,
        threads=2,
        k=10,
        ks=(10,),
        batch_sizes=(1, 32, 256),
        offline_min_s=1.0,
        offline_min_batches=3,
        stream_min_count=100,
        stream_min_s=1.0,
        stream_max_s=3.0,
        warmup_count=2,
        cell_timeout_s=900.0,
    ),
)
