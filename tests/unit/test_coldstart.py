"""Cold-item quality (bench.quality), the coldstart scenario, and llm-hybrid's mixing of CF and a language model."""

from __future__ import annotations

import numpy as np
import pytest

from bench import quality
from bench.data import load_dataset, make_split
from bench.data.dataset import Dataset, Interactions, ItemText, Split, TrainSet
from bench.errors import ConfigError
from bench.recommenders import registry
from bench.recommenders.base import ScoringRecommender
from bench.recommenders.llm.hybrid import quantile_map, slot_positions

# ---------------------------------------------------------------- cold metrics, checked by hand


def _inter(pairs):
    u, i = zip(*pairs)
    return Interactions(np.array(u, np.int32), np.array(i, np.int32), np.ones(len(u), np.float32))


def _tiny_split() -> Split:
    """4 users, 6 items, items 4 and 5 cold (never in train or valid)."""
    train = _inter([(0, 0), (0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 0)])
    valid = _inter([(0, 2), (1, 3), (2, 0), (3, 1)])
    test = _inter([(0, 4), (1, 4), (1, 5), (2, 5), (2, 2), (3, 3)])  # user 2 also has a warm test item
    text = ItemText([f"item {i}" for i in range(6)], np.full(6, -1, np.int32), [() for _ in range(6)])
    everything = Interactions(
        *(np.concatenate([getattr(p, f) for p in (train, valid, test)]) for f in ("users", "items", "ratings"))
    )
    ds = Dataset("tiny", everything, 4, 6, text, np.arange(4), np.arange(6))
    return Split("cold-items", 0, ds, train, valid, test, cold_items=np.array([4, 5], np.int32))


class Fixed(ScoringRecommender):
    """Scores from a fixed table, so every ranked list below is known in advance."""

    name = "fixed"
    SCORES = np.array(
        [
            [0, 0, 0, 0.1, 0.9, 0.8],  # test list (0,1,2 excluded): [4, 5]
            [0, 0.9, 0, 0, 0.1, 0.8],  # test list (0,2,3 excluded): [1, 5]
            [0, 0, 0.9, 0, 0.8, 0.1],  # test list (1,3,0 excluded): [2, 4]
            [0, 0.95, 0.1, 0.9, 0.8, 0.05],
        ],
        np.float32,
    )  # test [3, 4]; valid (0 excluded) [1, 3]

    def fit(self, train: TrainSet) -> Fixed:
        self._remember_seen(train)
        return self

    def score(self, users):
        return self.SCORES[np.asarray(users)].copy()

    def footprint(self) -> int:
        return 0


