"""Profile texts and the within-train hold-out split used by the language-model recommenders."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.dataset import Interactions
from bench.errors import ConfigError
from bench.recommenders.llm.profile import ProfileConfig, build_profiles, holdout_split, item_title, recent_liked
from tests.support.llm_data import toy_interactions, toy_item_text


def _inter(users, items, ratings, ts=None) -> Interactions:
    return Interactions(
        np.array(users, np.int32),
        np.array(items, np.int32),
        np.array(ratings, np.float32),
        None if ts is None else np.array(ts, np.int64),
    )


def test_profile_lists_liked_items_most_recent_first_up_to_the_limit():
    inter = _inter([0, 0, 0, 0, 0], [1, 2, 3, 4, 5], [5, 4, 2, 5, 4], [10, 50, 60, 30, 40])
    history = recent_liked(inter, 1, max_titles=3)
    # item 3 is disliked (2); the others by timestamp descending: 2 (50), 5 (40), 4 (30), then 1 (10) is cut
    assert history[0].tolist() == [2, 5, 4]


def test_ties_in_time_break_by_item_index_and_profiles_are_deterministic():
    inter = _inter([0, 0, 0], [7, 3, 5], [5, 5, 5], [100, 100, 100])
    assert recent_liked(inter, 1, 10)[0].tolist() == [3, 5, 7]
    text = toy_item_text(10)
    a = build_profiles(inter, text, 1, ProfileConfig(max_titles=2))
    b = build_profiles(inter, text, 1, ProfileConfig(max_titles=2))
    assert a == b == [f"{item_title(text, 3)}; {item_title(text, 5)}"]


def test_implicit_data_keeps_every_event_and_without_timestamps_later_rows_count_as_recent():
    inter = _inter([0, 0, 0], [1, 2, 3], [1, 1, 1])  # implicit: constant rating column, no timestamps
    assert recent_liked(inter, 1, 10)[0].tolist() == [3, 2, 1]


def test_user_who_liked_nothing_falls_back_to_all_items_and_empty_user_gets_empty_text():
    inter = _inter([0, 0, 1], [1, 2, 3], [1, 2, 5], [1, 2, 3])
    history = recent_liked(inter, 3, 10)
    assert history[0].tolist() == [2, 1]
    assert history[1].tolist() == [3]
    assert build_profiles(inter, toy_item_text(5), 3)[2] == ""


def test_profile_text_never_carries_the_rating():
    text = toy_item_text(10)
    liked_5 = _inter([0, 0], [1, 2], [5, 5], [1, 2])
    liked_4 = _inter([0, 0], [1, 2], [4, 4.5], [1, 2])
    # the text depends on which items were liked and when, never on the rating values themselves
    assert build_profiles(liked_5, text, 1) == build_profiles(liked_4, text, 1)
    assert "5" not in build_profiles(liked_5, text, 1)[0].replace(item_title(text, 1), "").replace(
        item_title(text, 2), ""
    )


def test_profile_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="profile_len"):
        build_profiles(_inter([0], [0], [5]), toy_item_text(2), 1, ProfileConfig(max_titles=0))


def test_holdout_split_partitions_each_users_items_and_keeps_a_profile_source():
    inter = toy_interactions(n_users=30, n_items=50, seed=3)
    a, b = holdout_split(inter, 0.25, seed=1)
    assert len(a) + len(b) == len(inter)
    key = lambda x: set(zip(x.users.tolist(), x.items.tolist()))  # noqa: E731
    assert key(a).isdisjoint(key(b)) and key(a) | key(b) == key(inter)
    counts = np.bincount(inter.users, minlength=30)
    in_a = np.bincount(a.users, minlength=30)
    in_b = np.bincount(b.users, minlength=30)
    assert np.all(in_a >= 1) and np.all(in_b >= 1)
    assert np.all(in_b == np.clip(np.rint(0.25 * counts), 1, counts - 1))
    a2, b2 = holdout_split(inter, 0.25, seed=1)
    assert key(b2) == key(b)
    _, b3 = holdout_split(inter, 0.25, seed=2)
    assert key(b3) != key(b)


def test_holdout_split_keeps_single_event_users_whole_and_rejects_bad_fractions():
    inter = _inter([0, 1, 1], [0, 1, 2], [5, 5, 5])
    a, b = holdout_split(inter, 0.5, 0)
    assert 0 not in b.users.tolist() and len(b) == 1
    with pytest.raises(ConfigError, match="holdout_frac"):
        holdout_split(inter, 1.0, 0)


def test_profiles_built_from_part_a_never_list_a_held_out_target_of_the_same_user():
    inter = toy_interactions(n_users=30, n_items=50, seed=4)
    a, b = holdout_split(inter, 0.5, seed=0)
    history = recent_liked(a, 30, max_titles=50)
    for u, i in zip(b.users.tolist(), b.items.tolist()):
        assert i not in history[u].tolist()
