"""llm-rerank: classic retrieval of N candidates, cross-encoder re-ranking within them."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.errors import ConfigError  # noqa: E402
from bench.quality import evaluate_ranking  # noqa: E402
from bench.recommenders import registry  # noqa: E402
from bench.recommenders.llm.rerank import Rerank, blend_stats, fit_logistic, list_ndcg, retriever_features  # noqa: E402


@pytest.fixture(scope="module")
def split(toy_llm_split):
    return toy_llm_split


@pytest.fixture(scope="module")
def rerank(tiny, split):
    return Rerank(**tiny, threads=1, n_candidates=8, train_candidates=8, train_users=24).fit(split.train_set())


def test_registry_builds_rerank_with_a_classic_retriever(tiny):
    assert isinstance(registry.get("llm-rerank").build(**tiny, threads=1), Rerank)
    with pytest.raises(ConfigError, match="classic"):
        Rerank(**tiny, retriever="llm-two-tower")
    with pytest.raises(ConfigError, match="unknown recommender"):
        Rerank(**tiny, retriever="nope")


def test_rerank_reorders_only_within_the_retrieved_n(rerank, split):
    users = np.arange(split.n_users)
    retrieved = rerank.retriever.recommend(users, 8).items
    top = rerank.recommend(users, 8)
    assert top.items.shape == (split.n_users, 8)
    for r, t in zip(retrieved, top.items):
        assert set(r.tolist()) == set(t.tolist())
    assert not np.array_equal(retrieved, top.items)  # the cross-encoder did change some order
    assert np.all(np.diff(top.scores, axis=1) <= 0)


def test_top_k_below_n_is_a_prefix_and_beyond_n_the_retriever_order_continues(rerank, split):
    users = np.arange(6)
    full = rerank.recommend(users, 8)
    np.testing.assert_array_equal(rerank.recommend(users, 3).items, full.items[:, :3])
    long = rerank.recommend(users, 12)
    retrieved = rerank.retriever.recommend(users, 12).items
    np.testing.assert_array_equal(long.items[:, :8], full.items)
    np.testing.assert_array_equal(long.items[:, 8:], retrieved[:, 8:])
    assert np.all(np.diff(long.scores, axis=1) <= 0)


def test_n_candidates_sets_the_cross_encoder_work_per_request(tiny, split, rerank):
    work = rerank.request_work(np.arange(3))
    assert work.kind == "pairs" and work.forwards_per_request == 8
    assert rerank.stats["candidates_per_request"] == 8
    wider = Rerank(**tiny, threads=1, n_candidates=16, train_candidates=8).fit(split.train_set())
    assert wider.request_work(np.arange(3)).forwards_per_request == 16
    top = wider.recommend(np.arange(3), 16)
    retrieved = wider.retriever.recommend(np.arange(3), 16).items
    assert all(set(a.tolist()) == set(b.tolist()) for a, b in zip(top.items, retrieved))


def test_seen_items_stay_excluded_and_head_is_trained_on_train_only(rerank, split):
    top = rerank.recommend(np.arange(split.n_users), 8)
    seen = split.train_set().matrix()
    assert not np.any(np.asarray(seen[np.repeat(np.arange(split.n_users), 8), top.items.ravel()]))
    assert rerank.stats["train_pairs"] > 0 and rerank.stats["train_positives"] > 0
    assert rerank.encoder.head_weight is not None and rerank.stats["train_s"] >= 0
    assert evaluate_ranking(rerank, split, (5,))["evaluated_users"] > 0


def test_blend_none_scores_by_the_cross_encoder_alone(tiny, split):
    rec = Rerank(**tiny, threads=1, n_candidates=8, train_candidates=8, blend="none").fit(split.train_set())
    assert not np.any(rec.retriever_weights)
    users = np.arange(4)
    cand = rec.retriever.recommend(users, 8).items
    direct = rec.encoder.score_pairs(
        [rec._profiles[u] for u in np.repeat(users, 8)], [rec._item_texts[i] for i in cand.ravel()]
    ).reshape(4, 8)
    np.testing.assert_allclose(np.sort(direct, axis=1)[:, ::-1], rec.recommend(users, 8).scores, rtol=1e-5, atol=1e-6)


def test_cost_only_flag_and_footprint(rerank):
    assert rerank.cost_only
    assert rerank.footprint() > rerank.encoder.footprint() + rerank.retriever.footprint()


def test_logistic_head_separates_a_separable_problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    y = (x[:, 0] - x[:, 2] > 0).astype(float)
    w, b = fit_logistic(x, y, l2=1e-4)
    assert np.mean(((x @ w + b) > 0) == (y > 0)) > 0.97 and w[0] > 0 > w[2]


def test_flops_per_user_counts_n_pair_forwards_plus_the_retriever(rerank):
    users = np.arange(5)
    work = rerank.request_work(users)
    assert work.token_counts.size == 5 * 8
    from bench.measure.flops import request_flops

    assert request_flops(work) > request_flops(rerank.retriever.request_work(users)) > 0
    assert work.other is not None  # the retriever's scoring is counted as the other model's share


def test_unpenalised_features_keep_their_weight_under_a_huge_penalty():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(float)
    w, _ = fit_logistic(x, y, np.array([1e4, 0.0]))
    assert abs(w[0]) < 1e-2 < w[1]


def test_list_ndcg_and_retriever_features_by_hand():
    labels = np.array([[0, 1, 0], [1, 0, 0]])
    assert list_ndcg(np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]]), labels) == pytest.approx((1 / np.log2(3) + 1) / 2)
    feats = retriever_features(np.array([[4.0, 2.0, 0.0, -np.inf]]), ref_depth=3)
    np.testing.assert_allclose(feats[0, :, 0], np.log1p(np.arange(4)), rtol=1e-6)
    np.testing.assert_allclose(feats[0, :3, 1], [1.2247449, 0.0, -1.2247449], rtol=1e-5)
    assert feats[0, 3, 1] == -10.0  # an unscorable candidate sorts last


def test_learned_blend_records_its_cross_validated_penalty(rerank):
    assert rerank.stats["l2"] in {float(v) for v in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e3)}
    assert set(rerank.stats["cv_ndcg_by_l2"]) and 0 <= rerank.stats["cv_ndcg_retriever_order"] <= 1


def test_blend_stats_say_when_the_cross_encoder_reorders_nothing():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 6, 4 + 2))  # 50 lists of 6 candidates, 4 cross-encoder dims + rank and score
    x[..., 4] = np.log1p(np.arange(6))  # the rank feature, in the retriever's order
    ignored = blend_stats(x, np.array([0.0, 0.0, 0.0, 0.0, -2.0, 0.0]), dim=4)
    assert ignored["blend_ce_weight_norm"] == 0.0 and ignored["blend_ce_spread_share"] == 0.0
    assert ignored["blend_order_kept_share"] == 1.0 and ignored["blend_rank_weight"] == -2.0
    heard = blend_stats(x, np.array([3.0, 0.0, 0.0, 0.0, -0.1, 0.0]), dim=4)
    assert heard["blend_ce_weight_norm"] == 3.0 and heard["blend_ce_spread_share"] > 0.9
    assert heard["blend_order_kept_share"] < 0.1


def test_a_fitted_rerank_records_its_blend_weights_and_a_crushing_penalty_silences_the_cross_encoder(
    rerank, tiny, split
):
    for key in (
        "blend_ce_weight_norm",
        "blend_rank_weight",
        "blend_score_weight",
        "blend_ce_spread_share",
        "blend_order_kept_share",
    ):
        assert isinstance(rerank.stats[key], float), key
    muted = Rerank(**tiny, threads=1, n_candidates=8, train_candidates=8, train_users=24, l2=1e3).fit(split.train_set())
    assert muted.stats["blend_ce_weight_norm"] < 1e-3 < rerank.stats["blend_ce_weight_norm"]
    assert muted.stats["blend_ce_spread_share"] < 1e-3
