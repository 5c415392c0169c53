"""Device and thread resolution, shared by every variant."""

from __future__ import annotations

import os

from bench.errors import BenchError, ConfigError

DEVICES = ("cpu", "cuda", "auto")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str = "cpu") -> str:
    """ "cpu" | "cuda" | "auto" -> "cpu" or "cuda"; asking for CUDA where there is none fails in one line."""
    choice = (device or "cpu").strip().lower()
    if choice not in DEVICES:
        raise ConfigError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    if choice == "cuda" and not cuda_available():
        raise BenchError("CUDA is not available on this machine; use --device cpu")
    return choice


def resolve_threads(threads: int | None) -> int:
    """Threads to pin (torch intra-op, ONNX Runtime intra-op): the argument, else every core this process may use."""
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    if int(threads) < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}: pass a positive number or leave it unset")
    return int(threads)


def pin_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def bf16_cpu_native() -> bool:
    """True where the CPU has bf16 instructions (AVX512-BF16 / AMX); elsewhere bf16 runs emulated, slowly."""
    try:
        import torch

        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - an old torch without the probe
        return False
