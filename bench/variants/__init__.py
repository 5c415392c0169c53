"""Ways of running a transformer: fp32, fp16/bf16, int8, onnx, onnx-int8, distilled, and compositions.

    enc = build_encoder("minilm", "onnx-int8", device="cpu", threads=2)
    vecs = enc.encode(["Toy Story (1995) Animation|Children's|Comedy"])   # (1, 384), rows L2-normalised

A variant string is one runtime registered in `bench.variants.registry` (name -> builder, precision, devices),
optionally preceded by `distilled+` (distil a half-depth student first, then run the student under that
runtime); a runtime that calibrates (`onnx-int8-static`) gets the caller's training texts
(`calibration_texts`); `distilled` alone means `distilled+fp32`. Each module here is one way of running;
`runtime.py` holds what they share.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from bench.errors import ConfigError
from bench.models import ResolvedModel, resolve_model
from bench.variants import registry
from bench.variants.base import Preparation, TextEncoder
from bench.variants.device import resolve_device, resolve_threads

#: the registered runtimes and every valid variant string (snapshots at import; plugins add to the registry:
#: ask `registry.names()` / `registry.all_variants()` for the current lists)
RUNTIMES: tuple[str, ...] = tuple(registry.names())
VARIANTS: list[str] = registry.all_variants()

__all__ = [
    "VARIANTS",
    "RUNTIMES",
    "build_encoder",
    "build_cross_encoder",
    "build_sequence_model",
    "parse_variant",
    "resolve_device",
    "TextEncoder",
    "Preparation",
]


def parse_variant(variant: str) -> tuple[bool, str]:
    """ "distilled+onnx-int8" -> (True, "onnx-int8"); "int8" -> (False, "int8"); unknown -> ConfigError."""
    distilled, entry = registry.parse(variant)
    return distilled, entry.name


def canonical_variant(variant: str) -> str:
    return registry.canonical(variant)


def wants_calibration(variant: str) -> bool:
    """True when the variant's runtime is calibrated on training texts (static quantisation)."""
    return registry.calibrates(variant)


def _prepare(
    model, variant, device, threads, distill_texts, cache_dir, distill, calibration_texts=None, max_length=128
):
    """Resolve model/device/threads, distil when asked, build the runtime backend; merge one-time costs."""
    distilled, runtime = parse_variant(variant)
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
    device = resolve_device(device)
    threads = resolve_threads(threads)
    from bench.variants.device import pin_torch_threads

    pin_torch_threads(threads)
    resolved = resolve_model(model, cache_dir=cache_dir)
    t0 = time.perf_counter()
    notes: dict = {"threads": threads, "device": device}
    prep_s = 0.0
    reused_s = 0.0
    file_bytes_extra = 0
    if distilled:
        from bench.variants.distilled import distil

        student, distil_prep = distil(resolved, distill_texts, settings=distill, device=device, cache_dir=cache_dir)
        notes["distil"] = {**distil_prep.notes, "seconds": distil_prep.seconds, "file_bytes": distil_prep.file_bytes}
        notes["teacher"] = resolved.name
        prep_s += distil_prep.seconds
        reused_s += distil_prep.seconds if distil_prep.notes.get("reused_from_cache") else 0.0
        resolved = student
    request = registry.BuildRequest(resolved, device, threads, cache_dir, calibration_texts, max_length)
    backend, run_prep = registry.get(runtime).build(request)
    notes[runtime] = run_prep.notes
    notes["build_s_this_process"] = time.perf_counter() - t0
    prep = Preparation(
        seconds=prep_s + run_prep.seconds,
        file_bytes=run_prep.file_bytes + file_bytes_extra,
        notes=notes,
        reused_s=reused_s + _reused_seconds(run_prep),
    )
    return resolved, backend, canonical_variant(variant), device, threads, prep


def _reused_seconds(prep: Preparation) -> float:
    """Seconds of a runtime's preparation (export, quantise) that were reused from the cache, not redone."""
    if prep.reused_s:
        return float(prep.reused_s)
    notes = prep.notes
    reused = 0.0
    for step in ("export", "quantize"):
        if notes.get(f"{step}_reused_from_cache") and notes.get(f"{step}_s") is not None:
            reused += float(notes[f"{step}_s"])
    return reused


def build_encoder(
    model: str | ResolvedModel = "minilm",
    variant: str = registry.FP32,
    device: str = "cpu",
    threads: int | None = None,
    max_length: int = 128,
    distill_texts: Sequence[str] | None = None,
    cache_dir: Path | None = None,
    distill=None,
    calibration_texts: Sequence[str] | None = None,
) -> TextEncoder:
    """A TextEncoder for `model` under `variant` on `device`, torch and ONNX Runtime threads pinned to `threads`.

    `preparation.seconds` is the one-time cost of making the variant (export, quantise, distil) as measured when
    it was made, even when reused from the cache; `preparation.notes` says what was reused and how long loading
    took in this process. `distill` is an optional `bench.variants.distilled.DistilSettings`.
    `calibration_texts` (training texts: item texts and user profiles) calibrate `onnx-int8-static`.
    """
    from bench.variants.runtime import TransformerEncoder

    resolved, backend, name, device, threads, prep = _prepare(
        model, variant, device, threads, distill_texts, cache_dir, distill, calibration_texts, max_length
    )
    return TransformerEncoder(resolved, backend, name, device, threads, max_length, prep)


def build_cross_encoder(
    model: str | ResolvedModel = "minilm",
    variant: str = registry.FP32,
    device: str = "cpu",
    threads: int | None = None,
    max_length: int = 256,
    distill_texts: Sequence[str] | None = None,
    cache_dir: Path | None = None,
    distill=None,
    calibration_texts: Sequence[str] | None = None,
):
    """A CrossEncoder (pairs [CLS] q [SEP] d [SEP]) under `variant`; supply its score head with `set_head`."""
    from bench.variants.runtime import CrossEncoder

    resolved, backend, name, device, threads, prep = _prepare(
        model, variant, device, threads, distill_texts, cache_dir, distill, calibration_texts, max_length
    )
    return CrossEncoder(resolved, backend, name, device, threads, max_length, prep)


def build_sequence_model(
    model: ResolvedModel,
    variant: str = registry.FP32,
    device: str = "cpu",
    threads: int | None = None,
    max_length: int = 512,
    cache_dir: Path | None = None,
):
    """A `SequenceModel` (token ids in, last-layer hidden states out) for weights trained by a recommender.

    Every runtime applies (fp32, fp16/bf16, int8, onnx, onnx-int8); distillation does not: it learns from
    texts, and such a model reads ids.
    """
    from bench.variants.runtime import SequenceModel

    distilled, _ = parse_variant(variant)
    if distilled:
        raise ConfigError(
            f"variant {variant!r} distils on texts; a model over item ids runs one of {', '.join(registry.names())}"
        )
    resolved, backend, name, device, threads, prep = _prepare(model, variant, device, threads, None, cache_dir, None)
    return SequenceModel(resolved, backend, name, device, threads, max_length, prep)
