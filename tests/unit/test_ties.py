"""Ranking and neighbour selection are uniquely defined under exact ties (audit defects a and b).

A tie group that straddles the k-th place must keep its lowest item indices, so that a top-10 list is the
first ten of the top-20 list (a figure at @10 cannot depend on which other cut-offs are evaluated), and a
k-nearest-neighbour model is the same model whatever the block size or the order its features come in.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bench.errors import BenchError
from bench.recommenders.base import top_k, top_k_indices
from bench.recommenders.classic._common import cosine_topk_rows


def _tied_scores(n_rows: int = 40, n_items: int = 500, seed: int = 0) -> np.ndarray:
    # few distinct values over many items: every row has large tie groups at every cut-off
    rng = np.random.default_rng(seed)
    return rng.integers(0, 6, size=(n_rows, n_items)).astype(np.float32)


def _reference(scores: np.ndarray, k: int) -> np.ndarray:
    # a full stable sort on (-score, index): the definition top_k must match
    return np.stack([np.lexsort((np.arange(r.size), -r))[:k] for r in scores])


@pytest.mark.parametrize("k", [1, 7, 10, 20, 50, 499, 500])
def test_top_k_breaks_a_straddling_tie_group_by_lower_item_index(k):
    scores = _tied_scores()
    assert np.array_equal(top_k_indices(scores, k), _reference(scores, k))


def test_top_10_is_the_prefix_of_top_20_and_top_50_under_ties():
    scores = _tied_scores(seed=3)
    users = np.arange(scores.shape[0])
    at10 = top_k(users, scores, 10).items
    for k in (20, 50):
        assert np.array_equal(top_k(users, scores, k).items[:, :10], at10)


def test_top_k_with_masked_items_ranks_minus_inf_ties_by_index_too():
    scores = _tied_scores(n_rows=5, n_items=30)
    scores[:, 3:] = -np.inf  # fewer finite scores than k
    assert np.array_equal(top_k_indices(scores, 10), _reference(scores, 10))


def _tied_rows() -> sp.csr_matrix:
    # row 0 shares exactly one column with each of rows 1..12, all of the same norm: twelve equal similarities
    rng = np.random.default_rng(1)
    dense = np.zeros((13, 60), np.float32)
    dense[0, :12] = 1.0
    for r in range(1, 13):
        dense[r, r - 1] = 1.0
        dense[r, 12 + rng.choice(48, size=11, replace=False)] = 1.0
    return sp.csr_matrix(dense)


def test_knn_neighbours_keep_the_lowest_indices_of_a_tie_group():
    x = _tied_rows()
    nbrs = cosine_topk_rows(x, k=5)
    row0 = nbrs[0]
    sims = row0.data
    assert np.allclose(sims, sims[0])  # the premise: row 0's twelve candidates tie
    assert sorted(row0.indices.tolist()) == [1, 2, 3, 4, 5]


def test_knn_neighbours_identical_across_block_sizes_and_feature_orders():
    x = _tied_rows()
    base = cosine_topk_rows(x, k=5)
    perm = np.random.default_rng(2).permutation(x.shape[1])
    for other in (
        cosine_topk_rows(x, k=5, block_rows=1),
        cosine_topk_rows(x, k=5, block_rows=4),
        cosine_topk_rows(sp.csr_matrix(x[:, perm]), k=5),
    ):
        assert (base != other).nnz == 0


@pytest.fixture(scope="module")
def ml100k_split():
    try:
        from bench.data import load_dataset
        from bench.data.splits import make_split

        dataset = load_dataset("ml-100k")
    except BenchError as exc:
        pytest.skip(f"MovieLens-100K unavailable: {exc}")
    return make_split(dataset, "random-8-1-1", seed=0)


@pytest.mark.slow
def test_pop_ndcg_at_10_does_not_depend_on_the_other_cutoffs(ml100k_split):
    from bench.quality import evaluate_ranking
    from bench.recommenders.registry import get

    rec = get("pop").build().fit(ml100k_split.train_set())
    alone = evaluate_ranking(rec, ml100k_split, ks=(10,))
    with_more = evaluate_ranking(rec, ml100k_split, ks=(10, 20, 50))
    for name in ("ndcg@10", "recall@10", "hit@10", "mrr@10", "precision@10"):
        assert alone[name] == with_more[name], name