def test_cold_metrics_match_a_hand_computed_example():
    split = _tiny_split()
    rec = Fixed().fit(split.train_set())
    out = quality.evaluate_ranking(rec, split, ks=(2,), cold_items=split.cold_items)
    # cold relevant: u0 {4}, u1 {4, 5}, u2 {5}; u3 has none (only warm item 3 in test)
    assert out["evaluated_users"] == 4 and out["evaluated_cold_users"] == 3
    assert out["cold_recall@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    d = 1 / np.log2(3)
    assert out["cold_ndcg@2"] == pytest.approx((1 + d / (1 + d) + 0) / 3)
    assert out["cold_hit@2"] == pytest.approx(2 / 3)
    # share of each list that is cold, over all 4 evaluated users: [4,5] 1, [1,5] .5, [2,4] .5, [3,4] .5
    assert out["cold_share@2"] == pytest.approx((1 + 0.5 + 0.5 + 0.5) / 4)
    # the ordinary metrics are unchanged by asking for cold ones: u2 hits its warm item 2, u3 its item 3
    assert out["recall@2"] == pytest.approx((1 + 0.5 + 0.5 + 1) / 4)
    plain = quality.evaluate_ranking(rec, split, ks=(2,))
    assert all(plain[k] == out[k] for k in plain) and "cold_share@2" not in plain
    assert quality.metric_kind("cold_recall@10") == "cold_user" and quality.metric_kind("cold_share@10") == "user"


def test_warm_metrics_use_the_valid_part_with_train_excluded():
    split = _tiny_split()
    out = quality.evaluate_warm(Fixed().fit(split.train_set()), split, ks=(2,))
    # valid lists: u0 [4,5] (rel 2), u1 [1,5] (rel 3), u2 [2,4] (rel 0), u3 [1,3] (rel 1): only u3 hits
    assert out["warm_recall@2"] == pytest.approx(0.25) and out["warm_hit@2"] == pytest.approx(0.25)
    assert out["evaluated_warm_users"] == 4


def test_bad_cold_input_fails_in_one_line():
    split = _tiny_split()
    rec = Fixed().fit(split.train_set())
    with pytest.raises(ConfigError, match="cold item ids must lie in 0..5"):
        quality.evaluate_ranking(rec, split, ks=(2,), cold_items=np.array([9]))
    warm_split = Split("random-8-1-1", 0, split.dataset, split.train, split.valid, split.test)
    with pytest.raises(ConfigError, match="holds items out"):
        quality.evaluate_warm(rec, warm_split)


# ---------------------------------------------------------------- CF cannot, content can


class GenreProfile(ScoringRecommender):
    """A content model with no language model: the user's genre counts over train items . the item's genres.
    Items with no interaction still have genres, so it can rank cold items; test-only, never registered."""

    name = "genre-profile"

    def fit(self, train: TrainSet) -> GenreProfile:
        self._remember_seen(train)
        names = sorted({g for gs in train.item_text.genres for g in gs})
        self.item_genres = np.zeros((train.n_items, len(names)), np.float32)
        for i, gs in enumerate(train.item_text.genres):  # tiny test data
            self.item_genres[i, [names.index(g) for g in gs]] = 1.0
        self.user_genres = np.asarray(self._seen @ self.item_genres)
        return self

    def score(self, users):
        return self.user_genres[np.asarray(users)] @ self.item_genres.T

    def footprint(self) -> int:
        return 0


@pytest.fixture(scope="module")
def synthetic_cold():
    return make_split(load_dataset("synthetic:users=300,items=200,interactions=6000,seed=0"), "cold-items", seed=0)


@pytest.mark.parametrize("name", ["pop", "itemknn", "ease"])
def test_classic_cf_recommends_no_cold_item(synthetic_cold, name):
    rec = registry.get(name).build().fit(synthetic_cold.train_set())
    out = quality.evaluate_ranking(rec, synthetic_cold, ks=(10,), cold_items=synthetic_cold.cold_items)
    assert out["cold_share@10"] < 0.01 and out["cold_recall@10"] < 0.01


def test_a_content_model_on_informative_text_recommends_cold_items(synthetic_cold):
    rec = GenreProfile().fit(synthetic_cold.train_set())
    out = quality.evaluate_ranking(rec, synthetic_cold, ks=(10,), cold_items=synthetic_cold.cold_items)
    assert out["cold_recall@10"] > 0.05 and out["cold_share@10"] > 0.05


# ---------------------------------------------------------------- llm-hybrid


def test_quantile_map_places_cold_items_at_the_cf_score_of_the_same_rank():
    lm = np.array([[0.1, 0.5, 0.9, 0.6, 0.0, 1.0]], np.float32)
    cf = np.array([[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]], np.float32)
    warm = np.array([True, True, True, False, False, False])
    out = quantile_map(lm, cf, warm)
    np.testing.assert_allclose(out[0], [1.0, 2.0, 3.0, 2.0, 1.0, 3.0])  # beats 2 warm -> 2nd lowest CF, ...
    two_rows = quantile_map(np.vstack([lm, -lm]), np.vstack([cf, cf]), warm)  # rows ranked independently
    np.testing.assert_allclose(two_rows[1], [1.0, 2.0, 3.0, 1.0, 3.0, 1.0])  # 0.0 beats every warm


class _Scores:
    def __init__(self, table):
        self.table = np.asarray(table, np.float32)

    def score(self, users):
        return self.table[np.asarray(users)].copy()


def test_quantile_mix_maps_onto_the_users_candidates_not_the_items_they_already_saw():
    import scipy.sparse as sp

    from bench.recommenders.llm.hybrid import Hybrid

    rec = Hybrid()
    # warm items 0-3 (0 and 1 seen, with CF's top scores), cold item 4
    rec.cf, rec.lm = _Scores([[10, 9, 1, 2, 0]]), _Scores([[0.1, 0.2, 0.8, 0.9, 0.85]])
    rec.warm_, rec.n_items = np.array([True, True, True, True, False]), 5
    rec._seen = sp.csr_matrix(np.array([[1, 1, 0, 0, 0]], np.float32))
    top = rec.recommend(np.array([0]), 3)
    # among the candidates (items 2, 3) the cold item beats one: it takes the lowest candidate CF score (1),
    # not the 3rd-lowest of all warm items (9, which belongs to a seen item) and so ranks after item 3
    np.testing.assert_array_equal(top.items[0], [3, 2, 4])
    np.testing.assert_allclose(top.scores[0], [2, 1, 1])


def test_slot_positions_spread_the_cold_share_over_any_cut_off():
    np.testing.assert_array_equal(np.flatnonzero(slot_positions(20, 0.2)), [4, 9, 14, 19])
    assert slot_positions(10, 0.5).sum() == 5


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, model_cache_dir):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return {"model": str(tiny_model_dir), "cache_dir": model_cache_dir, "threads": 1}


