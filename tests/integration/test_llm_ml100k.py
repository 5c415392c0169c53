"""The three language-model recommenders on the REAL all-MiniLM-L6-v2 and a small slice of MovieLens-100K.

The slice (the 80 most active users, the 300 items they rate most) keeps this under a few minutes on 2
cores. Skips with the reason where ML-100K or the MiniLM package is unavailable.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import BenchError

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")


def _slice(dataset, n_users: int = 80, n_items: int = 300):
    """The most active users and their most-rated items, re-indexed densely (a valid Dataset)."""
    from bench.data.dataset import Dataset, ItemText

    inter = dataset.interactions
    users = np.argsort(-np.bincount(inter.users, minlength=dataset.n_users), kind="stable")[:n_users]
    in_users = np.isin(inter.users, users)
    items = np.argsort(-np.bincount(inter.items[in_users], minlength=dataset.n_items), kind="stable")[:n_items]
    keep = in_users & np.isin(inter.items, items)
    sub = inter.subset(keep)
    u_new = np.full(dataset.n_users, -1, np.int32)
    u_new[np.sort(users)] = np.arange(n_users)
    i_new = np.full(dataset.n_items, -1, np.int32)
    i_sorted = np.sort(items)
    i_new[i_sorted] = np.arange(n_items)
    text = dataset.item_text
    item_text = ItemText([text.titles[i] for i in i_sorted], text.years[i_sorted], [text.genres[i] for i in i_sorted])
    from bench.data.dataset import Interactions

    sub = Interactions(u_new[sub.users], i_new[sub.items], sub.ratings, sub.timestamps)
    return Dataset(
        "ml-100k-slice",
        sub,
        n_users,
        n_items,
        item_text,
        dataset.user_ids[np.sort(users)],
        dataset.item_ids[i_sorted],
        source=dataset.source,
    )


@pytest.fixture(scope="module")
def split():
    try:
        from bench.data import load_dataset
        from bench.data.splits import make_split
    except ImportError as exc:
        pytest.skip(f"bench.data has no ML-100K loader: {exc}")
    try:
        dataset = load_dataset("ml-100k", allow_download=False, progress=False)
    except BenchError as exc:
        pytest.skip(f"MovieLens-100K unavailable (run `recbench data fetch ml-100k`): {exc}")
    return make_split(_slice(dataset), "random-8-1-1", seed=0)


@pytest.fixture(scope="module")
def minilm(model_cache_dir):
    from bench.models import resolve_model

    try:
        return resolve_model("minilm", cache_dir=model_cache_dir)
    except BenchError as exc:
        pytest.skip(f"real MiniLM unavailable: {exc}")


@pytest.fixture(scope="module")
def common(minilm, model_cache_dir):
    torch.set_num_threads(2)
    return {"model": minilm, "threads": 2, "cache_dir": model_cache_dir}


def test_two_tower_on_real_minilm_trained_beats_zero_shot(split, common):
    from bench.quality import evaluate_ranking
    from bench.recommenders.llm.two_tower import TwoTower

    zero = TwoTower(**common).fit(split.train_set())
    assert not zero.cost_only and zero.encoder.dim == 384 and zero.encoder.model_name == "all-MiniLM-L6-v2"
    assert zero.stats["n_items_encoded"] == split.n_items
    trained = TwoTower(mode="projection", **common).fit(split.train_set())
    q_zero = evaluate_ranking(zero, split, (10,))
    q_trained = evaluate_ranking(trained, split, (10,))
    assert q_zero["evaluated_users"] == q_trained["evaluated_users"] == len(split.test_users())
    assert q_trained["ndcg@10"] > q_zero["ndcg@10"]


def test_pairwise_on_real_minilm_naive_equals_cached_and_concat_cannot_personalise(split, common):
    from bench.quality import evaluate_rating
    from bench.recommenders.llm.pairwise import Pairwise

    rec = Pairwise(**common).fit(split.train_set())
    rng = np.random.default_rng(0)
    users = rng.integers(0, split.n_users, 48)
    items = rng.integers(0, split.n_items, 48)
    assert rec.execution_agreement(users, items)["max_abs_diff"] <= 1e-4
    order = np.argsort(-rec.score(np.arange(10)), axis=1, kind="stable")
    assert np.all(order == order[0])
    quality = evaluate_rating(rec, split)
    # a rating model worth the name beats predicting the train mean for everyone
    mean_rmse = float(np.sqrt(np.mean((split.test.ratings - split.train.ratings.mean()) ** 2)))
    assert quality["rmse"] < mean_rmse


def test_rerank_on_real_minilm_reorders_within_the_retrieved_candidates(split, common):
    from bench.recommenders.llm.rerank import Rerank

    rec = Rerank(n_candidates=10, train_users=30, train_candidates=10, **common).fit(split.train_set())
    users = split.test_users()[:8]
    retrieved = rec.retriever.recommend(users, 10).items
    top = rec.recommend(users, 10)
    assert all(set(a.tolist()) == set(b.tolist()) for a, b in zip(top.items, retrieved))
    assert rec.request_work(users).forwards_per_request == 10 and not rec.cost_only
