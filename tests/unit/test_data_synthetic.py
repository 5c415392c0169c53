"""Synthetic data: deterministic per seed, well-formed, and structured so CF beats popularity."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data import load_dataset, make_split
from bench.data.checksum import fast_canonical_checksum
from bench.data.dataset import canonical_checksum
from bench.data.synthetic import _OPENERS, TOPIC_NAMES, SyntheticConfig, generate, generate_with_truth, parse_spec
from bench.errors import ConfigError


@pytest.fixture(scope="module")
def generated():
    return generate_with_truth(SyntheticConfig(n_users=1000, n_items=500, n_interactions=20_000, seed=0))


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = generate(300, 120, 4000, seed=5), generate(300, 120, 4000, seed=5), generate(300, 120, 4000, seed=6)
    for field in ("users", "items", "ratings", "timestamps"):
        np.testing.assert_array_equal(getattr(a.interactions, field), getattr(b.interactions, field))
    assert a.item_text.titles == b.item_text.titles and a.checksum == b.checksum
    assert c.checksum != a.checksum


def test_shape_ratings_times_and_unique_pairs(generated):
    ds, _ = generated
    i = ds.interactions
    assert (ds.n_users, ds.n_items, len(i)) == (1000, 500, 20_000)
    assert set(np.unique(i.ratings).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ds.has_timestamps and i.timestamps.dtype == np.int64
    pairs = i.users.astype(np.int64) * ds.n_items + i.items
    assert np.unique(pairs).shape[0] == len(i)
    assert np.bincount(i.users, minlength=ds.n_users).min() >= 1
    assert len(ds.item_text.titles) == len(ds.item_text.genres) == ds.item_text.years.shape[0] == ds.n_items
    assert ds.name == "synthetic:users=1000,items=500,interactions=20000,seed=0"


def test_checksum_is_the_contracts_canonical_checksum(generated):
    ds, _ = generated
    i = ds.interactions
    assert ds.checksum == canonical_checksum(ds.user_ids[i.users], ds.item_ids[i.items], i.ratings, i.timestamps)


def test_popularity_is_long_tailed(generated):
    ds, _ = generated
    counts = np.sort(np.bincount(ds.interactions.items, minlength=ds.n_items))[::-1]
    top_tenth_share = counts[: ds.n_items // 10].sum() / counts.sum()
    assert top_tenth_share > 0.2  # uniform popularity would give 0.1


def _recall_at_10(scores: np.ndarray, train, test, users) -> float:
    scores = scores.astype(np.float64).copy()
    scores[train[users] > 0] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :10]
    hits = np.take_along_axis(test[users], top, axis=1).sum(axis=1)
    return float((hits / np.minimum(test[users].sum(axis=1), 10)).mean())


def test_true_factors_and_item_cf_both_beat_popularity(generated):
    ds, truth = generated
    split = make_split(ds, "random-8-1-1", seed=0)
    train = split.train.matrix(ds.n_users, ds.n_items).toarray()
    test = split.test.matrix(ds.n_users, ds.n_items).toarray()
    users = split.test_users()
    popularity = _recall_at_10(np.tile(train.sum(axis=0), (len(users), 1)), train, test, users)
    true_factors = _recall_at_10(truth.scores(users), train, test, users)
    norms = np.sqrt(train.sum(axis=0)) + 1e-9
    cosine = (train.T @ train) / norms[:, None] / norms[None, :]
    np.fill_diagonal(cosine, 0.0)
    item_cf = _recall_at_10(train[users] @ cosine, train, test, users)
    assert true_factors > 1.3 * popularity
    assert item_cf > 1.1 * popularity


def test_item_text_carries_the_latent_topics(generated):
    ds, truth = generated
    topic_names = np.array(TOPIC_NAMES)
    for item in range(ds.n_items):
        topics = set(topic_names[np.flatnonzero(truth.item_membership[item])].tolist())
        assert set(ds.item_text.genres[item]) == topics
    # titles use topic words: items sharing a primary topic share title vocabulary far more than chance
    primary = truth.item_membership.argmax(axis=1)
    generic = set(_OPENERS) | {"of", "the"}
    words = [set(t.split()) - generic for t in ds.item_text.titles]
    same = [len(words[a] & words[b]) > 0 for a in range(100) for b in range(a + 1, 100) if primary[a] == primary[b]]
    other = [len(words[a] & words[b]) > 0 for a in range(100) for b in range(a + 1, 100) if primary[a] != primary[b]]
    assert np.mean(same) > 3 * np.mean(other)


def test_specs_parse_and_regenerate_the_same_data():
    cfg = parse_spec("synthetic:users=200,items=80,interactions=3000,seed=4")
    assert (cfg.n_users, cfg.n_items, cfg.n_interactions, cfg.seed) == (200, 80, 3000, 4)
    assert parse_spec("synthetic:seed=4:items=80:users=200;interactions=3000") == cfg
    ds = load_dataset(cfg.spec())
    assert ds.name == cfg.spec() and ds.checksum == generate(200, 80, 3000, seed=4).checksum


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("synthetic:users=ten", "integer"),
        ("synthetic:colour=3", "users=N"),
        ("synthetic:users=10,items=4,interactions=1000", "do not fit"),
        ("synthetic:users=0", "at least 1"),
    ],
)
def test_bad_specs_are_config_errors(spec, fragment):
    with pytest.raises(ConfigError) as err:
        load_dataset(spec)
    assert fragment in str(err.value)


def test_fast_checksum_equals_the_contract_on_awkward_values():
    rng = np.random.default_rng(0)
    n = 3000
    users, items = rng.integers(-50, 10**9, n), rng.integers(0, 4, n)
    ratings = rng.choice([1.0, 2.5, 0.1, 1e-7, 1234567.0, -3.0], n)
    for ts in (rng.integers(-(10**12), 10**12, n), None, rng.integers(0, 2, n)):
        assert fast_canonical_checksum(users, items, ratings, ts) == canonical_checksum(users, items, ratings, ts)
    names = np.array([f"u{k % 7}" for k in range(n)])
    assert fast_canonical_checksum(names, items, ratings, None) == canonical_checksum(names, items, ratings, None)
    empty = np.zeros(0, np.int64)
    assert fast_canonical_checksum(empty, empty, empty, None) == canonical_checksum(empty, empty, empty, None)
