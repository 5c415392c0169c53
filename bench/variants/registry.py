"""Name -> variant: how a transformer runs (its builder), at which precision, on which devices.

A new runtime is one module (a builder) plus one `register(Variant(...))` call: here for the packaged ones,
in the user's own plugin module for theirs (see `bench.plugins`). Every consumer asks this registry: the
encoder builders (`bench.variants.build_encoder`), the recommenders that pick a runtime, the analysis that
needs a variant's precision for its roofline and peak (`precision_of`), and the runner's checks before a run.

A variant string is one registered runtime, optionally preceded by `distilled+` (distil a half-depth student
first, then run the student under that runtime); `distilled` alone means `distilled+fp32`.

Builders import their runtime lazily, so that importing this registry never imports torch or ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.models import ResolvedModel
    from bench.variants.base import Preparation

#: the packaged runtimes' names: code refers to a variant by these constants, never by a literal
FP32 = "fp32"
FP16 = "fp16"
BF16 = "bf16"
INT8 = "int8"
ONNX = "onnx"
ONNX_INT8 = "onnx-int8"
ONNX_INT8_STATIC = "onnx-int8-static"
#: the variant of a cell whose recommender runs no transformer (classic CF)
NO_VARIANT = "none"
#: the composition prefix: `distilled+onnx-int8` distils a student, then runs it under onnx-int8
DISTILLED = "distilled"

#: the precisions a machine's peaks are measured at (bench.measure.roofline names them the same way)
PRECISIONS = (FP32, FP16, BF16, INT8)

CPU = "cpu"
CUDA = "cuda"

#: the libraries whose kernels run a variant's arithmetic, named as the machine record keys its measured int8
#: peaks (bench.measure.flops.INT8_RUNTIMES): an int8 cell is held against its own library's int8 GEMM
TORCH = "torch"
ONNXRUNTIME = "onnxruntime"


@dataclass(frozen=True)
class BuildRequest:
    """What a variant's builder gets: the resolved model and how the cell runs it."""

    model: ResolvedModel
    device: str
    threads: int
    cache_dir: Path | None = None
    #: training texts for a variant that calibrates on them (static quantisation), else None
    calibration_texts: Sequence[str] | None = None
    max_length: int = 128


#: (request) -> (backend, one-time preparation); the backend is what bench.variants.runtime wraps
Builder = Callable[[BuildRequest], "tuple[Any, Preparation]"]


@dataclass(frozen=True)
class Variant:
    """One way of running a transformer."""

    name: str
    build: Builder
    #: the arithmetic precision of its matrix products: fp32 | fp16 | bf16 | int8
    precision: str
    #: devices it runs on ("cpu", "cuda"); a cell asking another fails before any work
    devices: tuple[str, ...] = (CPU,)
    #: True when it calibrates on the training texts the caller passes (`BuildRequest.calibration_texts`)
    calibrates: bool = False
    #: True when a student can be distilled and then run under it (`distilled+NAME`)
    composable: bool = True
    summary: str = ""
    #: how it is named in the precision tables of the roofline (bf16 is measured against the fp16 GEMM peak)
    peak_precision: str = field(default="")
    #: the library whose kernels run its arithmetic: TORCH or ONNXRUNTIME (which measured int8 peak it meets)
    kernels: str = TORCH

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"variant {self.name!r}: precision {self.precision!r} is unknown; use one of {', '.join(PRECISIONS)}"
            )
        if not self.peak_precision:
            object.__setattr__(self, "peak_precision", FP16 if self.precision == BF16 else self.precision)


_REGISTRY: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
    """Add a variant (a plugin module calls this at import); a name already taken by another builder fails."""
    if not isinstance(variant, Variant):
        raise ConfigError(f"register() takes a bench.variants.registry.Variant, got {type(variant).__name__}")
    if DISTILLED in variant.name.split("+") or "+" in variant.name:
        raise ConfigError(f"variant name {variant.name!r} is reserved for composition: pick a name without '+'")
    known = _REGISTRY.get(variant.name)
    # the same plugin imported again builds with a function of the same name: a no-op, not a clash
    if known is not None and known.build.__qualname__ != variant.build.__qualname__:
        raise ConfigError(f"variant {variant.name!r} is already registered; pick another name")
    _REGISTRY[variant.name] = variant
    return variant


def names() -> list[str]:
    """Every registered runtime, in registration order."""
    return list(_REGISTRY)


def all_variants() -> list[str]:
    """Every valid variant string: the runtimes, `distilled`, and `distilled+` each composable runtime."""
    return [*_REGISTRY, DISTILLED, *(f"{DISTILLED}+{n}" for n, v in _REGISTRY.items() if v.composable and n != FP32)]


def get(name: str) -> Variant:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown variant {name!r}: choose one of {', '.join(all_variants())}") from None


