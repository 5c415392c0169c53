"""`int8`: PyTorch dynamic quantisation of every nn.Linear (weights int8, activations quantised per batch).

`torch.ao.quantization.quantize_dynamic` is deprecated in torch 2.x in favour of torchao, but torchao's int8 on
CPU in eager mode was measured here ~10x slower than fp32; the deprecated path is what gives a real CPU
speed-up, so it is used and its warning is recorded in the preparation notes rather than shown to users.
"""

from __future__ import annotations

import time
import warnings

from bench.errors import BenchError
from bench.models import ResolvedModel
from bench.variants.base import Preparation
from bench.variants.eager import TorchBackend, load_module, model_input_names


def build_int8(model: ResolvedModel, device: str) -> tuple[TorchBackend, Preparation]:
    if device != "cpu":
        raise BenchError(
            "variant int8 (PyTorch dynamic quantisation) runs on CPU only: use --device cpu, or "
            "--variant fp16/onnx on CUDA"
        )
    import torch

    t0 = time.perf_counter()
    module = load_module(model, "float32", "cpu")
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Per-channel weight scales: measured on MiniLM, per-tensor scales lose far more (mean cosine to fp32
        # 0.935 vs 0.974 on profile texts), at no speed cost.
        quantised = torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    quantise_s = time.perf_counter() - t1
    n_linear = sum(
        1
        for m in quantised.modules()
        if type(m).__name__ == "Linear" and type(m).__module__.startswith("torch.ao.nn.quantized")
    )
    backend = TorchBackend(quantised, "int8-dynamic", "cpu", model_input_names(model), serialized_footprint=True)
    notes = {
        "load_s": load_s,
        "quantize_s": quantise_s,
        "method": "torch.ao.quantization.quantize_dynamic(nn.Linear, qint8, per-channel weights)",
        "engine": torch.backends.quantized.engine,
        "quantized_linear_layers": n_linear,
        "warnings": sorted({str(w.message).splitlines()[0][:200] for w in caught}),
        "file": "in memory (not saved); file_bytes is the serialised state dict",
    }
    # Nothing is written to disk: the "file" is the serialised quantised state dict, the size a saved copy takes.
    return backend, Preparation(seconds=quantise_s, file_bytes=backend.footprint(), notes=notes)
