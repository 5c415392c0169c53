"""`onnx` and `onnx-int8`: the model exported to ONNX and run by ONNX Runtime.

- Export: optimum's `main_export` (task feature-extraction) with ONNX Runtime's transformer graph fusions
  (optimum level O2: fused Attention, SkipLayerNorm, BiasGelu), which is how ONNX Runtime recommends running
  BERT-family models; where fusion is not supported for an architecture the plain export is used and noted.
- `onnx-int8`: ONNX Runtime dynamic quantisation of the exported graph, per-channel weights. The weight type
  follows the CPU as optimum's AutoQuantizationConfig does: u8/s8 where VNNI exists (avx512_vnni / avx_vnni /
  AMX), u8/u8 on plain AVX2, where u8/s8 can saturate.
- Files live in a cache directory keyed by the weights' sha256 and the tool versions, so a second cell reuses
  them; `preparation.seconds` is the export/quantise time measured when they were made. Each file's sha256 is
  recorded when it is written and checked before every use; a mismatch re-makes the file (noted as
  `*_rebuilt_because`). One lock per export directory keeps concurrent runs from preparing it twice.
- Sessions: CPUExecutionProvider with intra-op threads pinned (inter-op 1); CUDAExecutionProvider on GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.atomic_io import atomic_write_text
from bench.cache_lock import artefact_lock
from bench.errors import BenchError
from bench.models import (
    FILES_KEY,
    ResolvedModel,
    check_files,
    default_cache_dir,
    file_sha256,
    publish_dir,
    record_files,
)
from bench.variants.base import Preparation
from bench.variants.runtime import mean_pool_np

EXPORT_OPTIMIZE_LEVEL = "O2"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("optimum", "optimum-onnx", "onnxruntime", "onnx", "torch", "transformers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def int8_weight_type() -> str:
    """ "QInt8" (u8/s8) where the CPU has VNNI, else "QUInt8" (u8/u8) — optimum's avx512_vnni / avx2 configs."""
    flags = cpu_flags()
    return "QInt8" if flags & {"avx512_vnni", "avx_vnni", "amx_int8"} else "QUInt8"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:240]


def _export_dir(model: ResolvedModel, cache_dir: Path | None) -> Path:
    key = hashlib.sha256(
        json.dumps(
            {"weights": model.weights_sha256, "optimize": EXPORT_OPTIMIZE_LEVEL, "versions": _versions()},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.name)
    return (cache_dir or default_cache_dir()) / "onnx" / f"{safe}-{key}"


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / "recbench-onnx.json").read_text())
    except (OSError, ValueError):
        return {}


