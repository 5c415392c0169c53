"""GPU: two-tower and rerank under fp32, fp16, bf16 and ONNX Runtime CUDA, and EASE, on CUDA (skips without a GPU).

ML-100K, random-8-1-1. On the GPU (device cuda):
- llm-two-tower (real all-MiniLM-L6-v2, zero-shot) and llm-rerank (EASE retrieves 50 candidates on the CPU, the
  MiniLM cross-encoder re-ranks them on the GPU) under fp32, fp16, bf16 (PyTorch eager) and onnx (ONNX Runtime's
  CUDAExecutionProvider: needs `onnxruntime-gpu` in place of `onnxruntime`; without it those cells fail with that
  one line and the others run);
- EASE with device="cuda" (the closed form and the scoring in torch on the GPU), beside EASE on the CPU as the
  reference.
Quality is measured as everywhere (full ranking); timings synchronise CUDA around each timed call.
GPU cells are priced only with --instance NAME (which GPU instance this machine is); without it their cost rows
say so.

Sized for one 10-minute GPU window (scripts/gpu_check.sh runs it): offline and single-stream loads only (no
server-load search), short stop rules. On a machine without CUDA, `recbench run gpu` prints one line saying it
skipped and exits 0.
"""

from bench.scenario import CellSpec, Scenario, Settings, SkipScenario

DATASET, SPLIT = "ml-100k", "random-8-1-1"
VARIANTS = ("fp32", "fp16", "bf16", "onnx")
LOADS = ("offline", "single-stream")
TWO_TOWER = {"model": "minilm", "mode": "zero-shot"}
RERANK = {"model": "minilm", "retriever": "ease", "n_candidates": 50}


def cells() -> list[CellSpec]:
    out = [
        CellSpec(DATASET, SPLIT, "llm-two-tower", variant=v, device="cuda", params=dict(TWO_TOWER), loads=LOADS)
        for v in VARIANTS
    ]
    out += [
        CellSpec(DATASET, SPLIT, "llm-rerank", variant=v, device="cuda", params=dict(RERANK), loads=LOADS)
        for v in VARIANTS
    ]
    out += [
        CellSpec(DATASET, SPLIT, "ease", device="cuda", loads=LOADS),
        CellSpec(DATASET, SPLIT, "ease", device="cpu", loads=LOADS),
    ]
    return out


# adaptive offline sweep: a GPU needs far larger batches than a CPU to fill (fixed 1/32/256 measured launch
# overhead on an H100); each cell grows its batch until the gain is under 5% or 40 s of sweeping pass
SETTINGS = Settings(
    seed=0,
    threads=2,
    offline_sweep="adaptive",
    sweep_time_limit_s=40.0,
    offline_min_s=0.5,
    offline_min_batches=3,
    stream_min_count=200,
    stream_min_s=1.0,
    stream_max_s=3.0,
    warmup_count=5,
    cell_timeout_s=240.0,
)


def build() -> Scenario:
    from bench.variants.device import cuda_available

    if not cuda_available():
        raise SkipScenario(
            "scenario gpu needs a CUDA GPU and this machine has none (torch.cuda.is_available() is "
            "False); nothing was run: run it on a GPU machine, e.g. scripts/gpu_check.sh"
        )
    return Scenario(name="gpu", description=__doc__, cells=tuple(cells()), settings=SETTINGS)
