"""`onnx-int8-static`: ONNX Runtime static (QDQ) int8, calibrated on the dataset's own training texts.

Why static: dynamic int8 (`int8`, `onnx-int8`) picks each activation's scale from the batch it is in, so a
request's embedding changes with its batch neighbours, and its quality drops. Here every activation scale is
fixed once, from calibration, so a request's result is the same alone or batched, and the int8 kernels skip
the per-call quantisation of their inputs.

How the file is made (once per model, calibration sample and tool versions; then reused):
1. plain ONNX export (optimum `main_export`, no fusions);
2. transformer fusions before quantising (`_optimise`): ONNX Runtime's transformer optimizer turns each
   attention block into one Attention kernel (query/key/value projection, scores, softmax, context) and the
   GELU into one Gelu; symbolic shape inference then gives the quantiser every MatMul input's float type.
   SkipLayerNormalization and BiasGelu are not fused, here or when the session loads
   (bench.variants.onnx.OrtBackend): their CPU kernels took 3.3x and 1.6x the time of Add + LayerNormalization
   and Add + Gelu. An encoder the optimizer does not recognise is quantised unfused;
3. SmoothQuant on the int8 layers of SMOOTH_MATMULS (bench.variants.static_graph.smooth): per input channel,
   divide the activation and multiply the weight by s_c = amax_c^0.5 / wmax_c^0.5, so that LayerNorm's
   outlier channels stop eating the 8 bits of a per-tensor activation scale (the float result is unchanged);
4. static QDQ quantisation of the linear layers not in FLOAT_MATMULS: per-channel symmetric int8 weights,
   asymmetric uint8 activations with ranges from MinMax calibration on `calibration_texts` (the caller passes
   the train split's item texts and user profiles; a seeded sample of CALIBRATION_TEXTS of them), outputs left
   in float, so ONNX Runtime runs each as one MatMulIntegerToFloat (u8 x s8 GEMM, int32 accumulation).
   LayerNorm, GELU, Softmax and the residual adds are never quantised, and they read float tensors: the
   quantiser's dequantised copy of an activation is given to the int8 MatMuls only (float_residuals).
5. where the CPU lacks VNNI, weights are uint8 as optimum does for AVX2 (u8 x s8 can saturate there).

What runs int8, measured (2026-11-29, a two-tower fine-tuned 150 steps on ML-100K random-8-1-1, Intel Xeon
with AVX-512 VNNI and no AMX, 2 threads; NDCG@10 over all 943 test users relative to the same model in fp32;
the ratio moves by about half a percent between configurations whose vectors differ less than 1e-3):
- chosen: attention-out, FFN-up and FFN-down int8 (75% of the linear FLOPs), query/key/value in float inside
  the fused Attention: 100.1% of fp32's NDCG@10 at 1.59x [1.53, 1.64] PyTorch fp32's offline throughput
  (`scripts/int8_static_check.py --rounds 16`, load 0.8-2.1,
  reports/int8_static/int8_static_check-20261129T170905Z.json);
- query/key/value int8 too (a QAttention kernel with a calibrated input scale, SmoothQuant or not): 98.2-98.6%,
  1.61x where the chosen layers ran at 1.41x (SkipLayerNormalization still fused then). Quantising any one
  layer's query/key/value input moved the user vectors about as much as all six;
- unfused graph: attention-out and FFN-up int8 100.5% at 1.11x [1.07, 1.15] (quiet); every linear layer 97.5%
  (with float residuals) at 1.43x; SmoothQuant on the FFN-down input (the GELU output) made it worse;
- Percentile (99.99) calibration instead of MinMax: cosine 0.959 (outliers carry information).
Where the time went (profile of one 32-user batch): unfused, the int8 GEMMs were a third and Softmax, GELU,
SkipLayerNorm, adds and transposes the rest; fused, the Attention kernel is half (its fp32 query/key/value
GEMM and softmax), the int8 GEMMs a quarter. Load flatters ONNX Runtime against PyTorch: quote quiet figures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.cache import sha256_file
from bench.errors import BenchError, ConfigError
from bench.models import ResolvedModel, default_cache_dir, publish_dir
from bench.variants.base import Preparation
from bench.variants.static_graph import KINDS, float_residuals, matmul_kinds, smooth

#: how many training texts calibrate the activation ranges (a seeded sample, profiles and items alike)
CALIBRATION_TEXTS = 512
CALIBRATION_BATCH = 32
CALIBRATION_SEED = 0
#: linear layers kept in float, by kind (bench.variants.static_graph.KINDS; the module docstring has the measurement)
FLOAT_MATMULS = ("attention", "qkv")
#: int8 linear layers whose input is smoothed (SmoothQuant), and the migration strength alpha
SMOOTH_MATMULS = ("ffn-up",)
SMOOTH_ALPHA = 0.5
META = "recbench-static.json"
#: 2: SmoothQuant, float residuals, MatMul kinds told apart; 3: transformer blocks fused before quantising
FORMAT_VERSION = 3


def calibration_sample(texts: Sequence[str], n: int = CALIBRATION_TEXTS, seed: int = CALIBRATION_SEED) -> list[str]:
    """A seeded sample of the non-empty texts, in their given order (the cache key hashes it)."""
    pool = [t for t in texts if t and t.strip()]
    if not pool:
        raise ConfigError(
            "onnx-int8-static needs calibration texts from the training data, and got none: "
            "use a recommender that passes its training texts (llm-two-tower, llm-pairwise, ...) "
            "or the variant onnx-int8"
        )
    if len(pool) <= n:
        return pool
    keep = np.sort(np.random.default_rng(seed).choice(len(pool), size=n, replace=False))
    return [pool[i] for i in keep]


def _settings(weight_type: str, max_length: int) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "quant_format": "QDQ",
        "op_types": ["MatMul"],
        "per_channel": True,
        "activation_type": "QUInt8",
        "weights_u8": weight_type != "QInt8",
        "calibrate_method": "MinMax",
        "outputs": "float",
        "float_matmuls": list(FLOAT_MATMULS),
        "max_length": max_length,
        "smooth_matmuls": list(SMOOTH_MATMULS),
        "smooth_alpha": SMOOTH_ALPHA,
        "residuals": "float",
        "optimise_before_quantising": "onnxruntime.transformers optimize_model (bert: Attention, Gelu; no "
        "SkipLayerNormalization, BiasGelu), symbolic shapes; unfused: quant_pre_process",
    }


def _static_dir(model: ResolvedModel, sample: list[str], settings: dict[str, Any], cache_dir: Path | None) -> Path:
    from bench.variants.onnx import _versions

    key = hashlib.sha256(
        json.dumps(
            {
                "weights": model.weights_sha256,
                "settings": settings,
                "calibration": hashlib.sha256("\n".join(sample).encode()).hexdigest(),
                "versions": _versions(),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.name)
    return (cache_dir or default_cache_dir()) / "onnx-static" / f"{safe}-{key}"


def _verified(directory: Path) -> dict[str, Any] | None:
    """The artefact's metadata when its file matches the sha256 recorded at build time; None otherwise."""
    try:
        meta = json.loads((directory / META).read_text())
    except (OSError, ValueError):
        return None
    file = directory / "model.onnx"
    if not file.is_file() or meta.get("sha256") != sha256_file(file):
        return None
    return meta


