"""Analytic FLOPs for the work a cell does, the machine's measured peak, and utilisation.

Conventions (all functions): a multiply-add is 2 FLOPs; only matrix products are counted (the
O(tokens x hidden) work of embeddings, layer norms, softmax, GELU, biases and residuals is below 1% of
the total for the sizes used here and is left out); FLOPs are those of the useful work, not of padding
(pass padded lengths to count what the kernels actually executed).

Transformer encoder layer (BERT), one sequence of L tokens, hidden H, intermediate I (heads only split H):
    Q, K, V projections  3 x 2 L H^2
    scores Q K^T         2 L^2 H      (summed over heads: heads x 2 L^2 (H / heads))
    weights x V          2 L^2 H
    output projection    2 L H^2
    feed-forward         2 L H I + 2 L I H
  = 8 L H^2 + 4 L^2 H + 4 L H I   per layer.  (Optional pooler: 2 H^2 per sequence.)
Decoder (GPT-2), causal with a KV cache. A token at 1-based position t attends over t positions:
    per layer: 8 H^2 + 4 H I + 4 t H   (attention scores and weighted sum over t cached keys/values)
  prefill of P tokens: sum over t = 1..P, i.e. layers x (P (8 H^2 + 4 H I) + 2 H P (P + 1));
  each decoded token at position t = P + j + 1: the per-token formula; LM head 2 H V per token whose
  logits are computed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import ConfigError
from bench.measure import _checks

if TYPE_CHECKING:  # a recommender's work description is plain data (bench.work): read by attribute only
    from bench.work import RequestWork

# ---------------------------------------------------------------- transformer configs


@dataclass(frozen=True)
class TransformerConfig:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int = 0

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "intermediate"):
            _checks.count(name, getattr(self, name), 1)
        _checks.count("vocab", self.vocab, 0)
        if self.hidden % self.heads:
            raise ConfigError(
                f"hidden size {self.hidden} is not divisible by {self.heads} heads; check the model config"
            )

    @classmethod
    def from_hf(cls, config: Any) -> TransformerConfig:
        """From a Hugging Face config (BERT-style or GPT-2-style attribute names), without importing transformers."""

        def pick(*names: str, default: Any = None) -> Any:
            for n in names:
                v = getattr(config, n, None)
                if v is not None:
                    return v
            if default is None:
                raise ConfigError(f"model config has none of {names}; pass a TransformerConfig explicitly")
            return default

        hidden = pick("hidden_size", "n_embd", "d_model")
        return cls(
            layers=pick("num_hidden_layers", "n_layer", "num_layers"),
            hidden=hidden,
            heads=pick("num_attention_heads", "n_head"),
            intermediate=pick("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden) or 4 * hidden,
            vocab=pick("vocab_size", default=0),
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _token_counts(token_counts: Sequence[int] | np.ndarray | int) -> np.ndarray:
    counts = np.atleast_1d(np.asarray(token_counts))
    if counts.size == 0:
        raise ConfigError("no token counts given; pass one count per sequence")
    if not np.issubdtype(counts.dtype, np.integer) or np.any(counts < 0):
        raise ConfigError("token counts must be non-negative integers (one per sequence); count real tokens")
    return counts.astype(np.float64)


def _encoder_layer_flops(lengths: np.ndarray, hidden: float, intermediate: float) -> np.ndarray:
    """8 L H^2 + 4 L^2 H + 4 L H I per sequence of L tokens, for one layer."""
    h, i = float(hidden), float(intermediate)
    return 8 * lengths * h * h + 4 * lengths * lengths * h + 4 * lengths * h * i


def encoder_flops(
    config: TransformerConfig, token_counts: Sequence[int] | np.ndarray | int, pooler: bool = False
) -> float:
    """FLOPs of a BERT-like encoder forward over sequences of the given real token counts (sum over them)."""
    L = _token_counts(token_counts)
    per_layer = _encoder_layer_flops(L, config.hidden, config.intermediate)
    total = config.layers * float(per_layer.sum())
    if pooler:
        total += 2 * float(config.hidden) ** 2 * L.size
    return total


def encoder_config_flops(config: Mapping[str, Any], token_counts: Sequence[int] | np.ndarray) -> float:
    """encoder_flops for an encoder described by a dict (layers, hidden, intermediate), as runtimes report it."""
    L = np.asarray(token_counts, dtype=np.float64)
    return float(config["layers"]) * float(_encoder_layer_flops(L, config["hidden"], config["intermediate"]).sum())


def decoder_token_flops(config: TransformerConfig, position: int | np.ndarray, logits: bool = True) -> np.ndarray:
    """FLOPs to process one token at 1-based `position` (it attends over `position` cached positions)."""
    t = np.asarray(position, dtype=np.float64)
    h, i = float(config.hidden), float(config.intermediate)
    flops = config.layers * (8 * h * h + 4 * h * i + 4 * t * h)
    if logits:
        if not config.vocab:
            raise ConfigError("logit FLOPs need the vocabulary size; set TransformerConfig.vocab")
        flops = flops + 2 * h * config.vocab
    return flops


def decoder_generate_flops(
    config: TransformerConfig, prompt_tokens: int, new_tokens: int, prefill_logits: str = "last"
) -> dict[str, float]:
    """FLOPs of a GPT-2-like generation: prefill of the prompt, then `new_tokens` decode steps with a KV cache.

    prefill_logits: "last" (only the last prompt position's logits, what generation needs), "all" (what a
    plain forward computes) or "none" (scoring with a separate head).
    The first new token comes from the prefill's logits; each later one costs one decode step, so
    `new_tokens` tokens need new_tokens - 1 decode steps (the last generated token is not fed back).
    """
    P = _checks.count("prompt_tokens", prompt_tokens, 1)
    G = _checks.count("new_tokens", new_tokens, 0)
    if prefill_logits not in ("last", "all", "none"):
        raise ConfigError(f"prefill_logits {prefill_logits!r} must be 'last', 'all' or 'none'")
    prefill = float(decoder_token_flops(config, np.arange(1, P + 1), logits=False).sum())
    if prefill_logits != "none":
        prefill += 2.0 * config.hidden * config.vocab * (P if prefill_logits == "all" else 1)
        if not config.vocab:
            raise ConfigError("logit FLOPs need the vocabulary size; set TransformerConfig.vocab")
    steps = max(G - 1, 0)
    decode = float(decoder_token_flops(config, P + 1 + np.arange(steps), logits=True).sum()) if steps else 0.0
    return {
        "prefill_flops": prefill,
        "decode_flops": decode,
        "total_flops": prefill + decode,
        "prompt_tokens": P,
        "new_tokens": G,
    }


def generation_flops(config: Mapping[str, Any], prompt_tokens: np.ndarray, new_tokens: int) -> np.ndarray:
    """FLOPs per request of greedy generation with a KV cache, vectorised over prompt lengths (a GPT-2-like
    decoder described by a dict: layers, hidden, intermediate, vocab).

    Prefill over P prompt tokens plus the last position's logits, then new_tokens - 1 decode steps, each with
    logits. Per token at position t: layers x (8 H^2 + 4 H I + 4 t H), logits 2 H V: decoder_generate_flops
    with prefill_logits="last", in closed form over many prompts (a test pins them equal).
    """
    p = np.asarray(prompt_tokens, dtype=np.float64)
    h, i, v, layers = (float(config[k]) for k in ("hidden", "intermediate", "vocab", "layers"))
    dense = 8 * h * h + 4 * h * i
    # sum over t = 1..P of (dense + 4 t H) = P dense + 2 H P (P + 1)
    prefill = layers * (p * dense + 2 * h * p * (p + 1)) + 2 * h * v
    steps = max(int(new_tokens) - 1, 0)
    # decode positions t = P+1 .. P+steps: sum of t = steps P + steps (steps + 1) / 2
    pos_sum = steps * p + steps * (steps + 1) / 2.0
    decode = layers * (steps * dense + 4 * h * pos_sum) + steps * 2 * h * v
    return prefill + decode


# ---------------------------------------------------------------- a recommender's described work


def work_flops(work: RequestWork) -> float:
    """FLOPs of the whole batch a RequestWork describes (its `other` model's work not included): encoder
    forwards, decoder passes, generations, plus 2 per scoring multiply-add."""
    total = 0.0
    if work.encoder_config is not None and len(work.token_counts):
        total += encoder_config_flops(work.encoder_config, work.token_counts)
    if work.decoder is not None:
        p = np.asarray(work.decoder.passes, dtype=np.float64)
        total += float(decoder_pass_flops(work.decoder.config, p[:, 0], p[:, 1], p[:, 2]).sum())
    if work.generation is not None:
        g = work.generation
        total += float(generation_flops(g.config, g.prompt_tokens, g.new_tokens).sum())
    return total + 2.0 * work.scoring_macs


def request_flops(work: RequestWork) -> float:
    """Analytic FLOPs of one request (mean over the batch described), the `other` model's share included."""
    if work.generation is not None and work.encoder_config is None and work.decoder is None:
        g = work.generation  # one generation per request: the mean over the prompts
        own = float(generation_flops(g.config, g.prompt_tokens, g.new_tokens).mean()) + 2.0 * work.scoring_macs / max(
            work.n_requests, 1
        )
    else:
        own = work_flops(work) / max(work.n_requests, 1)
    return own + (request_flops(work.other) if work.other is not None else 0.0)


# ---------------------------------------------------------------- collaborative filtering scoring


def dense_scoring_flops(n_users: int, factors: int, n_items: int) -> float:
    """User factors (n_users x factors) times item factors^T: MF / iALS / two-tower dot-product scoring."""
    return 2.0 * n_users * factors * n_items


def sparse_dense_flops(nnz: int, n_cols: int) -> float:
    """Sparse rows with `nnz` non-zeros times a dense (rows x n_cols) matrix: EASE's X_u B, or ItemKNN with a
    dense item-item similarity (each stored interaction adds one row of n_cols)."""
    return 2.0 * nnz * n_cols


def spgemm_flops(a: Any, b: Any) -> float:
    """Exact FLOPs of sparse A @ sparse B (scipy CSR/CSC/COO): 2 x sum over A's non-zeros (i, k) of nnz(B[k, :]).
    For UserKNN's user-user similarity X_u X^T, pass b = X.T."""
    a_coo, b_csr = a.tocoo(), b.tocsr()
    if a_coo.shape[1] != b_csr.shape[0]:
        raise ConfigError(f"spgemm_flops: shapes {a_coo.shape} and {b_csr.shape} do not multiply")
    row_nnz = np.diff(b_csr.indptr)
    return 2.0 * float(row_nnz[a_coo.col].sum())


# ---------------------------------------------------------------- machine peaks


def _gemm_rates(run: Any, size: int, seconds: float) -> list[float]:
    """GFLOP/s of repeated n x n GEMMs (after one untimed call), for at least `seconds` and 3 reps."""
    run()  # warm: allocations, thread pool start-up, kernel selection
    flops = 2.0 * size**3
    rates: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(rates) < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter_ns()
        run()
        rates.append(flops / (time.perf_counter_ns() - t0))  # FLOP per ns = GFLOP/s
        if len(rates) >= 1000:
            break
    return rates


def measure_peak_flops(
    threads: int | None = None,
    dtype: Any = np.float32,
    size: int = 2048,
    seconds: float = 1.0,
    backends: Sequence[str] = ("numpy", "torch"),
) -> dict[str, Any]:
    """The machine's sustained GEMM rate: square `size` GEMMs in each backend for `seconds`.

    `gflops` is the best backend's MEDIAN rep (a rate the machine sustains, robust to one lucky rep);
    `gflops_max` the single best rep. Call it at run start, with the cell's thread count, and record it.
    torch is imported only when "torch" is among the backends and importable.
    """
    size = _checks.count("size", size, 16)
    seconds = _checks.positive("seconds", seconds)
    if threads is not None:
        threads = _checks.count("threads", threads, 1)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ConfigError(f"peak FLOP/s needs a floating dtype, got {dtype}; use float32 or float64")
    per_backend: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    if "numpy" in backends:
        from bench.measure.threads import blas_limits  # noqa: PLC0415

        out = np.empty_like(a)
        with blas_limits(threads):
            rates = _gemm_rates(lambda: np.matmul(a, b, out=out), size, seconds)
        per_backend["numpy"] = _rate_summary(rates)
    if "torch" in backends:
        try:
            import torch  # noqa: PLC0415 - optional, heavy
        except ImportError:
            per_backend["torch"] = {"available": False, "reason": "torch not installed"}
        else:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            tout = torch.empty_like(ta)
            old = torch.get_num_threads()
            try:
                if threads is not None:
                    torch.set_num_threads(threads)
                with torch.inference_mode():
                    rates = _gemm_rates(lambda: torch.matmul(ta, tb, out=tout), size, seconds)
            finally:
                torch.set_num_threads(old)
            per_backend["torch"] = _rate_summary(rates)
    measured = {k: v for k, v in per_backend.items() if v.get("available", True)}
    if not measured:
        raise ConfigError(f"no GEMM backend measured among {list(backends)}; include 'numpy'")
    best = max(measured, key=lambda k: measured[k]["gflops_median"])
    return {
        "gflops": measured[best]["gflops_median"],
        "gflops_max": max(v["gflops_max"] for v in measured.values()),
        "backend": best,
        "backends": per_backend,
        "dtype": str(dtype),
        "size": size,
        "threads": threads,
        "label": "measured",
        "method": f"{size}x{size} {dtype} GEMM, 2n^3 FLOPs per call, median of reps",
    }


INT8_RUNTIMES = ("onnxruntime", "torch")


def measure_int8_peak(
    threads: int | None = None, size: int = 1024, seconds: float = 0.5, runtimes: Sequence[str] = INT8_RUNTIMES
) -> dict[str, Any]:
    """The int8 GEMM rate of the runtimes the int8 variants use, in GOP/s (a multiply-add = 2 ops).

    onnxruntime: a MatMulInteger node (uint8 activations x int8 weights -> int32), the kernel ONNX Runtime's
    quantised graphs (dynamic and static QDQ) run their linear layers with. torch: a dynamically quantised
    Linear (fbgemm/onednn: quantise the activations, int8 GEMM, dequantise), what the `int8` variant runs.
    Each entry is the median of timed reps; `by_runtime[name]["gops"]` is what an int8 cell of that runtime
    is measured against. Runtimes that are not installed are recorded as unavailable.
    """
    size = _checks.count("size", size, 16)
    seconds = _checks.positive("seconds", seconds)
    if threads is not None:
        threads = _checks.count("threads", threads, 1)
    out: dict[str, Any] = {}
    if "onnxruntime" in runtimes:
        out["onnxruntime"] = _ort_int8_rate(size, seconds, threads)
    if "torch" in runtimes:
        out["torch"] = _torch_int8_rate(size, seconds, threads)
    measured = {k: v for k, v in out.items() if v.get("available", True)}
    return {
        "by_runtime": out,
        "gops": max((v["gops"] for v in measured.values()), default=None),
        "size": size,
        "threads": threads,
        "label": "measured",
        "method": f"{size}x{size} int8 GEMM, 2n^3 ops per call, median of reps",
    }


def _ort_int8_rate(size: int, seconds: float, threads: int | None) -> dict[str, Any]:
    try:
        import onnx  # noqa: PLC0415
        import onnxruntime as ort  # noqa: PLC0415
        from onnx import TensorProto, helper  # noqa: PLC0415
    except ImportError as exc:
        return {"available": False, "reason": f"{exc.name} not installed"}
    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, size=(size, size), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
        "int8_gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])],
        [helper.make_tensor("w", TensorProto.INT8, [size, size], weights.tobytes(), raw=True)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or 0
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
    rates = _gemm_rates(lambda: session.run(None, {"a": a}), size, seconds)
    return {
        **_rate_summary_ops(rates),
        "kernel": "MatMulInteger u8 x s8 -> s32",
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
    }


def _torch_int8_rate(size: int, seconds: float, threads: int | None) -> dict[str, Any]:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return {"available": False, "reason": "torch not installed"}
    import warnings  # noqa: PLC0415

    old = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():  # quantize_dynamic is deprecated in 2.x but is what the variant runs
            warnings.simplefilter("ignore")
            linear = torch.ao.quantization.quantize_dynamic(
                torch.nn.Sequential(torch.nn.Linear(size, size)), {torch.nn.Linear}, dtype=torch.qint8
            )
        x = torch.from_numpy(np.random.default_rng(1).standard_normal((size, size)).astype(np.float32))
        with torch.inference_mode():
            rates = _gemm_rates(lambda: linear(x), size, seconds)
    finally:
        torch.set_num_threads(old)
    return {
        **_rate_summary_ops(rates),
        "kernel": f"dynamic quantised Linear ({torch.backends.quantized.engine})",
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def measure_half_peak_cuda(size: int = 4096, seconds: float = 0.5) -> dict[str, Any]:
    """fp16 and bf16 GEMM rates on the first CUDA device (tensor cores where present), or why not measured."""
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return {"available": False, "reason": "torch not installed"}
    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA device"}
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "size": size, "label": "measured"}
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a = torch.randn(size, size, device="cuda", dtype=dtype)
        b = torch.randn(size, size, device="cuda", dtype=dtype)

        def run(a: Any = a, b: Any = b) -> None:  # bound now: each dtype times its own operands
            torch.matmul(a, b)
            torch.cuda.synchronize()

        out[name] = _rate_summary(_gemm_rates(run, size, seconds))
    out["gflops"] = out["fp16"]["gflops_median"]
    return out


def _rate_summary_ops(rates: list[float]) -> dict[str, Any]:
    r = np.asarray(rates)
    return {"gops": float(np.median(r)), "gops_max": float(r.max()), "reps": int(r.size)}


def _rate_summary(rates: list[float]) -> dict[str, Any]:
    r = np.asarray(rates)
    return {"gflops_median": float(np.median(r)), "gflops_max": float(r.max()), "reps": int(r.size)}


def measure_memory_bandwidth_gbs(
    size_mb: int = 256, seconds: float = 1.0, threads: int | None = None, backends: Sequence[str] = ("numpy", "torch")
) -> dict[str, Any]:
    """Sustained memory bandwidth from large-array copy and STREAM-style triad (arrays far beyond cache).

    copy moves 2 x nbytes (read a, write b); triad a = b + s*c is counted as STREAM counts it, 3 x nbytes.
    numpy kernels run on one thread (a single-core figure); torch uses `threads` threads (or its default).
    `gbs` is the best backend's median copy rate (10^9 bytes/s).
    """
    size_mb = _checks.count("size_mb", size_mb, 1)
    seconds = _checks.positive("seconds", seconds)
    n = size_mb * 1024 * 1024 // 8
    result: dict[str, Any] = {}
    b = np.random.default_rng(0).random(n)
    c = np.random.default_rng(1).random(n)
    a = np.empty_like(b)
    nbytes = b.nbytes
    if "numpy" in backends:
        tmp = np.empty_like(b)

        def triad_np() -> None:
            np.multiply(c, 3.0, out=tmp)
            np.add(b, tmp, out=a)

        result["numpy"] = {
            "copy_gbs": _bandwidth(lambda: np.copyto(a, b), 2 * nbytes, seconds),
            "triad_gbs": _bandwidth(triad_np, 3 * nbytes, seconds),
            "threads": 1,
            "note": "numpy triad runs as two passes; counted as STREAM's 3 x nbytes",
        }
        del tmp
    if "torch" in backends:
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            result["torch"] = {"available": False, "reason": "torch not installed"}
        else:
            old = torch.get_num_threads()
            try:
                if threads is not None:
                    torch.set_num_threads(_checks.count("threads", threads, 1))
                ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
                result["torch"] = {
                    "copy_gbs": _bandwidth(lambda: ta.copy_(tb), 2 * nbytes, seconds),
                    "triad_gbs": _bandwidth(lambda: torch.add(tb, tc, alpha=3.0, out=ta), 3 * nbytes, seconds),
                    "threads": torch.get_num_threads(),
                }
            finally:
                torch.set_num_threads(old)
    measured = {k: v for k, v in result.items() if "copy_gbs" in v}
    best = max(measured, key=lambda k: measured[k]["copy_gbs"])
    return {
        "gbs": measured[best]["copy_gbs"],
        "backend": best,
        "backends": result,
        "array_mb": size_mb,
        "label": "measured",
        "method": "median of timed large-array copy (2 x bytes) and triad (3 x bytes)",
    }


def _bandwidth(run: Any, bytes_moved: int, seconds: float) -> float:
    run()  # first touch: page faults are not bandwidth
    rates: list[float] = []
    t_end = time.perf_counter() + seconds / 2
    while len(rates) < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter_ns()
        run()
        rates.append(bytes_moved / (time.perf_counter_ns() - t0))  # bytes per ns = GB/s
    return float(np.median(rates))


def utilisation(achieved_flops_per_s: float, peak: float | dict[str, Any]) -> float:
    """Percent of peak. `peak` is FLOP/s, or the dict measure_peak_flops returned (its `gflops`)."""
    peak_flops = float(peak["gflops"]) * 1e9 if isinstance(peak, dict) else float(peak)
    _checks.positive("peak FLOP/s", peak_flops, "measure it with measure_peak_flops() first")
    _checks.non_negative("achieved FLOP/s", achieved_flops_per_s)
    return 100.0 * float(achieved_flops_per_s) / peak_flops


# ---------------------------------------------------------------- decoder passes (Llama / Qwen2 / GPT-2)


def decoder_pass_flops(
    config: Mapping[str, Any], new_tokens: Any, past_tokens: Any = 0, logits_tokens: Any = 1
) -> np.ndarray:
    """FLOPs of decoder forward passes, one value per pass (vectorised over array arguments).

    A pass feeds `new_tokens` tokens after `past_tokens` already in the KV cache and computes logits at
    `logits_tokens` positions. `config`: layers, hidden H, heads, kv_heads (grouped-query attention; = heads for
    GPT-2), intermediate I, vocab V, gated_mlp (Llama/Qwen2's SiLU gate: three H x I matrices; GPT-2: two).
    Per token at 1-based position t, per layer:
        Q and O projections 4 H^2, K and V projections 4 H (kv_heads x H / heads),
        MLP 6 H I (gated) or 4 H I, attention scores and weighted sum 4 t H (every query head reads t keys);
    the LM head 2 H V per position whose logits are computed. With kv_heads = heads and a plain MLP this is
    the GPT-2 formula of decoder_token_flops.
    """
    layers, hidden, heads = (_checks.count(k, int(config[k]), 1) for k in ("layers", "hidden", "heads"))
    kv_heads = _checks.count("kv_heads", int(config.get("kv_heads", heads)), 1)
    h, i, v = float(hidden), float(config["intermediate"]), float(config.get("vocab", 0))
    new = np.asarray(new_tokens, dtype=np.float64)
    past = np.asarray(past_tokens, dtype=np.float64)
    logits = np.asarray(logits_tokens, dtype=np.float64)
    if np.any(new < 0) or np.any(past < 0) or np.any(logits < 0) or np.any(logits > np.maximum(new, 0)):
        raise ConfigError("decoder passes need new, past and logits token counts >= 0, with logits <= new tokens")
    if np.any(logits > 0) and not v:
        raise ConfigError("logit FLOPs need the vocabulary size; set vocab in the decoder config")
    kv_width = h * kv_heads / heads
    dense = 4 * h * h + 4 * h * kv_width + (6.0 if config.get("gated_mlp", False) else 4.0) * h * i
    # positions past+1 .. past+new: their sum is new * past + new (new + 1) / 2
    position_sum = new * past + new * (new + 1) / 2.0
    return layers * (new * dense + 4 * h * position_sum) + 2 * h * v * logits