def _write_meta(directory: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(directory / "recbench-onnx.json", json.dumps(meta, indent=2, sort_keys=True))


def _main_export(model: ResolvedModel, output: Path, optimize: str | None) -> None:
    from optimum.exporters.onnx import main_export
    from transformers.utils import logging as hf_logging

    # optimum, transformers and ONNX Runtime's fusion code log chatter that users cannot act on
    # ("torch_dtype is deprecated", "symbolic shape inference disabled"): silenced for the export only.
    # ONNX Runtime's fusion modules are imported under bare names ("onnx_model", ...), so the root logger
    # is raised too.
    loggers = [logging.getLogger(n) for n in ("optimum", "onnxruntime", "onnx", "")]
    levels = [lg.level for lg in loggers]
    hf_level = hf_logging.get_verbosity()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        hf_logging.set_verbosity_error()
        with warnings.catch_warnings():  # TorchScript-exporter deprecation and tracer warnings
            warnings.simplefilter("ignore")
            main_export(
                str(model.path),
                output=output,
                task="feature-extraction",
                local_files_only=True,
                library_name="transformers",
                optimize=optimize,
                do_validation=False,
            )
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        hf_logging.set_verbosity(hf_level)


def _model_files(directory: Path) -> tuple[str, ...]:
    """The graph and any external-data files beside it (models over 2 GB): what the fp32 export consists of."""
    return tuple(sorted(p.name for p in directory.glob("model.onnx*") if p.is_file()))


def export_onnx(model: ResolvedModel, cache_dir: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The fp32 ONNX file for `model` (exported once, then reused) and its metadata.

    The export records the sha256 of each file it wrote; every later use checks them (through the memo of
    bench.models.file_sha256, which no same-size same-mtime rewrite can fool) and re-exports on a mismatch.
    """
    directory = _export_dir(model, cache_dir)
    with artefact_lock(directory):
        meta = _read_meta(directory)
        problem: str | None = "not exported yet"
        if (directory / "model.onnx").is_file() and meta.get("export_s") is not None:
            problem = check_files(directory, meta.get(FILES_KEY), cache_dir)
            if problem is None:
                return directory / "model.onnx", {**meta, "reused_from_cache": True}
        path, meta = _export(model, directory)
    if problem != "not exported yet":
        meta["rebuilt_because"] = problem  # the cached export was unusable: say so beside the new one
    return path, meta


def _export(model: ResolvedModel, directory: Path) -> tuple[Path, dict[str, Any]]:
    """Export into a private staging directory and publish it whole (under the caller's lock)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=directory.name + ".tmp"))
    try:
        t0 = time.perf_counter()
        fusion_note = f"ONNX Runtime graph fusions (optimum {EXPORT_OPTIMIZE_LEVEL})"
        try:
            _main_export(model, staging, EXPORT_OPTIMIZE_LEVEL)
        except Exception as fused_exc:  # noqa: BLE001 - fusion unsupported for this architecture: plain export
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            fusion_note = f"plain export (fusion failed: {_one_line(fused_exc)})"
            try:
                _main_export(model, staging, None)
            except Exception as exc:  # noqa: BLE001
                raise BenchError(
                    f"ONNX export of {model.name} failed ({_one_line(exc)}): run this model with "
                    "--variant fp32 or int8 instead"
                ) from None
        export_s = time.perf_counter() - t0
        if not (staging / "model.onnx").is_file():
            raise BenchError(f"ONNX export of {model.name} wrote no model.onnx: run this model with --variant fp32")
        meta = {
            "export_s": export_s,
            "graph": fusion_note,
            "versions": _versions(),
            "model": model.name,
            "weights_sha256": model.weights_sha256,
            "exporter": "optimum.exporters.onnx.main_export",
            FILES_KEY: {name: sha for name, sha in record_files(staging).items() if name in _model_files(staging)},
        }
        _write_meta(staging, meta)
        if directory.exists():
            shutil.rmtree(directory)  # a corrupt or half-written export: replaced whole
        publish_dir(staging, directory, marker="recbench-onnx.json")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return directory / "model.onnx", {**meta, "reused_from_cache": False}


def _int8_key(target: Path) -> str:
    return f"sha256[{target.name}]"


def quantize_onnx(fp32_file: Path, cache_dir: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Dynamic int8 copy of an exported graph, next to it (made once, verified on every use, then reused)."""
    directory = fp32_file.parent
    weight_type = int8_weight_type()
    target = directory / f"model.int8-{weight_type.lower()}.onnx"
    key = f"quantize_s[{weight_type}]"
    # one lock for the whole export directory: the quantiser reads the fp32 graph and rewrites the shared metadata
    with artefact_lock(directory):
        meta = _read_meta(directory)
        problem: str | None = "not quantised yet"
        if target.is_file() and meta.get(key) is not None:
            problem = check_files(
                directory,
                {target.name: meta.get(_int8_key(target))} if meta.get(_int8_key(target)) else None,
                cache_dir,
            )
            if problem is None:
                return target, {"quantize_s": meta[key], "weight_type": weight_type, "reused_from_cache": True}
        quantize_s = _quantize(fp32_file, target, weight_type)
        meta = _read_meta(directory)
        meta[key] = quantize_s
        meta[_int8_key(target)] = file_sha256(target, cache_dir)
        _write_meta(directory, meta)
    out = {"quantize_s": quantize_s, "weight_type": weight_type, "reused_from_cache": False}
    if problem != "not quantised yet":
        out["rebuilt_because"] = problem
    return target, out


def _quantize(fp32_file: Path, target: Path, weight_type: str) -> float:
    """Quantise in a private staging directory, then rename the result into place; returns the seconds taken.

    ONNX Runtime writes a fixed-name `<input>-inferred.onnx` beside its input while it works: the input is
    linked into the staging directory so that file never lands beside the shared export.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp"))
    root = logging.getLogger()
    root_level = root.level
    try:
        for name in _model_files(fp32_file.parent):
            _link_or_copy(fp32_file.parent / name, staging / name)
        tmp = staging / target.name
        t0 = time.perf_counter()
        try:
            # quantize_dynamic logs "consider pre-processing" on the root logger: advice for static
            # (calibrated) quantisation, which this is not
            root.setLevel(logging.ERROR)
            # DefaultTensorType: fused contrib ops (Attention, SkipLayerNorm) defeat ONNX shape inference, so the
            # quantiser must be told their outputs are float.
            quantize_dynamic(
                staging / fp32_file.name,
                tmp,
                weight_type=getattr(QuantType, weight_type),
                per_channel=True,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        except Exception as exc:  # noqa: BLE001
            raise BenchError(
                f"ONNX Runtime int8 quantisation of {fp32_file} failed ({_one_line(exc)}): use "
                "--variant onnx or int8 instead"
            ) from None
        finally:
            root.setLevel(root_level)
        quantize_s = time.perf_counter() - t0
        os.replace(tmp, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return quantize_s


def _link_or_copy(source: Path, link: Path) -> None:
    try:
        os.link(source, link)
    except OSError:  # another filesystem, or no hard links: a copy costs disk, not correctness
        shutil.copyfile(source, link)


class OrtBackend:
    """An ONNX Runtime session over an exported feature-extraction graph (output 0: last_hidden_state)."""

    runtime = "onnxruntime"
    #: ONNX Runtime's intra-op threads spin-wait after each run by default; with as many threads as cores
    #: they then take the CPU from the tokeniser and the NumPy scoring of the same request
    allow_spinning = False
    #: denormal inputs flushed to zero: ONNX Runtime's fused Attention kernel meets them in its softmax and
    #: ran 20% slower on them (PyTorch's path met none: flushing there changed neither result nor time)
    denormal_as_zero = True
    #: ONNX Runtime's CPU fusions left out: its fused SkipLayerNormalization and BiasGelu kernels took 3.3x
    #: and 1.6x the time of the Add + LayerNormalization and Add + Gelu they replace (batch 32 x 91 tokens
    #: x 384 / 1536 channels, 2 threads, ONNX Runtime 1.32)
    cpu_disabled_optimizers = ("SkipLayerNormFusion", "BiasGeluFusion")

    def __init__(self, file: Path, dtype: str, device: str, threads: int) -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        if device == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise BenchError(
                    "ONNX Runtime here has no CUDAExecutionProvider: `pip install onnxruntime-gpu` "
                    "(in place of onnxruntime), or use --device cpu"
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
        options.add_session_config_entry("session.set_denormal_as_zero", "1" if self.denormal_as_zero else "0")
        try:
            cpu_only = {"disabled_optimizers": list(self.cpu_disabled_optimizers)} if device == "cpu" else {}
            self.session = ort.InferenceSession(str(file), sess_options=options, providers=providers, **cpu_only)
        except Exception as exc:  # noqa: BLE001
            raise BenchError(
                f"ONNX Runtime cannot load {file} ({_one_line(exc)}): delete the cache directory "
                f"{file.parent} and retry"
            ) from None
        self.file = file
        self.dtype = dtype
        self.device = device
        self.threads = threads
        self.providers = self.session.get_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            # ONNX Runtime falls back to CPU silently when the CUDA provider cannot load (CUDA/cuDNN mismatch):
            # the cell would time the CPU under a cuda label
            raise BenchError(
                f"ONNX Runtime could not start its CUDA provider for {file.name} and fell back to "
                f"{', '.join(self.providers)}: install the CUDA and cuDNN versions your onnxruntime-gpu "
                "release requires, or use --device cpu"
            )
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self._output = self.session.get_outputs()[0].name

    def hidden_states(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {k: v for k, v in batch.items() if k in self.input_names}
        if "token_type_ids" in self.input_names and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(batch["input_ids"])
        if "position_ids" in self.input_names and "position_ids" not in feeds:
            # decoder exports take positions explicitly; eager PyTorch counts 0..L-1 itself (right padding)
            ids = batch["input_ids"]
            feeds["position_ids"] = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape).copy()
        return np.asarray(self.session.run([self._output], feeds)[0], dtype=np.float32)

    def pooled(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return mean_pool_np(self.hidden_states(batch), batch["attention_mask"])

    def footprint(self) -> int:
        # the graph file plus any external-data files (models over 2 GB)
        return int(sum(p.stat().st_size for p in self.file.parent.glob(self.file.name + "*") if p.is_file()))


def build_onnx(
    model: ResolvedModel, quantized: bool, device: str, threads: int, cache_dir: Path | None = None
) -> tuple[OrtBackend, Preparation]:
    if quantized and device != "cpu":
        raise BenchError(
            "variant onnx-int8 (ONNX Runtime dynamic quantisation) runs on CPU only: use --device cpu, "
            "or --variant onnx or fp16 on CUDA"
        )
    fp32_file, export_meta = export_onnx(model, Path(cache_dir) if cache_dir is not None else None)
    notes: dict[str, Any] = {
        "export_s": export_meta["export_s"],
        "graph": export_meta["graph"],
        "export_reused_from_cache": export_meta["reused_from_cache"],
        "versions": export_meta.get("versions", {}),
        "threads_intra_op": threads,
    }
    if export_meta.get("rebuilt_because"):
        notes["export_rebuilt_because"] = export_meta["rebuilt_because"]
    seconds = float(export_meta["export_s"])
    file = fp32_file
    if quantized:
        file, q_meta = quantize_onnx(fp32_file, Path(cache_dir) if cache_dir is not None else None)
        seconds += float(q_meta["quantize_s"])
        notes.update(
            {
                "quantize_s": q_meta["quantize_s"],
                "weight_type": q_meta["weight_type"],
                "per_channel": True,
                "quantize_reused_from_cache": q_meta["reused_from_cache"],
                "method": "onnxruntime.quantization.quantize_dynamic",
            }
        )
        if q_meta.get("rebuilt_because"):
            notes["quantize_rebuilt_because"] = q_meta["rebuilt_because"]
    t0 = time.perf_counter()
    backend = OrtBackend(file, "int8-dynamic" if quantized else "float32", device, threads)
    notes.update({"session_load_s": time.perf_counter() - t0, "providers": backend.providers, "file": str(file)})
    return backend, Preparation(seconds=seconds, file_bytes=backend.footprint(), notes=notes)