def build_static(
    model: ResolvedModel, calibration_texts: Sequence[str] | None, cache_dir: Path | None, max_length: int = 128
) -> tuple[Path, dict[str, Any]]:
    """The calibrated static-int8 ONNX file for `model` (built once, verified on every use) and its metadata."""
    from bench.variants.onnx import int8_weight_type

    if calibration_texts is None:
        raise ConfigError(
            "onnx-int8-static needs calibration texts from the training data: this caller passed "
            "none; use the variant onnx-int8, or build it with calibration_texts=..."
        )
    sample = calibration_sample(calibration_texts)
    settings = _settings(int8_weight_type(), max_length)
    directory = _static_dir(model, sample, settings, cache_dir)
    note = ""
    if directory.exists():
        meta = _verified(directory)
        if meta is not None:
            return directory / "model.onnx", {**meta, "reused_from_cache": True, "verified_sha256": True}
        # a corrupted or half-replaced artefact is never run: rebuild it, and say so in the notes
        note = f"cached artefact at {directory} failed its sha256 check: rebuilt"
        shutil.rmtree(directory, ignore_errors=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=directory.name + ".tmp"))
    try:
        t0 = time.perf_counter()
        steps, edits = _make(model, sample, settings, staging)
        quantize_s = time.perf_counter() - t0
        file = staging / "model.onnx"
        meta = {
            "quantize_s": quantize_s,
            "steps_s": steps,
            "graph_edits": edits,
            "settings": settings,
            "model": model.name,
            "weights_sha256": model.weights_sha256,
            "n_calibration_texts": len(sample),
            "calibration_sha256": hashlib.sha256("\n".join(sample).encode()).hexdigest(),
            "sha256": sha256_file(file),
            "file_bytes": file.stat().st_size,
            "method": "transformer fusions (Attention, Gelu), SmoothQuant, then "
            "onnxruntime.quantization.quantize_static (QDQ), MinMax calibration; float residuals",
        }
        if note:
            meta["rebuilt"] = note
        (staging / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
        for leftover in staging.glob("*"):  # intermediate graphs stay out of the published artefact
            if leftover.name not in ("model.onnx", META):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        publish_dir(staging, directory, marker=META)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    meta = _verified(directory)
    if meta is None:
        raise BenchError(
            f"the static int8 model published at {directory} fails its sha256 check: delete that directory and retry"
        )
    return directory / "model.onnx", {**meta, "reused_from_cache": False, "verified_sha256": True}


def _make(
    model: ResolvedModel,
    sample: list[str],
    settings: dict[str, Any],
    staging: Path,
) -> tuple[dict[str, float], dict[str, int]]:
    """Export, optimise, smooth, calibrate and quantise into staging/model.onnx; returns each step's seconds
    and what the graph edits changed."""
    from bench.variants.onnx import _main_export

    steps: dict[str, float] = {}
    t = time.perf_counter()
    export_dir = staging / "export"
    _main_export(model, export_dir, None)
    steps["export_s"] = time.perf_counter() - t
    t = time.perf_counter()
    optimised = staging / "optimised.onnx"
    fused = _optimise(export_dir / "model.onnx", optimised)
    steps["optimise_s"] = time.perf_counter() - t
    t = time.perf_counter()
    edits = _quantise(optimised, staging / "model.onnx", model, sample, settings)
    steps["calibrate_quantise_s"] = time.perf_counter() - t
    edits.update({"fused_Attention": 0, **{f"fused_{op}": count for op, count in sorted(fused.items())}})
    return steps, edits


def _quiet():
    """ONNX Runtime's optimiser and quantiser log advice on the root logger that users cannot act on."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    return root, level


def _optimise(source: Path, target: Path) -> dict[str, int]:
    """Fuse the transformer blocks, then infer every tensor's type and shape for the quantiser; returns the
    fused operators counted by kind.

    ONNX Runtime's transformer optimizer (model type "bert", heads and width read from the graph) turns each
    attention block into one Attention kernel (query/key/value projection, scores, softmax and context in
    one op) and the GELU's arithmetic into one Gelu; LayerNorm and the bias adds stay as they are (see
    `_fuse`). Symbolic shape inference, which knows the fused operators, then gives the quantiser the float
    type of every remaining MatMul input (ONNX's own inference does not know them, and the quantiser skips a
    MatMul whose input type it cannot see). An encoder the optimizer does not recognise (no Attention fused)
    gets ONNX Runtime's plain pre-processing instead (constant folding, ONNX shape inference), unfused, and
    its artefact records fused_Attention = 0."""
    import onnx

    root, level = _quiet()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fused = _fuse(source)
            if fused is not None:
                onnx.save(fused, str(target))
                counts: dict[str, int] = {}
                for node in fused.graph.node:
                    if node.domain == "com.microsoft":
                        counts[node.op_type] = counts.get(node.op_type, 0) + 1
                return counts
            from onnxruntime.quantization.shape_inference import quant_pre_process

            # symbolic shape inference does not complete on optimum's unfused BERT export; ONNX's own does
            quant_pre_process(
                str(source), str(target), skip_optimization=False, skip_onnx_shape=False, skip_symbolic_shape=True
            )
            return {}
    finally:
        root.setLevel(level)


def _fuse(source: Path) -> Any | None:
    """The fused, shape-inferred graph of `source`, or None when no attention block fused."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        options = FusionOptions("bert")
        # ONNX Runtime's CPU kernels for these two fusions are slower than the operators they replace
        # (bench.variants.onnx.OrtBackend.cpu_disabled_optimizers)
        options.enable_skip_layer_norm = False
        options.enable_bias_skip_layer_norm = False
        options.enable_bias_gelu = False
        optimised = optimize_model(
            str(source), model_type="bert", num_heads=0, hidden_size=0, opt_level=0, optimization_options=options
        )
        fused = optimised.model
        if not any(n.op_type == "Attention" for n in fused.graph.node):
            return None
        if not any(o.domain == "com.microsoft" for o in fused.opset_import):
            fused.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))  # the fused operators' domain
        return SymbolicShapeInference.infer_shapes(fused, auto_merge=True, guess_output_rank=True)
    except Exception:  # noqa: BLE001 - an architecture the optimizer cannot fuse runs unfused
        return None


