"""bench.measure.flops: formulas hand-checked on tiny configs and against explicit matmul shapes."""

import numpy as np
import pytest
import scipy.sparse as sp

from bench.errors import ConfigError
from bench.measure.flops import (
    TransformerConfig,
    decoder_generate_flops,
    dense_scoring_flops,
    encoder_flops,
    measure_memory_bandwidth_gbs,
    measure_peak_flops,
    sparse_dense_flops,
    spgemm_flops,
    utilisation,
)

TINY = TransformerConfig(layers=2, hidden=4, heads=2, intermediate=8)


def encoder_layer_by_shapes(L, H, heads, F):
    """Every matrix product of a BERT layer as (m, k, n), summed at 2 m k n (F: the feed-forward width)."""
    d = H // heads
    shapes = [(L, H, H)] * 3 + [(L, d, L)] * heads + [(L, L, d)] * heads + [(L, H, H), (L, H, F), (L, F, H)]
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


# ---------------------------------------------------------------- one place for every FLOP count
# The formulas below are the ones recommenders and the cell used before bench.measure.flops became the only
# place that counts FLOPs, restated verbatim as oracles: the figures a run reports must not move by one bit.


def _old_encoder_flops(config, token_counts):
    lengths = np.asarray(token_counts, dtype=np.float64)
    h, i = float(config["hidden"]), float(config["intermediate"])
    per_layer = 8 * lengths * h * h + 4 * lengths * lengths * h + 4 * lengths * h * i
    return float(config["layers"]) * float(per_layer.sum())


def _old_generate_flops(facts, prompt_tokens, new_tokens):
    p = np.asarray(prompt_tokens, dtype=np.float64)
    h, i, v, layers = (float(facts[k]) for k in ("hidden", "intermediate", "vocab", "layers"))
    dense = 8 * h * h + 4 * h * i
    prefill = layers * (p * dense + 2 * h * p * (p + 1)) + 2 * h * v
    steps = max(int(new_tokens) - 1, 0)
    pos_sum = steps * p + steps * (steps + 1) / 2.0
    decode = layers * (steps * dense + 4 * h * pos_sum) + steps * 2 * h * v
    return prefill + decode


MINILM_CONFIG = {"layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536, "vocab": 30522}
GPT2_FACTS = {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "vocab": 50257}


def test_request_flops_of_an_encoder_work_equal_the_former_recommender_count_bit_for_bit():
    from bench.measure.flops import encoder_config_flops, request_flops, work_flops
    from bench.work import RequestWork

    counts = np.array([17, 33, 9, 128, 64], dtype=np.int64)
    retriever = RequestWork(n_requests=5, scoring_macs=123 * 1682, kind="scores")
    work = RequestWork(
        n_requests=5,
        encoder_config=MINILM_CONFIG,
        token_counts=counts,
        scoring_macs=5 * (1682 * 384),
        kind="texts",
        other=retriever,
    )
    old_total = _old_encoder_flops(MINILM_CONFIG, counts) + 2.0 * work.scoring_macs
    assert encoder_config_flops(MINILM_CONFIG, counts) == _old_encoder_flops(MINILM_CONFIG, counts)
    assert work_flops(work) == old_total
    # the former LLM mixin: total / users + the retriever's flops_per_user (2 x nnz x n_items / users)
    assert request_flops(work) == old_total / 5 + 2.0 * 123 * 1682 / 5


def test_request_flops_of_generations_and_decoder_passes_equal_the_former_counts_bit_for_bit():
    from bench.measure.flops import decoder_pass_flops, generation_flops, request_flops
    from bench.work import DecoderPasses, Generations, RequestWork

    prompts = np.array([41, 97, 230], dtype=np.int64)
    np.testing.assert_array_equal(
        generation_flops(GPT2_FACTS, prompts, 32), _old_generate_flops(GPT2_FACTS, prompts, 32)
    )
    explain = RequestWork(n_requests=3, generation=Generations(GPT2_FACTS, prompts, 32), kind="generation")
    assert request_flops(explain) == float(_old_generate_flops(GPT2_FACTS, prompts, 32).mean())
    # the former cell's decoder count: sum over passes / requests + the retriever's per request
    config = {**GPT2_FACTS, "kv_heads": 12, "gated_mlp": False}
    passes = np.array([[60, 0, 0], [7, 60, 1], [9, 60, 1], [60, 0, 0], [5, 60, 1]], dtype=np.float64)
    old = float(decoder_pass_flops(config, passes[:, 0], passes[:, 1], passes[:, 2]).sum()) / 2 + 2.0 * 8 * 40
    ials = RequestWork(n_requests=2, scoring_macs=2 * 8 * 40, kind="scores")
    work = RequestWork(n_requests=2, decoder=DecoderPasses(config, passes), kind="decoder", other=ials)
    assert request_flops(work) == old
