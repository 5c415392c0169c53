"""Classic recommenders: protocol, exclusion, determinism, and each model checked against a reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bench.data.dataset import Interactions, ItemText, TrainSet
from bench.errors import ConfigError
from bench.quality import evaluate_ranking, evaluate_rating
from bench.recommenders.classic.biasedmf import BiasedMF
from bench.recommenders.classic.ease import EASE
from bench.recommenders.classic.ials import IALS
from bench.recommenders.classic.itemknn import ItemKNN
from bench.recommenders.classic.pop import Pop
from bench.recommenders.classic.userknn import UserKNN
from bench.recommenders.registry import REGISTRY, get
from tests.support.recommenders import toy_split

CLASSIC = [name for name, e in REGISTRY.items() if e.family == "classic"]
SMALL = {"ials": {"factors": 16, "iterations": 5}, "biasedmf": {"factors": 8, "iterations": 5}}


@pytest.fixture(scope="module")
def split():
    return toy_split(n_users=200, n_items=120, per_user=20, seed=0)


def _build(name: str, **params):
    return get(name).build(**{**SMALL.get(name, {}), **params})


def _train(pairs, n_users, n_items, ratings=None) -> TrainSet:
    u, i = (np.array(x, dtype=np.int32) for x in zip(*pairs))
    r = np.ones(len(u), np.float32) if ratings is None else np.asarray(ratings, np.float32)
    text = ItemText([""] * n_items, np.full(n_items, -1, np.int32), [()] * n_items)
    return TrainSet(Interactions(u, i, r, None), n_users, n_items, text)


def test_registry_lists_all_six_classic_models():
    assert sorted(CLASSIC) == ["biasedmf", "ease", "ials", "itemknn", "pop", "userknn"]


@pytest.mark.parametrize("name", CLASSIC)
def test_protocol_shapes_exclusion_and_footprint(name, split):
    rec = _build(name)
    assert rec.footprint() == 0  # nothing fitted yet
    assert rec.fit(split.train_set()) is rec
    users = np.arange(0, split.n_users, 7)
    top = rec.recommend(users, 10)
    assert top.items.shape == (users.size, 10) and top.scores.shape == (users.size, 10)
    assert top.items.dtype == np.int64 and top.scores.dtype == np.float32
    assert np.array_equal(top.users, users)
    # scores descend and no list repeats an item
    assert np.all(np.diff(top.scores, axis=1) <= 0)
    assert all(len(set(row)) == 10 for row in top.items.tolist())
    # nothing the user saw in training is recommended
    seen = split.train_set().matrix()[users].toarray()
    assert not np.take_along_axis(seen, top.items, axis=1).any()
    assert rec.footprint() > 0


@pytest.mark.parametrize("name", CLASSIC)
def test_exclude_argument_overrides_the_training_history(name, split):
    rec = _build(name).fit(split.train_set())
    users = np.arange(5)
    first = rec.recommend(users, 3).items
    # exclude exactly the current top 3: the next recommendation must avoid them and everything seen
    extra = sp.csr_matrix(
        (np.ones(first.size), (np.repeat(users, 3), first.ravel())), shape=(split.n_users, split.n_items)
    )
    both = split.train_set().matrix() + extra
    second = rec.recommend(users, 3, exclude=both).items
    assert all(not set(a) & set(b) for a, b in zip(first.tolist(), second.tolist()))


@pytest.mark.parametrize("name", CLASSIC)
def test_same_seed_same_lists(name, split):
    a = _build(name).fit(split.train_set()).recommend(np.arange(split.n_users), 10)
    b = _build(name).fit(split.train_set()).recommend(np.arange(split.n_users), 10)
    assert np.array_equal(a.items, b.items)
    assert np.array_equal(a.scores, b.scores)


@pytest.mark.parametrize("name", ["biasedmf", "ials"])
def test_another_seed_another_model(name, split):
    a = _build(name, seed=0).fit(split.train_set()).score(np.arange(20))
    b = _build(name, seed=1).fit(split.train_set()).score(np.arange(20))
    assert not np.allclose(a, b)


@pytest.mark.parametrize("name", CLASSIC)
def test_scoring_before_fit_says_to_fit(name):
    with pytest.raises(RuntimeError, match="not fitted"):
        _build(name).score(np.arange(3))


@pytest.mark.parametrize("name", ["itemknn", "userknn", "ease"])
def test_collaborative_models_beat_popularity_on_clustered_data(name, split):
    pop = evaluate_ranking(Pop().fit(split.train_set()), split, part="valid")["ndcg@10"]
    cf = evaluate_ranking(_build(name).fit(split.train_set()), split, part="valid")["ndcg@10"]
    assert cf > pop


@pytest.mark.parametrize(
    "cls, params",
    [
        (ItemKNN, {"k": 0}),
        (UserKNN, {"k": -3}),
        (EASE, {"l2": -1.0}),
        (EASE, {"l2": "a lot"}),
        (BiasedMF, {"factors": 0}),
        (BiasedMF, {"reg": float("nan")}),
        (IALS, {"iterations": 0}),
        (IALS, {"num_threads": 0}),
        (ItemKNN, {"k": 2.5}),
    ],
)
def test_bad_hyper_parameters_are_config_errors(cls, params):
    with pytest.raises(ConfigError, match=list(params)[0]):
        cls(**params)


# ---------------------------------------------------------------- each model against a reference


def test_pop_scores_distinct_users_per_item():
    # item 0: users 0, 1, 2 (user 0 twice, counted once); item 1: users 1, 2; item 2: user 2
    train = _train([(0, 0), (0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (2, 2)], 4, 4)
    rec = Pop().fit(train)
    assert rec.score(np.array([3])).tolist() == [[3.0, 2.0, 1.0, 0.0]]
    # user 0 saw item 0: gets 1, 2, 3 in that order; user 3 saw nothing: 0, 1, 2
    assert rec.recommend(np.array([0, 3]), 3).items.tolist() == [[1, 2, 3], [0, 1, 2]]


def _dense_cosine(x: np.ndarray) -> np.ndarray:
    """Cosine between the rows of x, computed plainly, with the diagonal (self-similarity) zeroed."""
    norms = np.linalg.norm(x, axis=1)
    norms = np.where(norms > 0, norms, 1.0)
    sim = (x @ x.T) / np.outer(norms, norms)
    np.fill_diagonal(sim, 0)
    return sim


def _random_binary(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((30, 25)) < rng.uniform(0.1, 0.5, 25)).astype(np.float64)


def _as_train(x: np.ndarray) -> TrainSet:
    return _train(list(zip(*np.nonzero(x))), *x.shape)


@pytest.mark.parametrize("cls, transpose", [(ItemKNN, True), (UserKNN, False)])
def test_knn_keeps_exactly_the_k_largest_cosines(cls, transpose):
    # binary data has tied cosines, so compare the kept *values* (tie-proof), not which tied item won
    x = _random_binary(3)
    k = 4
    rec = cls(k=k).fit(_as_train(x))
    dense = _dense_cosine(x.T if transpose else x)
    kept = rec.similarity_.T.tocsr() if transpose else rec.neighbours_  # row r = r's neighbours
    for r in range(dense.shape[0]):  # reference check only
        want = np.sort(dense[r])[::-1][:k]
        got = np.sort(kept[r].toarray().ravel())[::-1][:k]
        assert np.allclose(got, want[want > 0].tolist() + [0.0] * (k - (want > 0).sum()), atol=1e-6)
        assert kept[r].nnz <= k


def test_knn_with_every_neighbour_equals_the_dense_formula():
    x = _random_binary(4)
    n_users, n_items = x.shape
    item = ItemKNN(k=n_items).fit(_as_train(x))
    assert np.allclose(item.score(np.arange(n_users)), x @ _dense_cosine(x.T), atol=1e-5)
    user = UserKNN(k=n_users).fit(_as_train(x))
    assert np.allclose(user.score(np.arange(n_users)), _dense_cosine(x) @ x, atol=1e-5)


def test_knn_scores_by_hand():
    # users: u0 {0, 1}, u1 {0, 1, 2}, u2 {2}. item columns: i0 = i1 = [1,1,0], i2 = [0,1,1]
    # cos(i0, i1) = 2/2 = 1, cos(i0, i2) = cos(i1, i2) = 1/(sqrt2 sqrt2) = 0.5
    train = _train([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2)], 3, 3)
    # ItemKNN, k=2: u2 owns i2 -> scores (0.5, 0.5, 0)
    assert ItemKNN(k=2).fit(train).score(np.array([2])) == pytest.approx(np.array([[0.5, 0.5, 0.0]]))
    # user rows: u0 = [1,1,0], u1 = [1,1,1], u2 = [0,0,1]; cos(u0,u1) = 2/(sqrt2 sqrt3) = 0.8165,
    # cos(u0,u2) = 0, cos(u1,u2) = 1/sqrt3 = 0.5774. UserKNN, k=1: u2's neighbour is u1 -> 0.5774 * [1,1,1]
    assert UserKNN(k=1).fit(train).score(np.array([2])) == pytest.approx(np.full((1, 3), 1 / np.sqrt(3)), abs=1e-6)


def test_ease_equals_per_item_ridge_regression_on_the_other_items():
    # the EASE^R definition column by column: b_{-j,j} = (X_-j^T X_-j + l2 I)^-1 X_-j^T x_j, b_jj = 0
    x = _random_binary(5)
    l2 = 3.0
    rec = EASE(l2=l2).fit(_as_train(x))
    n = x.shape[1]
    ref = np.zeros((n, n))
    for j in range(n):  # reference only
        others = np.arange(n) != j
        xo = x[:, others]
        ref[others, j] = np.linalg.solve(xo.T @ xo + l2 * np.eye(n - 1), xo.T @ x[:, j])
    assert np.allclose(rec.weights_, ref, atol=1e-4)
    assert np.allclose(rec.score(np.arange(30)), x @ ref, atol=1e-4)


def _objective(rec: BiasedMF, train: TrainSet) -> float:
    it = train.interactions
    pred = rec.predict_rating(it.users, it.items)
    return float(
        np.sum((it.ratings - pred) ** 2)
        + rec.reg * (np.sum(rec.user_factors_**2) + np.sum(rec.item_factors_**2))
        + rec.reg_bias * (np.sum(rec.user_bias_**2) + np.sum(rec.item_bias_**2))
    )


def test_biasedmf_als_never_increases_the_regularised_objective(split):
    train = split.train_set()
    losses = [
        _objective(BiasedMF(factors=4, iterations=n, reg=1.0, reg_bias=1.0, clip=False).fit(train), train)
        for n in (1, 2, 4, 8)
    ]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:]))
    assert losses[-1] < losses[0]


def test_biasedmf_recovers_a_noiseless_biased_rank_one_model():
    # r = 3 + b_u + b_i + p_u q_i observed on a dense grid: with tiny ridges the fit is near exact
    rng = np.random.default_rng(0)
    nu, ni = 30, 20
    bu, bi, p, q = rng.normal(0, 0.5, nu), rng.normal(0, 0.5, ni), rng.normal(0, 1, nu), rng.normal(0, 1, ni)
    uu, ii = (a.ravel() for a in np.meshgrid(np.arange(nu), np.arange(ni), indexing="ij"))
    r = 3 + bu[uu] + bi[ii] + p[uu] * q[ii]
    train = _train(list(zip(uu, ii)), nu, ni, ratings=r)
    rec = BiasedMF(factors=1, reg=1e-4, reg_bias=1e-4, iterations=50, clip=False).fit(train)
    assert np.sqrt(np.mean((rec.predict_rating(uu, ii) - r) ** 2)) < 1e-2


def test_biasedmf_ranks_by_predicted_rating_and_clips_predictions(split):
    rec = BiasedMF(factors=8, iterations=5).fit(split.train_set())
    users = np.arange(10)
    top = rec.recommend(users, 5)
    raw = rec.score(users)
    assert np.allclose(np.take_along_axis(raw, top.items, axis=1), top.scores)
    lo, hi = rec.rating_range_
    pred = rec.predict_rating(np.repeat(users, split.n_items), np.tile(np.arange(split.n_items), 10))
    assert pred.min() >= lo and pred.max() <= hi
    with pytest.raises(ConfigError, match="same shape"):
        rec.predict_rating(np.arange(3), np.arange(4))


def test_biasedmf_predicts_test_ratings_better_than_the_global_mean():
    # denser than the shared toy split: 40 ratings a user, so there is a taste signal to learn
    split = toy_split(n_users=500, n_items=100, per_user=40, seed=0)
    rec = BiasedMF(factors=8, iterations=10).fit(split.train_set())
    mean = float(split.train.ratings.mean())
    baseline = np.sqrt(np.mean((split.test.ratings - mean) ** 2))
    assert evaluate_rating(rec, split)["rmse"] < baseline


def test_ials_factors_have_the_requested_size_and_match_scores(split):
    rec = IALS(factors=8, iterations=3).fit(split.train_set())
    assert rec.user_factors_.shape == (split.n_users, 8) and rec.item_factors_.shape == (split.n_items, 8)
    assert np.allclose(rec.score(np.array([0, 1])), rec.user_factors_[[0, 1]] @ rec.item_factors_.T)
    assert rec.footprint() == rec.user_factors_.nbytes + rec.item_factors_.nbytes
