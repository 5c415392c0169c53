"""llm-decoder-rank: decoders from public configs rank a retriever's candidates pointwise, with a shared prefix,
or listwise; shared-prefix gives pointwise's scores; the work, memory and hosted price of a request."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.recommenders.generative.archs import ARCHS, DecoderArch

torch = pytest.importorskip("torch")

TINY = {
    kind: DecoderArch(f"tiny-{kind}", kind, 32, 2, 4, 4 if kind == "gpt2" else 2, 64, 3000, True, 1024, "test")
    for kind in ("llama", "qwen2", "gpt2")
}


@pytest.fixture(scope="module")
def tiny_decoders(tmp_path_factory):
    """One tiny random decoder per kind, saved with save_pretrained and loaded back by path (as a user's would)."""
    from bench.recommenders.generative.engine import save_random_decoder

    root = tmp_path_factory.mktemp("decoders")
    torch.set_num_threads(1)
    return {kind: str(save_random_decoder(root / kind, arch, seed=0)) for kind, arch in TINY.items()}


# ---------------------------------------------------------------- architectures and their analytic figures


@pytest.mark.parametrize("kind", list(TINY))
def test_parameter_count_is_the_saved_checkpoints(tiny_decoders, kind):
    from pathlib import Path

    from bench.models import count_parameters

    assert TINY[kind].n_parameters() == count_parameters(Path(tiny_decoders[kind]))


def test_public_architectures_have_their_published_sizes():
    assert ARCHS["qwen2.5-0.5b"].n_parameters() == 494_032_768
    assert ARCHS["qwen2.5-1.5b"].n_parameters() == 1_543_714_304
    assert ARCHS["gpt2"].n_parameters() == 124_439_808
    assert ARCHS["smollm-135m"].n_parameters() == 134_515_008
    # fp32 weights of a 7B model: the figure the memory pre-check refuses with
    assert ARCHS["qwen2.5-7b"].weight_bytes("fp32") / 2**30 == pytest.approx(28.37, abs=0.01)


def test_kv_cache_per_token_counts_only_the_key_value_heads():
    qwen = ARCHS["qwen2.5-0.5b"]  # 24 layers, 2 kv heads of 64
    assert qwen.kv_bytes_per_token("fp32") == 2 * 24 * 2 * 64 * 4
    assert qwen.kv_bytes_per_token("bf16") == qwen.kv_bytes_per_token("fp32") // 2


def test_decoder_pass_flops_reduce_to_the_gpt2_generation_count():
    from bench.measure.flops import TransformerConfig, decoder_generate_flops, decoder_pass_flops

    gpt2 = ARCHS["gpt2"]
    generate = decoder_generate_flops(
        TransformerConfig(gpt2.layers, gpt2.hidden, gpt2.heads, gpt2.intermediate, gpt2.vocab), 100, 5
    )["total_flops"]
    passes = decoder_pass_flops(gpt2.flops_config(), [100, 1, 1, 1, 1], [0, 100, 101, 102, 103], 1)
    assert passes.sum() == pytest.approx(generate, rel=1e-12)


def test_grouped_query_attention_and_a_gated_mlp_change_the_count_by_hand():
    from bench.measure.flops import decoder_pass_flops

    # one layer, H=8, 4 query heads, 2 kv heads (kv width 4), I=16, gated; 3 new tokens after 2 cached, no logits
    config = {"layers": 1, "hidden": 8, "heads": 4, "kv_heads": 2, "intermediate": 16, "vocab": 10, "gated_mlp": True}
    per_token = 4 * 64 + 4 * 8 * 4 + 6 * 8 * 16  # Q,O + K,V + gated MLP
    attention = 4 * 8 * (3 + 4 + 5)  # positions 3, 4, 5
    assert float(decoder_pass_flops(config, 3, 2, 0)) == 3 * per_token + attention
    assert float(decoder_pass_flops(config, 3, 2, 1)) == 3 * per_token + attention + 2 * 8 * 10
    with pytest.raises(ConfigError, match="logits <= new tokens"):
        decoder_pass_flops(config, 1, 0, 2)


# ---------------------------------------------------------------- the engine: three executions


@pytest.mark.parametrize("kind", list(TINY))
def test_shared_prefix_gives_pointwise_scores_within_1e4_over_several_batches(tiny_decoders, kind):
    from bench.recommenders.generative.engine import DecoderEngine, Marks

    engine = DecoderEngine(tiny_decoders[kind], "fp32", threads=1)
    rng = np.random.default_rng(1)
    prefix = rng.integers(0, engine.vocab, 37)
    suffixes = [rng.integers(0, engine.vocab, int(n)) for n in rng.integers(3, 12, 9)]  # ragged: padding matters
    naive = engine.score_pointwise(prefix, suffixes, 7, batch_size=4)
    marks = Marks()
    shared = engine.score_shared_prefix(prefix, suffixes, 7, batch_size=4, marks=marks)
    assert np.abs(naive - shared).max() <= 1e-4
    assert marks.prefill_done_ns > 0
    # a different suffix changes the score: the scores read each prompt's own last token
    assert np.ptp(shared) > 0
    # each score is a log-probability
    assert np.all(shared < 0)


def test_generation_yields_exactly_the_asked_number_of_tokens(tiny_decoders):
    from bench.recommenders.generative.engine import DecoderEngine

    engine = DecoderEngine(tiny_decoders["llama"], "fp32", threads=1)
    tokens = engine.generate(np.arange(20) % engine.vocab, 7)
    assert tokens.shape == (7,) and np.all((tokens >= 0) & (tokens < engine.vocab))


def test_a_prompt_longer_than_the_model_positions_is_one_clear_line(tiny_decoders):
    from bench.recommenders.generative.engine import DecoderEngine

    engine = DecoderEngine(tiny_decoders["gpt2"], "fp32", threads=1)
    with pytest.raises(ConfigError, match="exceeds tiny-gpt2's 1024 positions"):
        engine.check_length(1500, "the listwise prompt")


def test_unknown_architecture_and_variant_fail_before_any_work():
    from bench.recommenders.generative.engine import DecoderEngine

    with pytest.raises(ConfigError, match="unknown decoder architecture 'qwen9'"):
        DecoderEngine("qwen9", "fp32")
    with pytest.raises(ConfigError, match="variant 'fp16'"):
        DecoderEngine("gpt2", "fp16")


# ---------------------------------------------------------------- prompts


def test_ids_fold_into_the_vocabulary_and_histories_are_the_latest_train_items_in_time_order():
    from bench.data.dataset import Interactions
    from bench.recommenders.generative.prompts import histories, model_ids

    assert model_ids(np.array([5, 199_999, 3000]), 3000).tolist() == [5, 199_999 % 3000, 0]
    inter = Interactions(
        np.array([0, 0, 0, 1], dtype=np.int32),
        np.array([7, 8, 9, 3], dtype=np.int32),
        np.ones(4, dtype=np.float32),
        np.array([30, 10, 20, 5]),
    )
    got = histories(inter, 3, history_len=2)
    assert got[0].tolist() == [9, 7] and got[1].tolist() == [3] and got[2].size == 0


# ---------------------------------------------------------------- the recommender


@pytest.fixture(scope="module")
def fitted(tiny_decoders, toy_llm_split):
    from bench.recommenders.generative.rank import DecoderRank

    out = {}
    for mode in ("shared-prefix", "listwise"):
        out[mode] = DecoderRank(
            model=tiny_decoders["llama"],
            mode=mode,
            n_candidates=12,
            history_len=4,
            list_k=5,
            batch_size=5,
            timed_requests=2,
            compare_rounds=1,
            threads=1,
        ).fit(toy_llm_split.train_set())
    return out


def test_recommendations_are_unseen_candidates_of_the_retriever(fitted, toy_llm_split):
    rec = fitted["shared-prefix"]
    users = toy_llm_split.test_users()[:3]
    top = rec.recommend(users, 5)
    cands = rec.candidates(users)
    seen = toy_llm_split.train_set().matrix()
    for j, u in enumerate(users):
        assert set(top.items[j]) <= set(cands[j])
        assert not seen[u, top.items[j]].toarray().any()
        assert np.all(np.diff(top.scores[j]) <= 0)  # best first
    assert rec.cost_only
    listwise = fitted["listwise"].recommend(users, 5)
    assert all(len(set(row)) == 5 and set(row) <= set(c) for row, c in zip(listwise.items, cands))


def test_the_run_records_agreement_ratio_phases_and_the_request_shape(fitted, toy_llm_split):
    rows = {r["metric"]: r for r in fitted["shared-prefix"].extra_measurements(toy_llm_split.test_users(), 5)}
    assert rows["execution_max_abs_diff"]["value"] <= 1e-4 and rows["execution_max_abs_diff"]["n"] == 12
    assert rows["naive_over_shared_prefix_time"]["value"] > 0
    assert (
        rows["naive_over_shared_prefix_tokens"]["value"] > 1
        and rows["naive_over_shared_prefix_tokens"]["label"] == "estimated"
    )
    assert len(rows["pointwise_request"]["samples_ms"]) == 1 and len(rows["suffix_pass"]["samples_ms"]) == 2
    assert rows["api_calls_per_rec"]["value"] == 12 and rows["output_tokens_per_rec"]["value"] == 0
    assert rows["kv_cache_bytes_per_rec"]["label"] == "estimated"
    listwise = {r["metric"]: r for r in fitted["listwise"].extra_measurements(toy_llm_split.test_users(), 5)}
    assert "execution_max_abs_diff" not in listwise  # nothing to compare in one generated list
    assert listwise["api_calls_per_rec"]["value"] == 1
    assert listwise["output_tokens_per_rec"]["value"] == fitted["listwise"].book.answer_list_tokens(5)
    assert len(listwise["time_per_output_token"]["samples_ms"]) == 2 and listwise["decode_tokens_per_s"]["value"] > 0


def test_shared_prefix_feeds_the_decoder_fewer_tokens_than_pointwise(fitted, toy_llm_split):
    from bench.measure.flops import decoder_pass_flops

    rec = fitted["shared-prefix"]
    users = toy_llm_split.test_users()[:4]
    flops = {}
    for mode in ("pointwise", "shared-prefix"):
        work = rec.decoder_work(users, mode)
        p = work["passes"]
        flops[mode] = decoder_pass_flops(work["config"], p[:, 0], p[:, 1], p[:, 2]).sum()
        assert work["n_requests"] == 4
    assert flops["pointwise"] > 2 * flops["shared-prefix"]


def test_bad_parameters_fail_in_one_line():
    from bench.recommenders.generative.rank import DecoderRank

    with pytest.raises(ConfigError, match="mode='beam'"):
        DecoderRank(mode="beam")
    with pytest.raises(ConfigError, match="retriever 'llm-two-tower' is itself a language-model"):
        DecoderRank(retriever="llm-two-tower")
    with pytest.raises(ConfigError, match="compare_users=-1"):
        DecoderRank(compare_users=-1)


# ---------------------------------------------------------------- memory pre-check, hosted price, size groups


def test_the_memory_pre_check_refuses_a_7b_fp32_decoder_with_the_figure():
    from bench.memcheck import FitMemoryError, check_fit_memory

    with pytest.raises(FitMemoryError, match=r"qwen2.5-7b in fp32 here: it needs about 28.4 GiB .* 24.0 GiB"):
        check_fit_memory("llm-decoder-rank", 1, 1, 1, available_bytes=24 * 2**30, params={"model": "qwen2.5-7b"})
    # bf16 halves it: 14.2 GiB fits 24 GiB
    assert (
        check_fit_memory(
            "llm-decoder-rank", 1, 1, 1, available_bytes=24 * 2**30, params={"model": "qwen2.5-7b"}, variant="bf16"
        )
        == ARCHS["qwen2.5-7b"].n_parameters() * 2
    )


def test_a_local_decoder_directory_is_sized_from_its_checkpoint(tiny_decoders):
    from bench.memcheck import fit_memory_bytes

    assert (
        fit_memory_bytes("llm-decoder-rank", 1, 1, 1, params={"model": tiny_decoders["qwen2"]})
        == TINY["qwen2"].n_parameters() * 4
    )


def test_the_same_request_is_priced_at_hosted_rates_with_a_cached_prefix_only_when_long_enough():
    from bench.analysis.decoders import same_prompt_usd_per_rec
    from bench.cost import HostedPrice

    price = HostedPrice(
        "x",
        "p",
        "m",
        usd_per_1m_input_tokens=1.0,
        usd_per_1m_output_tokens=4.0,
        source="s",
        date="d",
        usd_per_1m_cached_input_tokens=0.1,
        min_cached_prefix_tokens=1000,
    )
    usd, cached = same_prompt_usd_per_rec(price, calls=50, input_tokens=50 * 300, prefix_tokens=200, output_tokens=50)
    assert not cached and usd == pytest.approx((15_000 * 1.0 + 50 * 4.0) / 1e6)
    usd, cached = same_prompt_usd_per_rec(price, calls=10, input_tokens=10 * 1200, prefix_tokens=1100, output_tokens=10)
    # nine calls read the prefix from the provider's cache; the first wrote it
    assert cached and usd == pytest.approx(((12_000 - 9 * 1100) * 1.0 + 9 * 1100 * 0.1 + 10 * 4.0) / 1e6)


def test_size_fits_never_mix_decoder_families_and_ignore_measurement_only_parameters():
    from bench.analysis.sizes import add_size_figures
    from bench.results import CellResult, RunResult

    run = RunResult(run_id="r", scenario={"name": "generative"}, provenance={})
    for model, extra in (
        ("smollm-135m", {}),
        ("qwen2.5-0.5b", {}),
        ("qwen2.5-1.5b", {"compare_candidates": 4}),
        ("gpt2", {}),
        ("gpt2-medium", {}),
    ):
        n = ARCHS[model].n_parameters()
        c = CellResult(
            cell=f"d/s/llm-decoder-rank[{model}]/fp32/cpu",
            dataset="d",
            split="s",
            recommender="llm-decoder-rank",
            variant="fp32",
            device="cpu",
            label="cost-only",
            params={"model": model, "mode": "shared-prefix", **extra},
        )
        c.add("n_parameters", n, "")
        c.add("throughput_users_per_s", 1e9 / n, "users/s", load="offline", n=3)
        c.add("usd_per_1k_recs", n / 1e9, "usd", load="offline")
        run.cells.append(c)
    fits = {f.family: f for f in add_size_figures(run) if f.metric == "usd_per_1k_recs"}
    assert set(fits) == {"llama-style", "gpt2"}
    assert fits["llama-style"].fit.n == 3 and fits["llama-style"].fit.exponent == pytest.approx(1.0)
    assert {g.name for g in run.derived.size_fits} == {
        "d/s/size-fit[llm-decoder-rank llama-style]/fp32/cpu",
        "d/s/size-fit[llm-decoder-rank gpt2]/fp32/cpu",
    }
