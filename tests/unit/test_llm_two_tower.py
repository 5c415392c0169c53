"""llm-two-tower on a tiny random BERT saved and reloaded through the real model-loading path."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.errors import ConfigError  # noqa: E402
from bench.recommenders import registry  # noqa: E402
from bench.recommenders.llm.two_tower import TwoTower  # noqa: E402


@pytest.fixture(scope="module")
def split(toy_llm_split):
    return toy_llm_split


def _fit(tiny, split, **kw):
    params = dict(**tiny, threads=1, epochs=3, train_batch_size=32, finetune_steps=3, finetune_batch_size=8)
    params.update(kw)
    return TwoTower(**params).fit(split.train_set())


def test_registry_builds_the_two_tower(tiny):
    rec = registry.get("llm-two-tower").build(**tiny, threads=1)
    assert isinstance(rec, TwoTower)


def test_recommend_shapes_excludes_seen_items_and_is_deterministic(tiny, split):
    rec = _fit(tiny, split)
    users = np.arange(split.n_users)
    top = rec.recommend(users, 5)
    assert top.items.shape == (split.n_users, 5) and top.scores.dtype == np.float32
    seen = split.train_set().matrix()
    assert not np.any(np.asarray(seen[np.repeat(users, 5), top.items.ravel()]))
    assert np.all(np.diff(top.scores, axis=1) <= 0)
    again = _fit(tiny, split).recommend(users, 5)
    np.testing.assert_array_equal(top.items, again.items)


def test_item_matrix_is_encoded_once_in_fit_and_stats_keep_one_time_costs(tiny, split):
    rec = _fit(tiny, split)
    assert rec.item_matrix.shape == (split.n_items, rec.encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(rec.item_matrix, axis=1), 1.0, rtol=1e-5)
    for key in ("encode_items_s", "item_matrix_bytes", "n_items_encoded", "prep_s", "encoder_build_s"):
        assert key in rec.stats
    assert rec.stats["n_items_encoded"] == split.n_items
    assert rec.stats["item_matrix_bytes"] == rec.item_matrix.nbytes
    assert rec.footprint() == rec.encoder.footprint() + rec.item_matrix.nbytes


def test_user_tower_runs_per_request_on_profile_texts(tiny, split):
    rec = _fit(tiny, split)
    users = np.array([3, 1])
    expected = rec.encoder.encode(rec.profile_texts(users)) @ rec.item_matrix.T
    np.testing.assert_allclose(rec.score(users), expected, rtol=1e-5, atol=1e-6)
    work = rec.request_work(users)
    assert work.n_requests == 2 and work.kind == "texts"
    np.testing.assert_array_equal(work.token_counts, rec.encoder.token_counts(rec.profile_texts(users)))
    assert work.encoder_config["layers"] == 2 and work.encoder_config["hidden"] == 32


def test_zero_shot_dim_reduces_both_towers_with_pca(tiny, split):
    rec = _fit(tiny, split, dim=8)
    assert rec.item_matrix.shape == (split.n_items, 8)
    assert rec.score(np.arange(3)).shape == (3, split.n_items)
    assert rec.stats["item_matrix_bytes"] == split.n_items * 8 * 4


def test_projection_mode_trains_on_train_pairs_and_changes_scores(tiny, split):
    zero = _fit(tiny, split)
    proj = _fit(tiny, split, mode="projection", dim=16)
    assert proj.stats["train_pairs"] > 0 and proj.stats["train_steps"] > 0 and "train_s" in proj.stats
    assert proj.item_matrix.shape == (split.n_items, 16)
    full = _fit(tiny, split, mode="projection")
    assert not np.allclose(full.score(np.arange(5)), zero.score(np.arange(5)), atol=1e-4)
    again = _fit(tiny, split, mode="projection")
    np.testing.assert_allclose(full.score(np.arange(5)), again.score(np.arange(5)), rtol=1e-5, atol=1e-6)


def test_projection_with_catalogue_negatives_runs(tiny, split):
    rec = _fit(tiny, split, mode="projection", negatives="catalogue")
    assert rec.stats["train_steps"] > 0


def test_finetune_trains_the_transformer_and_builds_the_variant_from_saved_weights(tiny, split):
    zero = _fit(tiny, split)
    ft = _fit(tiny, split, mode="finetune", finetune_lr=1e-3)
    assert ft.stats["train_steps"] == 3 and ft.stats["train_stopped_by"] == "steps"
    assert ft.encoder.resolved_model.source == "trained"
    assert ft.encoder.resolved_model.path != zero.encoder.resolved_model.path
    assert ft.stats["projection_steps"] > 0  # by default a projection is then trained on the tuned embeddings
    assert ft.stats["train_s"] >= ft.stats["projection_s"] > 0
    assert not np.allclose(ft.item_matrix, zero.item_matrix, atol=1e-4)
    assert ft.cost_only  # fine-tuning random weights does not make them meaningful


def test_finetune_without_projection_trains_heads_jointly_when_dim_is_set(tiny, split):
    zero = _fit(tiny, split)
    ft = _fit(tiny, split, mode="finetune", finetune_lr=1e-3, finetune_project=False, dim=8)
    assert "projection_steps" not in ft.stats and ft.item_matrix.shape == (split.n_items, 8)
    plain = _fit(tiny, split, mode="finetune", finetune_lr=1e-3, finetune_project=False)
    assert plain.projection is None
    # same pretrained start, trained weights: the item tower's output moved
    assert not np.allclose(plain.item_matrix, zero.item_matrix, atol=1e-4)


def test_finetune_int8_variant_applies_to_the_trained_model(tiny, split):
    ft = _fit(tiny, split, mode="finetune", finetune_lr=1e-3, variant="int8")
    assert ft.encoder.variant == "int8" and ft.encoder.resolved_model.source == "trained"
    assert ft.recommend(np.arange(3), 4).items.shape == (3, 4)


def test_cost_only_flag_propagates_from_the_model(tiny, split):
    rec = _fit(tiny, split)
    assert rec.encoder.cost_only and rec.cost_only and rec.stats["cost_only"]


def test_quality_gate_reference_is_the_same_model_in_fp32(tiny):
    rec = TwoTower(**tiny, variant="onnx-int8", mode="projection", dim=64)
    ref = rec.reference_params()
    assert ref["variant"] == "fp32" and ref["mode"] == "projection" and ref["dim"] == 64


def test_bad_parameters_fail_with_one_line(tiny):
    with pytest.raises(ConfigError, match="mode"):
        TwoTower(**tiny, mode="magic")
    with pytest.raises(ConfigError, match="dim"):
        TwoTower(**tiny, dim=0)
    with pytest.raises(ConfigError, match="negatives"):
        TwoTower(**tiny, negatives="hard")
    with pytest.raises(ConfigError, match="holdout_frac"):
        TwoTower(**tiny, holdout_frac=1.5)


def test_flops_per_user_follows_the_measurement_packages_encoder_formula(tiny, split):
    from bench.measure.flops import TransformerConfig, encoder_flops, request_flops

    rec = _fit(tiny, split, dim=8)
    users = np.array([0, 4, 9])
    work = rec.request_work(users)
    cfg = TransformerConfig(layers=2, hidden=32, heads=2, intermediate=64)
    expected = (encoder_flops(cfg, work.token_counts) + 2 * work.scoring_macs) / 3
    assert request_flops(rec.request_work(users)) == pytest.approx(expected, rel=1e-9)
    assert work.scoring_macs == 3 * (split.n_items * 8 + 32 * 8)
