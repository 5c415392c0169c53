"""llm-pairwise: the article's rating model, its two executions and what its head can and cannot rank."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.errors import ConfigError  # noqa: E402
from bench.measure.flops import work_flops  # noqa: E402
from bench.quality import evaluate_ranking, evaluate_rating  # noqa: E402
from bench.recommenders import registry  # noqa: E402
from bench.recommenders.llm.pairwise import Pairwise  # noqa: E402


@pytest.fixture(scope="module")
def split(toy_llm_split):
    return toy_llm_split


@pytest.fixture(scope="module")
def concat(tiny, split):
    return Pairwise(**tiny, threads=1, head="concat", proj_dim=8, epochs=20, lr=1e-2).fit(split.train_set())


@pytest.fixture(scope="module")
def interaction(tiny, split):
    return Pairwise(**tiny, threads=1, head="interaction", proj_dim=8, epochs=20, lr=1e-2).fit(split.train_set())


def test_registry_builds_pairwise_and_it_predicts_ratings(tiny):
    rec = registry.get("llm-pairwise").build(**tiny, threads=1)
    assert isinstance(rec, Pairwise) and rec.predicts_ratings


def test_naive_and_cached_executions_give_the_same_scores(concat, interaction, split):
    rng = np.random.default_rng(0)
    # repeated users and items, in an order that batches them differently in the two executions
    users = rng.integers(0, split.n_users, 60)
    items = rng.integers(0, split.n_items, 60)
    for rec in (concat, interaction):
        agreement = rec.execution_agreement(users, items)
        assert agreement["pairs"] == 60 and agreement["max_abs_diff"] <= 1e-4
        naive = rec.score_pairs(users, items, "naive")
        cached = rec.score_pairs(users, items, "cached")
        np.testing.assert_allclose(naive, cached, atol=1e-4)


def test_full_catalogue_scores_match_between_executions(tiny, split, concat):
    naive = Pairwise(**{**concat.get_params(), "execution": "naive"}).fit(split.train_set())
    users = np.array([0, 5])
    np.testing.assert_allclose(naive.score(users), concat.score(users), atol=1e-4)
    assert naive.request_work(users).token_counts.size == 2 * 2 * split.n_items
    assert concat.request_work(users).token_counts.size == 2


def test_cached_matrix_head_equals_the_pairwise_head(interaction, split):
    users = np.array([1, 2, 3])
    full = interaction.score(users)
    pairs = interaction.score_pairs(np.repeat(users, split.n_items), np.tile(np.arange(split.n_items), 3), "cached")
    np.testing.assert_allclose(full.ravel(), pairs, rtol=1e-5, atol=1e-5)


def test_concat_head_ranks_items_identically_for_every_user(concat, split):
    scores = concat.score(np.arange(split.n_users))
    order = np.argsort(-scores, axis=1, kind="stable")
    assert np.all(order == order[0])
    # the user only shifts every score by the same constant: c(u) + d(i)
    diff = scores - scores[0]
    np.testing.assert_allclose(diff, np.repeat(diff[:, :1], split.n_items, axis=1), atol=1e-4)


def test_interaction_head_can_rank_items_differently_for_different_users(interaction, split):
    scores = interaction.score(np.arange(split.n_users))
    order = np.argsort(-scores, axis=1, kind="stable")
    assert not np.all(order == order[0])


def test_training_lowers_mse_and_ratings_are_clipped_to_the_train_range(concat, split):
    assert concat.stats["train_loss_last"] < concat.stats["train_loss_first"]
    pred = concat.predict_rating(split.test.users, split.test.items)
    lo, hi = split.train.ratings.min(), split.train.ratings.max()
    assert pred.min() >= lo and pred.max() <= hi
    quality = evaluate_rating(concat, split)
    assert quality["evaluated_ratings"] == len(split.test) and quality["rmse"] >= quality["mae"] > 0


def test_ranking_excludes_seen_and_reports_stats(interaction, split):
    top = interaction.recommend(np.arange(4), 5)
    seen = split.train_set().matrix()
    assert not np.any(np.asarray(seen[np.repeat(np.arange(4), 5), top.items.ravel()]))
    for key in ("encode_items_s", "item_matrix_bytes", "train_s", "prep_s", "encoder_build_s"):
        assert key in interaction.stats
    assert evaluate_ranking(interaction, split, (5,))["evaluated_users"] > 0
    assert interaction.cost_only


def test_naive_footprint_has_no_item_matrix(tiny, split, concat):
    naive = Pairwise(**{**concat.get_params(), "execution": "naive"}).fit(split.train_set())
    assert concat.footprint() - naive.footprint() == concat.item_matrix.nbytes


def test_bad_parameters_fail_with_one_line(tiny, concat):
    with pytest.raises(ConfigError, match="head"):
        Pairwise(**tiny, head="mlp-magic")
    with pytest.raises(ConfigError, match="execution"):
        Pairwise(**tiny, execution="lazy")
    with pytest.raises(ConfigError, match="one item per user"):
        concat.score_pairs(np.arange(3), np.arange(2))


def test_gate_key_ignores_how_the_model_runs_but_not_what_it_computes(tiny):
    a = Pairwise(**tiny, variant="onnx-int8", execution="naive", threads=1)
    b = Pairwise(**tiny, variant="fp32", execution="cached", threads=2)
    c = Pairwise(**tiny, variant="fp32", head="interaction")
    assert a.gate_key() == b.gate_key() != c.gate_key()
    assert a.reference_params()["variant"] == "fp32"


def test_run_records_execution_agreement_and_a_timed_cost_ratio(interaction, split):
    """The cell's extra measurements: both executions on the same pairs, their gap, and what naive costs."""
    from bench.recommenders.llm.pairwise import AGREEMENT_USERS, EXECUTION_ROUNDS

    rows = {r["metric"]: r for r in interaction.extra_measurements(split.test_users(), 10)}
    assert rows["execution_max_abs_diff"]["value"] <= 1e-4 and rows["execution_max_abs_diff"]["flag"] == ""
    n_users = min(AGREEMENT_USERS, len(split.test_users()))
    assert rows["execution_max_abs_diff"]["n"] == n_users * min(64, split.n_items)
    naive, cached = rows["naive_pair"]["samples_ms"], rows["cached_pair"]["samples_ms"]
    assert len(naive) == len(cached) == EXECUTION_ROUNDS
    assert rows["naive_over_cached_time"]["value"] == pytest.approx(np.median(naive) / np.median(cached))
    # naive runs two transformer forwards per pair, cached one per user: on 64 items naive must cost more
    assert rows["naive_over_cached_time"]["value"] > 1.0
    naive_work, cached_work = rows["naive_over_cached_flops_full_ranking"]["work_ratio"]
    assert work_flops(naive_work) / work_flops(cached_work) > split.n_items


def test_cell_puts_the_execution_figures_into_the_run_results(tiny, split):
    """Through the cell: the figures land as metric rows, the timings summarised like every load."""
    from bench.cell import _extra_measurements
    from bench.results import CellResult
    from bench.scenario import Settings

    rec = Pairwise(**tiny, threads=1, head="concat", proj_dim=8, epochs=2).fit(split.train_set())
    result = CellResult(
        cell="toy/split/llm-pairwise/fp32",
        dataset="toy",
        split="split",
        recommender="llm-pairwise",
        variant="fp32",
        device="cpu",
    )

    class _Phases:
        def start(self, *_):
            pass

    _extra_measurements(result, rec, split, None, Settings(), _Phases())
    assert result.metric("execution_max_abs_diff").value <= 1e-4
    assert result.metric("naive_pair_p50_ms", "pairs") is not None
    assert result.metric("naive_over_cached_time", "pairs").value > 1.0
