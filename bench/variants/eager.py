"""PyTorch eager execution: `fp32`, `fp16` (CUDA only) and `bf16` (CUDA, or CPU where torch runs it)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.models import ResolvedModel, weights_file
from bench.variants.base import Preparation
from bench.variants.device import bf16_cpu_native
from bench.variants.runtime import mean_pool_torch

EAGER_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def model_input_names(model: ResolvedModel) -> tuple[str, ...]:
    """token_type_ids only for BERT-like models; GPT-2 would embed them through its token table instead."""
    cfg = json.loads((model.path / "config.json").read_text())
    names = ("input_ids", "attention_mask")
    return names + ("token_type_ids",) if cfg.get("type_vocab_size", 0) else names


class TorchBackend:
    """Runs a transformers `AutoModel` in eager mode; pools in fp32 whatever the compute dtype."""

    runtime = "torch"

    def __init__(
        self, module: Any, dtype: str, device: str, input_names: tuple[str, ...], serialized_footprint: bool = False
    ) -> None:
        self.module = module
        self.dtype = dtype
        self.device = device
        self.input_names = input_names
        self._serialized_footprint = serialized_footprint
        self._footprint: int | None = None

    def _forward(self, batch: dict[str, np.ndarray]):
        import torch

        inputs = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items() if k in self.input_names}
        return self.module(**inputs)[0], inputs

    def pooled(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            hidden, inputs = self._forward(batch)
            pooled = mean_pool_torch(hidden, inputs["attention_mask"])
            return pooled.float().cpu().numpy()

    def hidden_states(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._forward(batch)[0].float().cpu().numpy()

    def footprint(self) -> int:
        if self._footprint is None:
            if self._serialized_footprint:
                # Dynamic-quantised Linear layers keep packed weights outside .parameters(): count what a
                # serialised state dict holds instead.
                import torch

                buf = io.BytesIO()
                torch.save(self.module.state_dict(), buf)
                self._footprint = buf.tell()
            else:
                tensors = list(self.module.parameters()) + list(self.module.buffers())
                self._footprint = int(sum(t.numel() * t.element_size() for t in tensors))
        return self._footprint


def check_dtype_on_device(variant: str, device: str) -> list[str]:
    """A variant the device cannot run fails here in one line; returns notes about how it runs."""
    notes: list[str] = []
    if variant == "fp16" and device != "cuda":
        raise BenchError(
            "variant fp16 needs CUDA (PyTorch CPU kernels for fp16 are missing or very slow): use "
            "--variant bf16 or fp32 on CPU, or --device cuda on a GPU machine"
        )
    if variant == "bf16":
        import torch

        if device == "cuda" and not torch.cuda.is_bf16_supported():
            raise BenchError(
                "variant bf16 is not supported by this GPU (needs compute capability >= 8.0): use "
                "--variant fp16 or fp32"
            )
        if device == "cpu":
            notes.append(
                "bf16 native on this CPU (AVX512-BF16/AMX)"
                if bf16_cpu_native()
                else "bf16 emulated on this CPU (no AVX512-BF16/AMX): expect it slower than fp32"
            )
    return notes


def load_module(model: ResolvedModel, dtype: str = "float32", device: str = "cpu"):
    """The transformers AutoModel of `model`, in eval mode, on `device`, from local files only."""
    import torch
    from transformers import AutoModel

    try:
        module = AutoModel.from_pretrained(model.path, local_files_only=True, dtype=getattr(torch, dtype))
    except Exception as exc:  # noqa: BLE001 - a broken checkpoint, wrong format, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BenchError(
            f"cannot load model weights from {model.path} ({reason[:200]}): re-save the model with `save_pretrained`"
        ) from None
    return module.eval().to(device)


def build_eager(model: ResolvedModel, variant: str, device: str) -> tuple[TorchBackend, Preparation]:
    notes = check_dtype_on_device(variant, device)
    dtype = EAGER_DTYPES[variant]
    t0 = time.perf_counter()
    module = load_module(model, dtype, device)
    load_s = time.perf_counter() - t0
    weights = weights_file(model.path)
    prep = Preparation(
        seconds=0.0,
        file_bytes=weights.stat().st_size if weights else 0,
        notes={
            "load_s": load_s,
            "dtype": dtype,
            "runtime": "torch eager",
            "file": str(weights) if weights else None,
            **({"device_notes": notes} if notes else {}),
        },
    )
    return TorchBackend(module, dtype, device, model_input_names(model)), prep
