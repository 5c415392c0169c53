"""llm-explain: classic retrieval, then a decoder generates a fixed-length explanation per list."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.errors import ConfigError  # noqa: E402
from bench.measure.flops import generation_flops, request_flops  # noqa: E402
from bench.recommenders import registry  # noqa: E402
from bench.recommenders.llm.explain import Explain  # noqa: E402
from tests.support.llm_data import toy_split  # noqa: E402

NEW_TOKENS = 5


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory):
    """A 2-layer, 32-wide random GPT-2 with MiniLM's tokenizer (vocabulary 30,522), saved with save_pretrained."""
    from tests.support.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2") / "tiny-gpt2", kind="gpt2", name="tiny-gpt2")


@pytest.fixture(scope="module")
def split():
    return toy_split()


@pytest.fixture(scope="module")
def explain(tiny_gpt2_dir, model_cache_dir, split):
    torch.set_num_threads(1)
    return Explain(
        model=str(tiny_gpt2_dir),
        cache_dir=model_cache_dir,
        threads=1,
        new_tokens=NEW_TOKENS,
        list_titles=3,
        batch_size=4,
        ttft_requests=4,
        ttft_min_requests=4,
        warmup_requests=1,
    ).fit(split.train_set())


def test_registry_builds_it_and_refuses_encoder_only_variants_and_llm_retrievers(tiny_gpt2_dir):
    assert isinstance(registry.get("llm-explain").build(model=str(tiny_gpt2_dir), threads=1), Explain)
    with pytest.raises(ConfigError, match="onnx-int8"):
        Explain(model=str(tiny_gpt2_dir), variant="onnx-int8")
    with pytest.raises(ConfigError, match="classic"):
        Explain(model=str(tiny_gpt2_dir), retriever="llm-two-tower")
    with pytest.raises(ConfigError, match="new_tokens"):
        Explain(model=str(tiny_gpt2_dir), new_tokens=0)


def test_an_encoder_model_is_refused_at_fit_with_one_line(tiny_model_dir, model_cache_dir, split):
    with pytest.raises(ConfigError, match="encoder"):
        Explain(model=str(tiny_model_dir), cache_dir=model_cache_dir, threads=1).fit(split.train_set())


def test_serves_the_retrievers_list_and_generates_exactly_n_tokens_per_user(explain, split):
    users = np.arange(7)  # 7 users in micro-batches of 4: a padded, uneven last batch
    top = explain.recommend(users, 5)
    np.testing.assert_array_equal(top.items, explain.retriever.recommend(users, 5).items)
    gen = explain.last_generation
    assert gen.tokens.shape == (7, NEW_TOKENS)
    assert np.all(gen.prompt_tokens > 0)


def test_left_padding_does_not_change_a_users_generation(explain):
    users = np.arange(6)
    top = explain.retriever.recommend(users, 3)
    prompts = explain.prompts(users, top.items)
    together = explain.decoder.generate(prompts, NEW_TOKENS, batch_size=6).tokens
    alone = np.vstack([explain.decoder.generate([p], NEW_TOKENS, batch_size=1).tokens for p in prompts])
    lengths = explain.decoder.token_counts(prompts)
    assert len(set(lengths.tolist())) > 1  # the batch really was padded
    np.testing.assert_array_equal(together, alone)


def test_prompt_holds_profile_and_the_first_list_titles_titles(explain):
    top = explain.retriever.recommend(np.array([0]), 5)
    prompt = explain.prompts(np.array([0]), top.items)[0]
    shown = [explain._titles[i] for i in top.items[0]]
    assert all(t in prompt for t in shown[:3]) and not any(t in prompt for t in shown[3:])
    assert explain._profiles[0] in prompt


def test_extra_measurements_report_ttft_not_above_the_whole_request(explain, split):
    rows = explain.extra_measurements(split.test_users(), 5)
    by = {r["metric"]: r for r in rows}
    ttft, total = np.asarray(by["ttft"]["samples_ms"]), np.asarray(by["explain_request"]["samples_ms"])
    assert len(ttft) == len(total) == 4
    assert np.all(ttft > 0) and np.all(ttft <= total)
    tpot = np.asarray(by["time_per_output_token"]["samples_ms"])
    np.testing.assert_allclose(tpot, (total - ttft) / (NEW_TOKENS - 1))
    assert by["output_tokens_per_s"]["value"] == pytest.approx(NEW_TOKENS * 4 / (total.sum() / 1e3))


def test_flops_follow_the_measurement_packages_decoder_formula(explain, split):
    from bench.measure.flops import TransformerConfig, decoder_generate_flops

    facts = explain.decoder.facts
    cfg = TransformerConfig(
        layers=facts["layers"],
        hidden=facts["hidden"],
        heads=facts["heads"],
        intermediate=facts["intermediate"],
        vocab=facts["vocab"],
    )
    for p, n in ((1, 1), (7, 1), (13, 5), (40, 32)):
        ref = decoder_generate_flops(cfg, p, n, prefill_logits="last")["total_flops"]
        assert generation_flops(facts, np.array([p]), n)[0] == pytest.approx(ref, rel=1e-12)
    users = split.test_users()[:5]
    top = explain.retriever.recommend(users, 3)
    lengths = explain.decoder.token_counts(explain.prompts(users, top.items))
    expected = generation_flops(facts, lengths, NEW_TOKENS).mean() + request_flops(
        explain.retriever.request_work(users)
    )
    assert request_flops(explain.request_work(users)) == pytest.approx(expected)


def test_cost_only_follows_the_decoders_weights(explain):
    assert explain.cost_only  # build_tiny_model marks its random weights cost-only
    assert explain.stats["new_tokens_per_rec"] == NEW_TOKENS
    assert explain.footprint() > explain.retriever.footprint()