def parse(variant: str) -> tuple[bool, Variant]:
    """ "distilled+onnx-int8" -> (True, onnx-int8's entry); "int8" -> (False, int8's entry); unknown -> ConfigError."""
    text = (variant or "").strip().lower()
    parts = [p.strip() for p in text.split("+")] if text else []
    distilled = bool(parts) and parts[0] == DISTILLED
    rest = parts[1:] if distilled else parts
    if distilled and not rest:
        rest = [FP32]
    if len(rest) != 1 or rest[0] not in _REGISTRY or (distilled and not _REGISTRY[rest[0]].composable):
        raise ConfigError(f"unknown variant {variant!r}: choose one of {', '.join(all_variants())}")
    return distilled, _REGISTRY[rest[0]]


def canonical(variant: str) -> str:
    distilled, entry = parse(variant)
    if distilled:
        return DISTILLED if entry.name == FP32 else f"{DISTILLED}+{entry.name}"
    return entry.name


def is_distilled(variant: str) -> bool:
    """True when the variant string asks for a distilled student (unknown strings: False)."""
    try:
        return parse(variant)[0]
    except ConfigError:
        return False


def calibrates(variant: str) -> bool:
    """True when the variant's runtime calibrates on training texts (unknown strings: False)."""
    try:
        return parse(variant)[1].calibrates
    except ConfigError:
        return False


def precision_of(variant: str) -> str:
    """The precision whose measured peak a variant's work is held against: fp32, fp16 or int8.

    Variants this registry does not know (a recommender's own decoder runtimes, "none") are fp32, as are
    recommenders that run no transformer; bf16 work is held against the fp16 GEMM peak (the one measured).
    """
    try:
        return parse(variant)[1].peak_precision
    except ConfigError:
        return FP32


def kernels_of(variant: str) -> str:
    """The library whose kernels run a variant's arithmetic (`Variant.kernels`); variants this registry does not
    know run on torch's."""
    try:
        return parse(variant)[1].kernels
    except ConfigError:
        return TORCH


def check_device(variant: str, device: str) -> None:
    """A variant asked for on a device it does not run on fails in one line, before any work."""
    distilled, entry = parse(variant)
    family = (device or CPU).split(":")[0].strip().lower()
    if family in entry.devices or family == "auto":
        return
    raise ConfigError(
        f"variant {variant!r} runs on {' or '.join(entry.devices)} only, not {device!r}: choose "
        f"another device or one of the variants for it"
    )


# ---------------------------------------------------------------- the packaged runtimes


def _eager(request: BuildRequest, runtime: str) -> tuple[Any, Preparation]:
    from bench.variants.eager import build_eager

    return build_eager(request.model, runtime, request.device)


def _build_fp32(request: BuildRequest) -> tuple[Any, Preparation]:
    return _eager(request, FP32)


def _build_fp16(request: BuildRequest) -> tuple[Any, Preparation]:
    return _eager(request, FP16)


def _build_bf16(request: BuildRequest) -> tuple[Any, Preparation]:
    return _eager(request, BF16)


def _build_int8(request: BuildRequest) -> tuple[Any, Preparation]:
    from bench.variants.int8 import build_int8

    return build_int8(request.model, request.device)


def _build_onnx(request: BuildRequest, quantized: bool) -> tuple[Any, Preparation]:
    from bench.variants.onnx import build_onnx

    return build_onnx(
        request.model, quantized=quantized, device=request.device, threads=request.threads, cache_dir=request.cache_dir
    )


def _build_onnx_fp32(request: BuildRequest) -> tuple[Any, Preparation]:
    return _build_onnx(request, quantized=False)


def _build_onnx_int8(request: BuildRequest) -> tuple[Any, Preparation]:
    return _build_onnx(request, quantized=True)


def _build_onnx_static(request: BuildRequest) -> tuple[Any, Preparation]:
    from bench.variants.onnx_static import build_onnx_static

    return build_onnx_static(
        request.model, request.device, request.threads, request.cache_dir, request.calibration_texts, request.max_length
    )


for _variant in (
    Variant(FP32, _build_fp32, FP32, (CPU, CUDA), summary="PyTorch eager, float32"),
    Variant(FP16, _build_fp16, FP16, (CUDA,), summary="PyTorch eager, float16 (CUDA)"),
    Variant(BF16, _build_bf16, BF16, (CPU, CUDA), summary="PyTorch eager, bfloat16"),
    Variant(INT8, _build_int8, INT8, (CPU,), summary="PyTorch dynamic int8 of every nn.Linear"),
    Variant(ONNX, _build_onnx_fp32, FP32, (CPU, CUDA), summary="ONNX Runtime, float32 graph", kernels=ONNXRUNTIME),
    Variant(ONNX_INT8, _build_onnx_int8, INT8, (CPU,), summary="ONNX Runtime dynamic int8", kernels=ONNXRUNTIME),
    Variant(
        ONNX_INT8_STATIC,
        _build_onnx_static,
        INT8,
        (CPU,),
        calibrates=True,
        summary="ONNX Runtime static int8 (QDQ), calibrated on the dataset's own texts",
        kernels=ONNXRUNTIME,
    ),
):
    register(_variant)