class _Reader:
    """Calibration batches: tokenised exactly as the encoder tokenises requests."""

    def __init__(self, model: ResolvedModel, texts: list[str], input_names: set[str], max_length: int) -> None:
        from bench.variants.runtime import load_tokenizer

        tokenizer = load_tokenizer(model.path)
        self._batches = []
        for start in range(0, len(texts), CALIBRATION_BATCH):
            enc = tokenizer(
                texts[start : start + CALIBRATION_BATCH],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="np",
            )
            batch = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in input_names}
            if "token_type_ids" in input_names and "token_type_ids" not in batch:
                batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
            self._batches.append(batch)
        self._it = iter(self._batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


def float_matmuls(graph: Any, kinds: Sequence[str] = FLOAT_MATMULS) -> list[str]:
    """Names of the MatMul nodes to keep in float, by kind (bench.variants.static_graph.matmul_kinds):
    "attention" (both inputs activations), "qkv", "attention-out", "ffn-up", "ffn-down"."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ConfigError(f"unknown MatMul kinds {sorted(unknown)}: choose from {', '.join(KINDS)}")
    return [name for name, kind in matmul_kinds(graph).items() if kind in kinds]


def _channel_absmax(reader: _Reader) -> Callable[[Any, list[str]], dict[str, np.ndarray]]:
    """Per-channel |max| of chosen tensors over the calibration batches, run on the float graph."""

    def measure(model: Any, tensors: list[str]) -> dict[str, np.ndarray]:
        import onnx
        import onnxruntime as ort

        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        for name in tensors:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        amax: dict[str, np.ndarray] = {}
        reader.rewind()
        while (batch := reader.get_next()) is not None:
            for name, value in zip(tensors, session.run(tensors, batch)):
                channel = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
                amax[name] = np.maximum(amax[name], channel) if name in amax else channel
        reader.rewind()
        return amax

    return measure


def _quantise(
    source: Path,
    target: Path,
    model: ResolvedModel,
    sample: list[str],
    settings: dict[str, Any],
) -> dict[str, int]:
    """SmoothQuant, calibrate and quantise `source` into `target`, then give the residual path its float
    tensors back; returns what each graph edit changed."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    graph_model = onnx.load(str(source))
    exclude = float_matmuls(graph_model.graph, settings["float_matmuls"])
    reader = _Reader(model, sample, {i.name for i in graph_model.graph.input}, settings["max_length"])
    edits = {"float_matmuls": len(exclude)}
    edits["smoothed_tensors"] = smooth(
        graph_model, settings["smooth_matmuls"], settings["smooth_alpha"], _channel_absmax(reader)
    )
    smoothed = source.with_name("smoothed.onnx")
    onnx.save(graph_model, str(smoothed))
    root, level = _quiet()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(smoothed),
                str(target),
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=settings["op_types"],
                per_channel=settings["per_channel"],
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QUInt8 if settings["weights_u8"] else QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={
                    "WeightSymmetric": not settings["weights_u8"],
                    "ActivationSymmetric": False,
                    # float outputs: one MatMulIntegerToFloat per layer, no requantisation
                    "OpTypesToExcludeOutputQuantization": ["MatMul"],
                },
            )
    except Exception as exc:  # noqa: BLE001
        from bench.variants.onnx import _one_line

        raise BenchError(
            f"ONNX Runtime static int8 quantisation of {model.name} failed ({_one_line(exc)}): use "
            "--variant onnx-int8 instead"
        ) from None
    finally:
        root.setLevel(level)
    quantised = onnx.load(str(target))
    edits["residual_inputs_made_float"] = float_residuals(quantised.graph)
    onnx.save(quantised, str(target))
    return edits


