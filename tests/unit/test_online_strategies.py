"""Update strategies on tiny synthetic timelines: what each must equal, what must never change, what is timed."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.replay import ReplayConfig, make_replay
from bench.recommenders.classic.ease import EASE
from bench.recommenders.classic.itemknn import ItemKNN
from bench.recommenders.online import registry
from bench.recommenders.online.classic import EASEPeriodic, IALSFoldIn, ItemKNNIncremental, Refit, Stale
from tests.support.timelines import random_timeline

CONFIG = ReplayConfig(start=0.5, window_days=2)


@pytest.fixture(scope="module")
def replay():
    return make_replay(random_timeline(), CONFIG)


def _steps(replay):
    return range(1, len(replay.windows))


def test_incremental_itemknn_equals_a_full_refit_when_no_neighbour_is_pruned(replay):
    # with k >= n_items - 1 nothing is pruned, so the incrementally updated co-occurrence must give exactly
    # the cosine similarities a refit computes from scratch, at every step
    k = replay.n_items
    inc = ItemKNNIncremental(params={"k": k})
    inc.start(replay.initial)
    for step in _steps(replay):
        update = replay.update(step)
        inc.update(update)
        full = ItemKNN(k=k).fit(update.history)
        np.testing.assert_allclose(inc.model.similarity_.toarray(), full.similarity_.toarray(), rtol=1e-5, atol=1e-6)
        expected_gram = (update.history.matrix().T @ update.history.matrix()).toarray()
        np.testing.assert_array_equal(inc.gram.toarray(), expected_gram)


def test_ials_fold_in_gives_each_changed_user_the_exact_least_squares_factor(replay):
    # a folded-in user factor is the ALS user step: (Y'Y + reg I + sum (c-1) y y') x = sum c y, c = alpha * x_ui
    params = {"factors": 8, "regularization": 0.5, "alpha": 2.0, "iterations": 3}
    fold = IALSFoldIn(params=params)
    fold.start(replay.initial)
    update = replay.update(1)
    before = fold.model.user_factors_.copy()
    fold.update(update)
    y = fold.model.item_factors_.astype(np.float64)
    x = update.history.matrix()
    changed = update.window.changed_users
    for u in changed:
        items = x[u].indices
        c = params["alpha"] * np.ones(items.size)
        a = y.T @ y + params["regularization"] * np.eye(y.shape[1]) + (y[items].T * (c - 1)) @ y[items]
        b = (y[items] * c[:, None]).sum(axis=0)
        np.testing.assert_allclose(fold.model.user_factors_[u], np.linalg.solve(a, b), rtol=2e-3, atol=2e-4)
    untouched = np.setdiff1d(np.arange(replay.n_users), changed)
    np.testing.assert_array_equal(fold.model.user_factors_[untouched], before[untouched])
    # new items got a factor from their interactions; before the update they had none to learn from
    assert (
        np.abs(fold.model.item_factors_[update.window.new_items]).sum(axis=1).min() > 0
        or update.window.new_items.size == 0
    )


def test_stale_never_changes(replay):
    stale = Stale(model="ease")
    stale.start(replay.initial)
    weights = stale.model.weights_.copy()
    catalogue = stale.catalogue.copy()
    target = replay.target(1)
    first = stale.recommend(target.users, 5, exclude=target.seen).items.copy()
    for step in _steps(replay):
        assert stale.update(replay.update(step)) == "none"
        np.testing.assert_array_equal(stale.model.weights_, weights)
        np.testing.assert_array_equal(stale.catalogue, catalogue)
        np.testing.assert_array_equal(stale.recommend(target.users, 5, exclude=target.seen).items, first)


def test_a_strategy_never_recommends_an_item_outside_its_catalogue(replay):
    stale = Stale(model="ease")
    stale.start(replay.initial)
    last = replay.target(len(replay.windows) - 1)
    unknown = np.flatnonzero(~stale.catalogue)
    assert unknown.size  # the timeline releases items after T0
    top = stale.recommend(last.users, 10, exclude=last.seen)
    assert not np.isin(top.items, unknown).any()


def test_ease_periodic_folds_users_in_and_refits_items_every_k_steps(replay):
    periodic = EASEPeriodic(refit_every=2, params={"l2": 10.0})
    periodic.start(replay.initial)
    initial = periodic.model.weights_.copy()
    update = replay.update(1)
    assert periodic.update(update) == "users folded in"
    np.testing.assert_array_equal(periodic.model.weights_, initial)  # item weights wait for the refit
    # ... but users score from their new history at once
    u = int(update.window.changed_users[0])
    expected = update.history.matrix()[u] @ initial
    np.testing.assert_allclose(periodic.model.score(np.array([u]))[0], np.asarray(expected).ravel(), rtol=1e-6)
    update = replay.update(2)
    assert periodic.update(update) == "refit"
    np.testing.assert_allclose(
        periodic.model.weights_, EASE(l2=10.0).fit(update.history).weights_, rtol=1e-5, atol=1e-6
    )


def test_refit_equals_a_fresh_fit_on_the_history(replay):
    refit = Refit(model="ease", params={"l2": 10.0})
    refit.start(replay.initial)
    update = replay.update(3)
    refit.update(update)
    np.testing.assert_array_equal(refit.model.weights_, EASE(l2=10.0).fit(update.history).weights_)
    assert refit.catalogue.sum() == np.unique(update.history.interactions.items).size


def test_every_strategy_is_registered_with_a_constructor_the_registry_can_check():
    for name, entry in registry.STRATEGIES.items():
        assert entry.cls().name == name
    with pytest.raises(Exception, match="unknown online strategy"):
        registry.get("nope")


def test_two_tower_incremental_encodes_only_new_items_and_reuses_the_item_cache(replay, tiny):
    from bench.recommenders.online.two_tower import TwoTowerIncremental

    tt = TwoTowerIncremental(params={**tiny, "mode": "zero-shot"}, threads=1)
    tt.start(replay.initial)
    before = tt.model.item_matrix.copy()
    known = tt.catalogue.copy()
    assert np.abs(before[~known]).sum() == 0  # items not released yet have no vector
    step = next(s for s in _steps(replay) if replay.update(s).window.new_items.size)
    for s in range(1, step):
        tt.update(replay.update(s))
    before = tt.model.item_matrix.copy()
    update = replay.update(step)
    tt.update(update)
    new = update.window.new_items
    others = np.setdiff1d(np.arange(replay.n_items), new)
    np.testing.assert_array_equal(tt.model.item_matrix[others], before[others])  # cache reused
    direct = tt.model.encoder.encode([tt.model._texts[i] for i in new], 8)
    np.testing.assert_allclose(tt.model.item_matrix[new], direct, rtol=1e-4, atol=1e-5)
    changed = update.window.changed_users
    np.testing.assert_allclose(tt.user_vectors[changed], tt.model.encode_users(changed), rtol=1e-4, atol=1e-5)