@pytest.fixture(scope="module")
def toy_cold():
    from bench.data.splits import cold_items
    from tests.support.llm_data import toy_split

    return cold_items(toy_split(n_users=30, n_items=40).dataset, seed=0, cold_share=0.25)


def test_hybrid_returns_warm_and_cold_items_and_keeps_cf_order_on_warm_ones(tiny, toy_cold):
    train = toy_cold.train_set()
    rec = registry.get("llm-hybrid").build(**tiny).fit(train)
    warm = np.bincount(train.interactions.items, minlength=train.n_items) > 0
    np.testing.assert_array_equal(rec.warm_, warm)
    users = np.arange(train.n_users)
    top = rec.recommend(users, 10)
    listed_cold = ~warm[top.items]
    assert listed_cold.any() and (~listed_cold).any()  # both kinds reach the lists
    assert not np.any(np.asarray(train.matrix()[np.repeat(users, 10), top.items.ravel()]))  # seen excluded
    # warm items appear in CF's own order
    cf_scores = rec.cf.score(users)
    for row in range(len(users)):
        warm_items = top.items[row][~listed_cold[row]]
        assert np.all(np.diff(cf_scores[row, warm_items]) <= 1e-6)
    assert rec.stats["n_cold_items_at_fit"] == int((~warm).sum())
    for key in ("cf_fit_s", "lm_fit_s", "encode_items_s"):
        assert key in rec.stats
    assert "fit_s" not in rec.stats  # the cell measures fit_s itself; a second row would duplicate it
    assert rec.footprint() > rec.cf.footprint()
    from bench.measure.flops import request_flops

    assert request_flops(rec.request_work(users[:4])) > 0


def test_hybrid_slots_put_cold_items_exactly_in_the_reserved_positions(tiny, toy_cold):
    train = toy_cold.train_set()
    rec = registry.get("llm-hybrid").build(**tiny, mix="slots", cold_share=0.2).fit(train)
    top = rec.recommend(np.arange(train.n_users), 10)
    is_cold = ~rec.warm_[top.items]
    np.testing.assert_array_equal(is_cold, np.broadcast_to(slot_positions(10, 0.2), is_cold.shape))
    assert np.all(np.diff(top.scores, axis=1) < 0)


def test_hybrid_bad_parameters_fail_in_one_line(tiny):
    with pytest.raises(ConfigError, match="not a classic recommender"):
        registry.get("llm-hybrid").build(cf="llm-two-tower")
    with pytest.raises(ConfigError, match="mix"):
        registry.get("llm-hybrid").build(mix="average")
    with pytest.raises(ConfigError, match="directly"):
        registry.get("llm-hybrid").build(lm_params={"variant": "fp32"})
    with pytest.raises(ConfigError, match="no parameter"):
        registry.get("llm-hybrid").build(lm_params={"temperatur": 0.1})


# ---------------------------------------------------------------- the scenario


def test_coldstart_scenario_holds_cf_content_and_hybrid_cells_on_ml100k_cold_items():
    from bench.scenario import load

    scenario = load("coldstart")
    assert {c.dataset for c in scenario.cells} == {"ml-100k"} and {c.split for c in scenario.cells} == {"cold-items"}
    recs = {c.recommender for c in scenario.cells}
    assert {"pop", "itemknn", "ease", "ials", "llm-two-tower", "llm-hybrid"} <= recs
    for c in scenario.cells:
        registry.get(c.recommender).check_params(c.params)
    scenario.settings.validate()