def build_onnx_static(
    model: ResolvedModel,
    device: str,
    threads: int,
    cache_dir: Path | None,
    calibration_texts: Sequence[str] | None,
    max_length: int = 128,
):
    """(OrtBackend, Preparation) for the static int8 variant on CPU."""
    from bench.variants.onnx import OrtBackend

    if device != "cpu":
        raise BenchError(
            "variant onnx-int8-static runs on CPU only: use --device cpu, or --variant onnx or fp16 on CUDA"
        )
    file, meta = build_static(model, calibration_texts, Path(cache_dir) if cache_dir is not None else None, max_length)
    t0 = time.perf_counter()
    backend = OrtBackend(file, "int8-static", device, threads)
    notes = {
        **{k: v for k, v in meta.items() if k != "reused_from_cache"},
        "quantize_reused_from_cache": meta["reused_from_cache"],
        "session_load_s": time.perf_counter() - t0,
        "providers": backend.providers,
        "file": str(file),
        "threads_intra_op": threads,
    }
    return backend, Preparation(
        seconds=float(meta["quantize_s"]),
        file_bytes=backend.footprint(),
        notes=notes,
        reused_s=float(meta["quantize_s"]) if meta["reused_from_cache"] else 0.0,
    )


__all__ = ["build_onnx_static", "build_static", "calibration_sample", "float_matmuls"]
