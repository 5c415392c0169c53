"""Every quality metric against a case worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from bench.data.dataset import Dataset, Interactions, ItemText, Split, TrainSet
from bench.errors import ConfigError
from bench.quality import (
    average_popularity,
    evaluate_ranking,
    evaluate_ranking_per_user,
    evaluate_rating,
    hit_at_k,
    hit_matrix,
    item_coverage,
    mae,
    mrr_at_k,
    n_relevant,
    ndcg_at_k,
    per_user_metrics,
    precision_at_k,
    recall_at_k,
    rmse,
)
from bench.recommenders.base import ScoringRecommender

L2_3 = np.log2(3.0)  # discount of rank 2 is 1/log2(3) = 0.63093
L2_5 = np.log2(5.0)  # discount of rank 4 is 1/log2(5) = 0.43068

# three users, K = 4
TOPK = np.array(
    [
        [3, 1, 7, 2],  # relevant {1, 2, 9}: hits at ranks 2 and 4
        [5, 6, 0, 4],  # relevant {0}: hit at rank 3
        [8, 8, 8, 8],
    ]
)  # relevant {4}: no hit (a degenerate list still scores 0)
RELEVANT = [{1, 2, 9}, {0}, {4}]


@pytest.fixture()
def hits() -> np.ndarray:
    return hit_matrix(TOPK, RELEVANT)


def test_hit_matrix_marks_relevant_positions(hits):
    assert hits.tolist() == [[False, True, False, True], [False, False, True, False], [False] * 4]


def test_hit_matrix_accepts_a_sparse_relevance_matrix_too():
    rel = sp.csr_matrix(([1, 1, 1, 1, 1], ([0, 0, 0, 1, 2], [1, 2, 9, 0, 4])), shape=(3, 10))
    assert np.array_equal(hit_matrix(TOPK, rel), hit_matrix(TOPK, RELEVANT))
    assert n_relevant(rel).tolist() == [3, 1, 1]


def test_precision(hits):
    # 2/4, 1/4, 0/4; at K=2: 1/2, 0/2, 0/2
    assert precision_at_k(hits) == pytest.approx([0.5, 0.25, 0.0])
    assert precision_at_k(hits[:, :2]) == pytest.approx([0.5, 0.0, 0.0])


def test_recall_divides_by_all_relevant_items(hits):
    # RecBole: hits / |relevant| = 2/3, 1/1, 0/1; at K=2: 1/3, 0, 0
    n_rel = np.array([3, 1, 1])
    assert recall_at_k(hits, n_rel) == pytest.approx([2 / 3, 1.0, 0.0])
    assert recall_at_k(hits[:, :2], n_rel) == pytest.approx([1 / 3, 0.0, 0.0])


def test_hit(hits):
    assert hit_at_k(hits) == pytest.approx([1.0, 1.0, 0.0])
    assert hit_at_k(hits[:, :2]) == pytest.approx([1.0, 0.0, 0.0])


def test_mrr_is_reciprocal_rank_of_first_hit(hits):
    # first hits at ranks 2 and 3: 1/2, 1/3, 0; at K=2 the second user's hit falls outside: 1/2, 0, 0
    assert mrr_at_k(hits) == pytest.approx([0.5, 1 / 3, 0.0])
    assert mrr_at_k(hits[:, :2]) == pytest.approx([0.5, 0.0, 0.0])


def test_ndcg_binary_log2_with_ideal_over_min_relevant_and_k(hits):
    n_rel = np.array([3, 1, 1])
    # user 0: DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161
    #         IDCG over min(3, 4) = 3 hits = 1 + 1/log2(3) + 1/log2(4) = 2.13093  ->  0.49819
    # user 1: DCG = 1/log2(4) = 0.5; IDCG over min(1, 4) = 1 hit = 1            ->  0.5
    u0 = (1 / L2_3 + 1 / L2_5) / (1 + 1 / L2_3 + 0.5)
    assert u0 == pytest.approx(0.49819, abs=1e-5)
    assert ndcg_at_k(hits, n_rel) == pytest.approx([u0, 0.5, 0.0])
    # at K=2, user 0: DCG = 1/log2(3); IDCG over min(3, 2) = 2 hits = 1 + 1/log2(3) -> 0.38685
    assert ndcg_at_k(hits[:, :2], n_rel) == pytest.approx([(1 / L2_3) / (1 + 1 / L2_3), 0.0, 0.0])
    assert ndcg_at_k(hits[:, :2], n_rel)[0] == pytest.approx(0.38685, abs=1e-5)


def test_ndcg_is_one_for_a_perfect_list():
    # two relevant items in the first two places of a K=3 list: DCG = IDCG = 1 + 1/log2(3)
    assert ndcg_at_k(hit_matrix(np.array([[4, 2, 0]]), [{2, 4}]), np.array([2])) == pytest.approx([1.0])


def test_item_coverage_counts_distinct_recommended_items():
    # items 0, 1, 2 appear; catalogue of 10 -> 3/10
    assert item_coverage(np.array([[0, 1], [1, 2]]), 10) == pytest.approx(0.3)


def test_average_popularity_is_mean_train_count_per_user():
    pop = np.array([10, 5, 1, 0])
    # user 0: (10 + 5) / 2 = 7.5; user 1: (1 + 0) / 2 = 0.5
    assert average_popularity(np.array([[0, 1], [2, 3]]), pop) == pytest.approx([7.5, 0.5])


def test_rmse_and_mae():
    # errors -1, 0, 3: MAE = 4/3, RMSE = sqrt((1 + 0 + 9) / 3) = sqrt(10/3)
    pred, truth = np.array([3.0, 4.0, 5.0]), np.array([4.0, 4.0, 2.0])
    assert mae(pred, truth) == pytest.approx(4 / 3)
    assert rmse(pred, truth) == pytest.approx(np.sqrt(10 / 3))


# ---------------------------------------------------------------- evaluation over a split


def _split() -> Split:
    """3 users, 5 items.  user 0: train {0}, valid {1}, test {2, 3};  user 1: train {4} only;
    user 2: train {0, 1}, valid {3}, test {4}."""

    def inter(pairs, ratings=None):
        u, i = (np.array(x, dtype=np.int32) for x in zip(*pairs))
        r = np.ones(len(u), np.float32) if ratings is None else np.array(ratings, np.float32)
        return Interactions(u, i, r, None)

    train = inter([(0, 0), (1, 4), (2, 0), (2, 1)], [4, 3, 5, 2])
    valid = inter([(0, 1), (2, 3)], [3, 4])
    test = inter([(0, 2), (0, 3), (2, 4)], [5, 1, 4])
    allx = inter([(0, 0), (1, 4), (2, 0), (2, 1), (0, 1), (2, 3), (0, 2), (0, 3), (2, 4)])
    text = ItemText([f"i{j}" for j in range(5)], np.full(5, -1, np.int32), [()] * 5)
    ds = Dataset("hand", allx, 3, 5, text, np.arange(3), np.arange(5))
    return Split("random-8-1-1", 0, ds, train, valid, test)


class Fixed(ScoringRecommender):
    """Prefers low item indices, the same for everyone: scores 5, 4, 3, 2, 1. Predicts rating 3 always."""

    name = "fixed"
    predicts_ratings = True

    def fit(self, train: TrainSet) -> Fixed:
        self._remember_seen(train)
        return self

    def score(self, users):
        return np.tile(np.arange(5, 0, -1, dtype=np.float32), (len(users), 1))

    def predict_rating(self, users, items):
        return np.full(len(users), 3.0)

    def footprint(self) -> int:
        return 0


def test_test_part_excludes_train_and_valid_items():
    split = _split()
    rec = Fixed().fit(split.train_set())
    m = evaluate_ranking(rec, split, ks=(2,), part="test", batch_size=1)
    # user 0 excludes {0, 1} -> [2, 3]: both relevant: recall 1, precision 1, mrr 1, ndcg 1
    # user 2 excludes {0, 1, 3} -> [2, 4]: hit at rank 2: recall 1/1, precision 1/2, mrr 1/2, ndcg 1/log2(3)
    # user 1 has no test item and is not evaluated
    assert m["evaluated_users"] == 2
    assert m["recall@2"] == pytest.approx(1.0)
    assert m["precision@2"] == pytest.approx(0.75)
    assert m["hit@2"] == pytest.approx(1.0)
    assert m["mrr@2"] == pytest.approx(0.75)
    assert m["ndcg@2"] == pytest.approx((1 + 1 / L2_3) / 2)
    # items {2, 3, 4} recommended out of 5
    assert m["coverage@2"] == pytest.approx(0.6)
    # train counts: item0 2, item1 1, item4 1, else 0. user 0 [2, 3] -> 0; user 2 [2, 4] -> 0.5; mean 0.25
    assert m["avgpop@2"] == pytest.approx(0.25)


def test_per_user_figures_are_each_evaluated_users_own_and_average_to_the_reported_means():
    split = _split()
    rec = Fixed().fit(split.train_set())
    m, users, hits, n_rel = evaluate_ranking_per_user(rec, split, ks=(1, 2), part="test", batch_size=1)
    # the same two users as above, ascending: user 0 (both test items hit) and user 2 (hit at rank 2)
    assert users.tolist() == [0, 2]
    assert hits.tolist() == [[True, True], [False, True]]
    assert n_rel.tolist() == [2, 1]
    per_user = per_user_metrics(hits, n_rel, (1, 2))
    assert per_user["ndcg@2"] == pytest.approx([1.0, 1 / L2_3])
    assert per_user["mrr@2"] == pytest.approx([1.0, 0.5])
    assert per_user["precision@2"] == pytest.approx([1.0, 0.5])
    assert per_user["hit@1"] == pytest.approx([1.0, 0.0])
    assert set(per_user) == {f"{name}@{k}" for k in (1, 2) for name in ("recall", "ndcg", "hit", "mrr", "precision")}
    for name, values in per_user.items():
        assert values.mean() == pytest.approx(m[name], abs=1e-15)
    assert m == evaluate_ranking(rec, split, ks=(1, 2), part="test", batch_size=1)


def test_valid_part_excludes_only_train_items():
    split = _split()
    rec = Fixed().fit(split.train_set())
    m = evaluate_ranking(rec, split, ks=(2,), part="valid")
    # user 0 excludes {0} -> [1, 2], valid {1} hit at rank 1; user 2 excludes {0, 1} -> [2, 3], hit at rank 2
    assert m["evaluated_users"] == 2
    assert m["mrr@2"] == pytest.approx(0.75)
    assert m["ndcg@2"] == pytest.approx((1 + 1 / L2_3) / 2)
    assert m["precision@2"] == pytest.approx(0.5)


def test_several_cutoffs_and_a_user_subset():
    split = _split()
    rec = Fixed().fit(split.train_set())
    m = evaluate_ranking(rec, split, ks=(3, 1), users=np.array([2]))
    # user 2 alone: [2, 4, ...]: no hit at 1; at 3 the list is [2, 4] + one excluded item (score -inf)
    assert m["evaluated_users"] == 1
    assert m["hit@1"] == 0.0 and m["hit@3"] == 1.0
    assert set(m) == {
        f"{name}@{k}" for k in (1, 3) for name in ("recall", "ndcg", "hit", "mrr", "precision", "coverage", "avgpop")
    } | {"evaluated_users"}


@pytest.mark.parametrize("ks", [(0,), (-1,), (6,), ()])
def test_cutoff_out_of_range_is_a_config_error(ks):
    split = _split()
    with pytest.raises(ConfigError):
        evaluate_ranking(Fixed().fit(split.train_set()), split, ks=ks)


def test_unknown_part_and_no_users_are_config_errors():
    split = _split()
    rec = Fixed().fit(split.train_set())
    with pytest.raises(ConfigError, match="unknown evaluation part"):
        evaluate_ranking(rec, split, ks=(1,), part="train")
    with pytest.raises(ConfigError, match="no user to evaluate"):
        evaluate_ranking(rec, split, ks=(1,), users=np.array([1]))


def test_evaluate_rating_uses_the_part_ratings():
    split = _split()
    m = evaluate_rating(Fixed().fit(split.train_set()), split, part="test")
    # test ratings 5, 1, 4 against a constant 3: errors 2, -2, 1 -> MAE 5/3, RMSE sqrt(9/3)
    assert m["mae"] == pytest.approx(5 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(3.0))
    assert m["evaluated_ratings"] == 3


def test_evaluate_rating_refuses_a_ranking_only_model():
    split = _split()
    rec = Fixed().fit(split.train_set())
    rec.predicts_ratings = False
    with pytest.raises(ConfigError, match="does not predict ratings"):
        evaluate_rating(rec, split)


def test_quality_does_not_import_measurement_or_reports():
    code = (
        "import sys, bench.quality; bad = [m for m in sys.modules if m.startswith(('bench.measure', "
        "'bench.report'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
