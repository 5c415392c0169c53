"""bench.measure.flops: formulas hand-checked on tiny configs and against explicit matmul shapes."""
import numpy as np
import pytest
import scipy.sparse as sp

from bench.errors import ConfigError
from bench.measure.flops import (TransformerConfig, decoder_generate_flops, dense_scoring_flops, encoder_flops,
                                 measure_memory_bandwidth_gbs, measure_peak_flops, sparse_dense_flops, spgemm_flops,
                                 utilisation)

TINY = TransformerConfig(layers=2, hidden=4, heads=2, intermediate=8)


def encoder_layer_by_shapes(L, H, heads, I):
    """Every matrix product of a BERT layer as (m, k, n), summed at 2 m k n."""
    d = H // heads
    shapes = [(L, H, H)] * 3 + [(L, d, L)] * heads + [(L, L, d)] * heads + [(L, H, H), (L, H, I), (L, I, H)]
    return sum(2 * m * k * n for m, k, n in shapes)


def test_encoder_flops_hand_computed_on_a_tiny_config():
    # L=3: 8*3*16 + 4*9*4 + 4*3*4*8 = 384 + 144 + 384 = 912; L=5: 640 + 400 + 640 = 1680; two layers
    assert encoder_flops(TINY, [3, 5]) == 2 * (912 + 1680)
    assert encoder_flops(TINY, [3, 5]) == 2 * sum(encoder_layer_by_shapes(L, 4, 2, 8) for L in (3, 5))
    assert encoder_flops(TINY, [3], pooler=True) == 2 * 912 + 2 * 16


def test_encoder_attention_term_is_quadratic_in_tokens():
    cfg = TransformerConfig(layers=1, hidden=8, heads=2, intermediate=32)
    lin = lambda L: 8 * L * 64 + 4 * L * 8 * 32  # noqa: E731
    assert encoder_flops(cfg, 20) - lin(20) == 4 * (encoder_flops(cfg, 10) - lin(10))


def test_minilm_forward_magnitude():
    # all-MiniLM-L6-v2: 6 layers, 384 wide, 12 heads, 1536 intermediate; ~22M non-embedding FLOPs per token x 2
    minilm = TransformerConfig(layers=6, hidden=384, heads=12, intermediate=1536, vocab=30522)
    per_token = encoder_flops(minilm, 32) / 32
    assert per_token == pytest.approx(2 * 6 * (12 * 384 * 384) + 6 * 4 * 32 * 384, rel=1e-12)


def test_decoder_generate_hand_computed():
    cfg = TransformerConfig(layers=1, hidden=4, heads=2, intermediate=16, vocab=10)
    out = decoder_generate_flops(cfg, prompt_tokens=3, new_tokens=3)
    # per token at position t: 8*16 + 4*4*16 + 4*t*4 = 384 + 16 t; logits 2*4*10 = 80
    assert out["prefill_flops"] == (384 * 3 + 16 * (1 + 2 + 3)) + 80
    assert out["decode_flops"] == (384 + 16 * 4 + 80) + (384 + 16 * 5 + 80)
    assert out["total_flops"] == out["prefill_flops"] + out["decode_flops"]
    all_logits = decoder_generate_flops(cfg, 3, 1, prefill_logits="all")
    assert all_logits["prefill_flops"] - out["prefill_flops"] == 2 * 80 and all_logits["decode_flops"] == 0


def test_config_from_hf_attribute_names():
    class Gpt2Cfg:
        n_layer, n_embd, n_head, n_inner, vocab_size = 12, 768, 12, None, 50257

    cfg = TransformerConfig.from_hf(Gpt2Cfg())
    assert (cfg.layers, cfg.hidden, cfg.heads, cfg.intermediate, cfg.vocab) == (12, 768, 12, 3072, 50257)
    with pytest.raises(ConfigError):
        TransformerConfig(layers=1, hidden=10, heads=3, intermediate=4)


def test_cf_scoring_flops():
    assert dense_scoring_flops(3, 4, 5) == 120
    assert sparse_dense_flops(nnz=7, n_cols=100) == 1400
    a = sp.random(30, 20, density=0.2, format="csr", random_state=1)
    b = sp.random(20, 25, density=0.3, format="csr", random_state=2)
    brute = 2 * int(((a.toarray() != 0).astype(int) @ (b.toarray() != 0).astype(int)).sum())
    assert spgemm_flops(a, b) == brute


def test_utilisation_percent_and_validation():
    assert utilisation(50e9, {"gflops": 100.0}) == pytest.approx(50.0)
    assert utilisation(1e9, 4e9) == pytest.approx(25.0)
    with pytest.raises(ConfigError):
        utilisation(1e9, 0.0)


def test_peak_and_bandwidth_microbenchmarks_report_labelled_rates():
    peak = measure_peak_flops(threads=1, size=64, seconds=0.01, backends=("numpy",))
    assert peak["label"] == "measured" and peak["gflops"] > 0 and peak["backends"]["numpy"]["reps"] >= 3
    assert peak["gflops"] <= peak["gflops_max"]
    bw = measure_memory_bandwidth_gbs(size_mb=4, seconds=0.01, backends=("numpy",))
    assert bw["gbs"] > 0 and bw["backends"]["numpy"]["triad_gbs"] > 0
    with pytest.raises(ConfigError):
        measure_peak_flops(dtype=np.int32, backends=("numpy",))
