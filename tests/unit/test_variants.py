"""Variants on tiny random models saved and reloaded through the real loading path."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import BenchError, ConfigError
from bench.variants import VARIANTS, build_cross_encoder, build_encoder, parse_variant
from bench.variants.device import cuda_available, resolve_device


@pytest.fixture(scope="module")
def fp32(tiny_model, model_cache_dir):
    return build_encoder(tiny_model, "fp32", threads=1, cache_dir=model_cache_dir)


def test_fp32_rows_are_unit_norm_and_shaped(fp32, tiny_texts):
    vecs = fp32.encode(tiny_texts, batch_size=4)
    assert vecs.shape == (len(tiny_texts), 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_fp32_equals_manual_mean_pooling_in_input_order(fp32, tiny_model, tiny_texts):
    """Length-sorted batching must return rows in the caller's order, equal to an unbatched forward."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model.path, local_files_only=True)
    module = AutoModel.from_pretrained(tiny_model.path, local_files_only=True).eval()
    rows = []
    with torch.inference_mode():
        for text in tiny_texts:
            enc = tok([text], return_tensors="pt", truncation=True, max_length=128)
            h = module(**enc).last_hidden_state[0]
            v = h.mean(dim=0)
            rows.append((v / v.norm()).numpy())
    np.testing.assert_allclose(fp32.encode(tiny_texts, batch_size=3), np.stack(rows), atol=1e-5)


def test_empty_input_gives_empty_matrix(fp32):
    assert fp32.encode([]).shape == (0, 32)
    assert fp32.token_counts([]).shape == (0,)


def test_a_bare_string_is_rejected(fp32):
    with pytest.raises(ConfigError, match="wrap it in a list"):
        fp32.encode("one text")


def test_token_counts_respect_truncation(tiny_model, model_cache_dir):
    enc = build_encoder(tiny_model, "fp32", threads=1, max_length=8, cache_dir=model_cache_dir)
    counts = enc.token_counts(["a", "a b c d e f g h i j k l m n"])
    assert counts.tolist() == [3, 8]  # [CLS] a [SEP]; truncated to max_length


def test_config_reports_architecture_and_threads(fp32):
    cfg = fp32.config()
    assert (cfg["layers"], cfg["hidden"], cfg["heads"], cfg["intermediate"], cfg["vocab"]) == (2, 32, 2, 64, 30522)
    assert cfg["threads"] == 1 and cfg["max_length"] == 128 and cfg["n_parameters"] > 0
    assert fp32.cost_only is True


def test_fp32_footprint_is_parameter_bytes(fp32, tiny_model):
    assert fp32.footprint() == pytest.approx(tiny_model.n_parameters * 4, rel=0.01)
    assert fp32.preparation.file_bytes > 0


@pytest.mark.parametrize("bad", ["fp8", "distilled+distilled", "onnx+int8", ""])
def test_unknown_variant_lists_choices(bad):
    with pytest.raises(ConfigError, match="choose one of"):
        parse_variant(bad)


def test_composed_variants_parse():
    assert parse_variant("distilled+onnx-int8") == (True, "onnx-int8")
    assert parse_variant("distilled") == (True, "fp32")
    assert "distilled+onnx-int8" in VARIANTS and "fp32" in VARIANTS


def test_fp16_on_cpu_is_one_line_error(tiny_model, model_cache_dir):
    with pytest.raises(BenchError, match="fp16 needs CUDA") as info:
        build_encoder(tiny_model, "fp16", device="cpu", threads=1, cache_dir=model_cache_dir)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_cuda_on_cpu_machine_is_one_line_error(tiny_model):
    with pytest.raises(BenchError, match="CUDA is not available on this machine; use --device cpu"):
        build_encoder(tiny_model, "fp32", device="cuda")


def test_auto_device_and_unknown_device():
    assert resolve_device("auto") == ("cuda" if cuda_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")


def test_bf16_on_cpu_runs_and_agrees(fp32, tiny_model, tiny_texts, model_cache_dir):
    enc = build_encoder(tiny_model, "bf16", threads=1, cache_dir=model_cache_dir)
    vecs = enc.encode(tiny_texts)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    cos = (vecs * fp32.encode(tiny_texts)).sum(axis=1)
    assert cos.min() > 0.98
    assert enc.footprint() < fp32.footprint() * 0.6  # half-width weights


def test_cross_encoder_pairs_and_head(tiny_model, model_cache_dir):
    cross = build_cross_encoder(tiny_model, "fp32", threads=1, cache_dir=model_cache_dir)
    q, d = ["likes comedies", "likes thrillers"], ["Toy Story (1995)", "Seven (1995)"]
    reps = cross.encode_pairs(q, d)
    assert reps.shape == (2, 32)
    with pytest.raises(ConfigError, match="no score head"):
        cross.score_pairs(q, d)
    w = np.arange(32, dtype=np.float32)
    scores = cross.set_head(w, 0.5).score_pairs(q, d)
    np.testing.assert_allclose(scores, reps @ w + 0.5, rtol=1e-5)
    # the pair is one sequence: [CLS] q [SEP] d [SEP]
    assert cross.token_counts(["a"], ["b"]).tolist() == [5]
    with pytest.raises(ConfigError, match="pair up"):
        cross.encode_pairs(q, d[:1])
    with pytest.raises(ConfigError, match="dimensions"):
        cross.set_head(np.ones(5))


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="CUDA is not available on this machine (GPU variants skipped)")
@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_cuda_variants_agree_with_cpu_fp32(variant, fp32, tiny_model, tiny_texts, model_cache_dir):
    enc = build_encoder(tiny_model, variant, device="cuda", threads=1, cache_dir=model_cache_dir)
    assert enc.device == "cuda"
    cos = (enc.encode(tiny_texts) * fp32.encode(tiny_texts)).sum(axis=1)
    assert cos.min() > (0.9999 if variant == "fp32" else 0.99)
