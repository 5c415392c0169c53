"""int8, ONNX, ONNX-int8 and distilled variants on a tiny random model, through the real export/quantise paths."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import BenchError, ConfigError
from bench.variants import build_cross_encoder, build_encoder
from bench.variants.agreement import agreement
from bench.variants.distilled import DistilSettings, teacher_layer_indices


@pytest.fixture(scope="module")
def reference(tiny_model, model_cache_dir, tiny_texts):
    return build_encoder(tiny_model, "fp32", threads=1, cache_dir=model_cache_dir).encode(tiny_texts)


def _unit_rows(vecs: np.ndarray, n: int, dim: int = 32) -> None:
    assert vecs.shape == (n, dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


def test_onnx_matches_eager(tiny_model, model_cache_dir, tiny_texts, reference):
    enc = build_encoder(tiny_model, "onnx", threads=1, cache_dir=model_cache_dir)
    vecs = enc.encode(tiny_texts, batch_size=5)
    _unit_rows(vecs, len(tiny_texts))
    assert (vecs * reference).sum(axis=1).min() >= 0.999
    prep = enc.preparation
    assert prep.file_bytes == enc.footprint() > 0
    assert prep.notes["onnx"]["export_s"] > 0 and prep.notes["onnx"]["threads_intra_op"] == 1
    assert enc.config()["runtime"] == "onnxruntime"


def test_onnx_export_is_reused_from_cache(tiny_model, model_cache_dir):
    build_encoder(tiny_model, "onnx", threads=1, cache_dir=model_cache_dir)
    again = build_encoder(tiny_model, "onnx", threads=1, cache_dir=model_cache_dir)
    assert again.preparation.notes["onnx"]["export_reused_from_cache"] is True
    assert again.preparation.seconds > 0  # the one-time cost is still reported when reused
    # ... and said to be made by an earlier process: not part of this process's fit time (cost counts it once)
    assert again.preparation.reused_s == pytest.approx(again.preparation.seconds)


def test_onnx_int8_is_smaller_and_agrees(tiny_model, model_cache_dir, tiny_texts, reference):
    enc = build_encoder(tiny_model, "onnx-int8", threads=1, cache_dir=model_cache_dir)
    onnx_fp32 = build_encoder(tiny_model, "onnx", threads=1, cache_dir=model_cache_dir)
    vecs = enc.encode(tiny_texts)
    _unit_rows(vecs, len(tiny_texts))
    assert agreement(reference, vecs, k=3)["cosine_mean"] > 0.95
    assert enc.footprint() < onnx_fp32.footprint()
    assert enc.preparation.notes["onnx-int8"]["weight_type"] in ("QInt8", "QUInt8")


def test_int8_agrees_and_records_deprecation(tiny_model, model_cache_dir, tiny_texts, reference):
    enc = build_encoder(tiny_model, "int8", threads=1, cache_dir=model_cache_dir)
    vecs = enc.encode(tiny_texts)
    _unit_rows(vecs, len(tiny_texts))
    assert agreement(reference, vecs, k=3)["cosine_mean"] > 0.95
    notes = enc.preparation.notes["int8"]
    assert notes["quantized_linear_layers"] > 0
    assert isinstance(notes["warnings"], list)


def test_onnx_int8_on_cuda_is_rejected_before_loading(tiny_model):
    from bench.variants.onnx import build_onnx

    with pytest.raises(BenchError, match="CPU only"):
        build_onnx(tiny_model, quantized=True, device="cuda", threads=1)


def test_failed_export_is_one_line_bench_error(tiny_model, model_cache_dir, monkeypatch):
    import bench.variants.onnx as onnx_mod

    def broken(*_args, **_kwargs):
        raise RuntimeError("unsupported operator aten::frobnicate\nlong traceback text")

    monkeypatch.setattr(onnx_mod, "_main_export", broken)
    monkeypatch.setattr(onnx_mod, "_versions", lambda: {"forced": "miss"})  # new cache key: no reuse
    with pytest.raises(BenchError, match="ONNX export of .* failed .*frobnicate") as info:
        build_encoder(tiny_model, "onnx", threads=1, cache_dir=model_cache_dir)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def distil_texts(tiny_texts):
    return tiny_texts + [f"profile {i}: " + " ".join(tiny_texts[i % 10].split()[:3]) for i in range(30)]


FAST = DistilSettings(epochs=2, batch_size=8, time_budget_s=60)


def test_distilled_student_has_half_the_layers(tiny_model, model_cache_dir, distil_texts, tiny_texts):
    enc = build_encoder(
        tiny_model, "distilled", threads=1, distill_texts=distil_texts, cache_dir=model_cache_dir, distill=FAST
    )
    assert enc.variant == "distilled"
    assert enc.config()["layers"] == 1
    _unit_rows(enc.encode(tiny_texts), len(tiny_texts))
    notes = enc.preparation.notes["distil"]
    assert notes["initialised_from_teacher_layers"] == [1]
    assert notes["steps"] > 0 and notes["heldout_texts"] > 0
    assert enc.preparation.seconds > 0 and notes["file_bytes"] > 0
    assert enc.cost_only is True  # a student of a random teacher stays cost-only


def test_distilled_student_is_reused(tiny_model, model_cache_dir, distil_texts):
    first = build_encoder(
        tiny_model, "distilled", threads=1, distill_texts=distil_texts, cache_dir=model_cache_dir, distill=FAST
    )
    again = build_encoder(
        tiny_model,
        "distilled",
        threads=1,
        distill_texts=list(reversed(distil_texts)),
        cache_dir=model_cache_dir,
        distill=FAST,
    )
    assert again.preparation.notes["distil"]["reused_from_cache"] is True
    assert again.preparation.reused_s == pytest.approx(again.preparation.seconds)
    assert again.resolved_model.path == first.resolved_model.path


def test_distillation_moves_student_towards_teacher(tmp_path, model_cache_dir, distil_texts):
    """Training must improve agreement over the layer-copy initialisation (no learning vs learning)."""
    from bench.models import resolve_model
    from bench.variants.distilled import distil
    from tests.support.models import build_tiny_model

    # large init: the dropped teacher layer really changes the output, so the student has something to learn
    tiny_model = resolve_model(
        str(build_tiny_model(tmp_path / "strong", initializer_range=0.5, seed=1)), cache_dir=model_cache_dir
    )
    short, _ = distil(
        tiny_model,
        distil_texts,
        DistilSettings(epochs=1, batch_size=8, learning_rate=1e-9, heldout_share=0.0),
        cache_dir=model_cache_dir,
    )
    trained, _ = distil(
        tiny_model,
        distil_texts,
        DistilSettings(epochs=8, batch_size=8, learning_rate=3e-3, heldout_share=0.0),
        cache_dir=model_cache_dir,
    )
    teacher = build_encoder(tiny_model, "fp32", threads=1, cache_dir=model_cache_dir).encode(distil_texts)
    cos = [
        agreement(teacher, build_encoder(s, "fp32", threads=1).encode(distil_texts))["cosine_mean"]
        for s in (short, trained)
    ]
    assert cos[1] > cos[0]


def test_distilled_then_onnx_int8(tiny_model, model_cache_dir, distil_texts, tiny_texts):
    enc = build_encoder(
        tiny_model,
        "distilled+onnx-int8",
        threads=1,
        distill_texts=distil_texts,
        cache_dir=model_cache_dir,
        distill=FAST,
    )
    assert enc.variant == "distilled+onnx-int8" and enc.config()["layers"] == 1
    _unit_rows(enc.encode(tiny_texts), len(tiny_texts))
    prep = enc.preparation
    assert prep.seconds >= prep.notes["distil"]["seconds"]  # distil + export + quantise
    assert "onnx-int8" in prep.notes


def test_distilled_without_texts_is_config_error(tiny_model, model_cache_dir):
    with pytest.raises(ConfigError, match="needs texts"):
        build_encoder(tiny_model, "distilled", threads=1, cache_dir=model_cache_dir)


def test_layer_picks():
    assert teacher_layer_indices(6, 3) == [0, 3, 5]  # first and last kept
    assert teacher_layer_indices(12, 6) == [0, 2, 4, 7, 9, 11]
    assert teacher_layer_indices(2, 1) == [1]
    assert teacher_layer_indices(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ConfigError):
        teacher_layer_indices(2, 3)


def test_cross_encoder_runs_under_onnx_int8(tiny_model, model_cache_dir):
    eager = build_cross_encoder(tiny_model, "fp32", threads=1, cache_dir=model_cache_dir)
    ort = build_cross_encoder(tiny_model, "onnx", threads=1, cache_dir=model_cache_dir)
    q, d = ["likes comedies"] * 3, ["Toy Story (1995)", "Seven (1995)", "Babe (1995)"]
    assert (eager.encode_pairs(q, d) * ort.encode_pairs(q, d)).sum(axis=1).min() >= 0.999
    q8 = build_cross_encoder(tiny_model, "onnx-int8", threads=1, cache_dir=model_cache_dir)
    assert q8.encode_pairs(q, d).shape == (3, 32)


def test_onnx_on_cuda_that_silently_falls_back_to_cpu_is_an_error(tiny_model, model_cache_dir, monkeypatch):
    """ONNX Runtime drops to the CPU provider without raising when CUDA cannot load: a cell would then time
    the CPU under a cuda label. The backend checks which providers the session really got."""
    import onnxruntime as ort

    from bench.variants.onnx import OrtBackend, export_onnx

    file, _ = export_onnx(tiny_model, model_cache_dir)
    real_session = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(
        ort,
        "InferenceSession",
        lambda path, sess_options=None, providers=None: real_session(
            path, sess_options=sess_options, providers=["CPUExecutionProvider"]
        ),
    )
    with pytest.raises(BenchError, match="fell back to CPUExecutionProvider"):
        OrtBackend(file, "float32", "cuda", threads=1)
