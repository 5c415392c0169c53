"""Splits: RecBole's rounding, determinism per seed, no leakage, temporal order, cold items held out."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.dataset import Dataset, Interactions, ItemText
from bench.data.splits import SPLITS, make_split, recbole_part_sizes
from bench.data.synthetic import generate
from bench.errors import ConfigError


def recbole_calcu_split_ids(tot: int, ratios: list[float]) -> list[int]:
    """RecBole 1.2.1 Dataset._calcu_split_ids + the ratio normalisation of split_by_ratio, transliterated
    as the reference the vectorised version must equal (returns part sizes, not cut points)."""
    tot_ratio = sum(ratios)
    ratios = [r / tot_ratio for r in ratios]
    cnt = [int(ratios[i] * tot) for i in range(len(ratios))]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(n_users=300, n_items=200, n_interactions=6000, seed=3)


def _pairs(part: Interactions, n_items: int) -> set[int]:
    return set((part.users.astype(np.int64) * n_items + part.items).tolist())


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.9, 0.1)])
def test_part_sizes_match_recbole_rounding_for_every_group_size(ratios):
    totals = np.arange(0, 400)
    expected = np.array([recbole_calcu_split_ids(int(t), list(ratios)) for t in totals])
    np.testing.assert_array_equal(recbole_part_sizes(totals, ratios), expected)


def test_random_split_gives_each_user_recbole_part_sizes(dataset):
    split = make_split(dataset, "random-8-1-1", seed=0)
    n_users = dataset.n_users
    counts = np.stack([np.bincount(p.users, minlength=n_users) for p in (split.train, split.valid, split.test)], 1)
    totals = np.bincount(dataset.interactions.users, minlength=n_users)
    np.testing.assert_array_equal(counts, recbole_part_sizes(totals))


@pytest.mark.parametrize("protocol", list(SPLITS))
def test_same_seed_gives_identical_split(dataset, protocol):
    a, b = make_split(dataset, protocol, seed=7), make_split(dataset, protocol, seed=7)
    for part_a, part_b in ((a.train, b.train), (a.valid, b.valid), (a.test, b.test)):
        np.testing.assert_array_equal(part_a.users, part_b.users)
        np.testing.assert_array_equal(part_a.items, part_b.items)
    assert a.protocol == protocol and a.seed == 7


@pytest.mark.parametrize("protocol", ["random-8-1-1", "cold-items"])
def test_another_seed_gives_another_split(dataset, protocol):
    a, b = make_split(dataset, protocol, seed=0), make_split(dataset, protocol, seed=1)
    assert _pairs(a.test, dataset.n_items) != _pairs(b.test, dataset.n_items)


@pytest.mark.parametrize("protocol", list(SPLITS))
def test_parts_partition_the_data_without_pair_leakage(dataset, protocol):
    split = make_split(dataset, protocol, seed=0)
    train, valid, test = (_pairs(p, dataset.n_items) for p in (split.train, split.valid, split.test))
    assert not train & valid and not train & test and not valid & test
    assert len(split.train) + len(split.valid) + len(split.test) == len(dataset.interactions)
    assert train | valid | test == _pairs(dataset.interactions, dataset.n_items)


@pytest.mark.parametrize("protocol", ["random-8-1-1", "temporal-loo"])
def test_every_test_user_has_training_history(dataset, protocol):
    split = make_split(dataset, protocol, seed=0)
    assert len(split.test) > 0
    assert np.isin(split.test_users(), np.unique(split.train.users)).all()


def test_temporal_loo_puts_each_users_latest_event_in_test_and_the_one_before_in_valid(dataset):
    split = make_split(dataset, "temporal-loo", seed=0)
    n = dataset.n_users
    last_train = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_train, split.train.users, split.train.timestamps)
    valid_ts = np.full(n, np.iinfo(np.int64).min)
    valid_ts[split.valid.users] = split.valid.timestamps
    test_ts = np.full(n, np.iinfo(np.int64).min)
    test_ts[split.test.users] = split.test.timestamps
    users = split.test_users()
    assert np.bincount(split.test.users).max() == 1 and np.bincount(split.valid.users).max() == 1
    assert (last_train[users] <= test_ts[users]).all()
    with_valid = np.unique(split.valid.users)
    assert (last_train[with_valid] <= valid_ts[with_valid]).all()
    assert (valid_ts[with_valid] <= test_ts[with_valid]).all()


def test_temporal_loo_on_a_hand_made_history():
    # user 0: four events out of file order; user 1: two events; user 2: one event
    inter = Interactions(
        users=np.array([0, 0, 0, 0, 1, 1, 2], np.int32),
        items=np.array([0, 1, 2, 3, 0, 1, 2], np.int32),
        ratings=np.ones(7, np.float32),
        timestamps=np.array([40, 10, 30, 20, 5, 1, 9], np.int64),
    )
    ds = Dataset(
        "hand", inter, 3, 4, ItemText([""] * 4, np.full(4, -1, np.int32), [()] * 4), np.arange(3), np.arange(4)
    )
    split = make_split(ds, "temporal-loo", seed=0)
    assert sorted(zip(split.test.users.tolist(), split.test.items.tolist())) == [(0, 0), (1, 0)]
    assert list(zip(split.valid.users.tolist(), split.valid.items.tolist())) == [(0, 2)]
    assert sorted(zip(split.train.users.tolist(), split.train.items.tolist())) == [(0, 1), (0, 3), (1, 1), (2, 2)]


def test_cold_items_are_held_out_of_train_and_valid_entirely(dataset):
    split = make_split(dataset, "cold-items", seed=0)
    cold = split.cold_items
    assert cold is not None
    items_with_data = np.unique(dataset.interactions.items)
    assert len(cold) == round(0.2 * len(items_with_data))
    assert not np.isin(split.train.items, cold).any()
    assert not np.isin(split.valid.items, cold).any()
    assert np.isin(split.test.items, cold).all()
    assert (np.isin(dataset.interactions.items, cold).sum()) == len(split.test)


def test_cold_items_share_is_configurable(dataset):
    split = make_split(dataset, "cold-items", seed=0, cold_share=0.5)
    assert len(split.cold_items) == round(0.5 * len(np.unique(dataset.interactions.items)))


def test_unknown_protocol_is_a_config_error_listing_the_choices(dataset):
    with pytest.raises(ConfigError) as err:
        make_split(dataset, "leave-two-out", seed=0)
    assert "leave-two-out" in str(err.value)
    for name in SPLITS:
        assert name in str(err.value)


def test_temporal_split_without_timestamps_names_the_splits_that_work(dataset):
    inter = dataset.interactions
    no_time = Dataset(
        "no-time",
        Interactions(inter.users, inter.items, inter.ratings, None),
        dataset.n_users,
        dataset.n_items,
        dataset.item_text,
        dataset.user_ids,
        dataset.item_ids,
    )
    with pytest.raises(ConfigError) as err:
        make_split(no_time, "temporal-loo", seed=0)
    message = str(err.value)
    assert "timestamps" in message and "random-8-1-1" in message and "cold-items" in message
    assert "temporal-loo" not in message.split("use one of:")[1]


@pytest.mark.parametrize("share", [0.0, 1.0, 1.5])
def test_cold_share_outside_zero_one_is_a_config_error(dataset, share):
    with pytest.raises(ConfigError):
        make_split(dataset, "cold-items", seed=0, cold_share=share)


def test_option_a_protocol_does_not_take_is_a_config_error(dataset):
    with pytest.raises(ConfigError) as err:
        make_split(dataset, "random-8-1-1", seed=0, cold_share=0.3)
    assert "cold_share" in str(err.value)
