"""The replay (bench.data.replay) on tiny synthetic timelines: windows, new users and items, targets, leakage."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.replay import DAY_S, ReplayConfig, make_replay, parse_spec
from bench.errors import ConfigError
from tests.support.timelines import T_START, random_timeline, timeline


def test_windows_are_fixed_half_open_and_cover_every_event_once():
    # T0 = day 5 (start 0.5 of a 10-day span); 1-day windows [5,6), [6,7), ... ; an event at exactly day 6
    # belongs to the second window, never to two
    data = timeline([(0, 0, 0), (1, 1, 4.99), (0, 1, 5.0), (1, 0, 6.0), (2, 2, 6.5), (0, 2, 9.0), (2, 0, 10.0)])
    replay = make_replay(data, ReplayConfig(start=0.5, window_days=1))
    assert replay.t0_s == T_START + 5 * DAY_S
    starts = [w.start_s for w in replay.windows]
    assert starts == [T_START + (5 + k) * DAY_S for k in range(len(replay.windows))]
    assert all(w.end_s == w.start_s + DAY_S for w in replay.windows)
    assert [len(w.interactions) for w in replay.windows] == [1, 2, 0, 0, 1, 1]
    assert len(replay.history(0)) == 2  # days 0 and 4.99
    for w in replay.windows:
        assert np.all((w.interactions.timestamps >= w.start_s) & (w.interactions.timestamps < w.end_s))
    assert len(replay.history(0)) + sum(len(w.interactions) for w in replay.windows) == 7


def test_new_users_and_items_are_those_first_seen_in_the_window():
    data = timeline(
        [(0, 0, 0), (1, 1, 1), (0, 1, 5.5), (2, 0, 5.6), (2, 3, 6.2), (3, 3, 6.4), (0, 2, 8.0), (3, 3, 9.9)]
    )
    replay = make_replay(data, ReplayConfig(start=0.5, window_days=1))
    w = replay.windows
    assert w[0].new_users.tolist() == [2] and w[0].new_items.tolist() == []
    assert w[1].new_users.tolist() == [3] and w[1].new_items.tolist() == [3]  # user 2's item 3 first, then user 3
    assert w[3].new_users.tolist() == [] and w[3].new_items.tolist() == [2]
    assert w[4].new_users.tolist() == [] and w[4].new_items.tolist() == []  # user 3 and item 3 are known by then
    assert w[1].changed_users.tolist() == [2, 3]


def test_targets_hold_only_known_users_and_items_and_fresh_items_come_from_the_window_before():
    data = timeline([(0, 0, 0), (1, 1, 1), (0, 1, 5.5), (2, 0, 5.6), (0, 3, 5.7), (1, 3, 6.5), (2, 4, 6.6), (0, 2, 10)])
    replay = make_replay(data, ReplayConfig(start=0.5, window_days=1))
    t0 = replay.target(0)
    assert t0.users.tolist() == [0]  # user 2 has no history yet; user 0's item 3 is new in this window
    assert t0.relevant[0].indices.tolist() == [1]
    t1 = replay.target(1)
    assert t1.users.tolist() == [1]  # item 3 is in the catalogue now; user 2's item 4 is not
    assert t1.relevant[1].indices.tolist() == [3]
    assert t1.fresh_items.tolist() == [3]  # first seen in window 0
    assert t1.seen[1].indices.tolist() == [1]


def test_no_future_interaction_reaches_a_fit():
    replay = make_replay(random_timeline(), ReplayConfig(start=0.5, window_days=2))
    assert replay.initial.interactions.timestamps.max() < replay.t0_s
    for step in range(1, len(replay.windows)):
        update = replay.update(step)
        assert update.history.interactions.timestamps.max() < update.window.end_s
        assert update.history.interactions.timestamps.max() < replay.start_of(step)
        known = np.unique(update.history.interactions.items)
        assert update.history.known_items.tolist() == known.tolist()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("replay:start=1.5", "between 0 and 1"),
        ("replay:window_days=0", "positive"),
        ("replay:foo=1", "not one of"),
        ("replay:windows=x", "not a int"),
        ("random-8-1-1", "not a replay spec"),
    ],
)
def test_bad_replay_specs_fail_with_one_line(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(spec)


def test_a_timeline_too_short_for_two_windows_is_refused():
    with pytest.raises(ConfigError, match="fewer than 2 windows"):
        make_replay(timeline([(0, 0, 0), (1, 1, 1.0)]), ReplayConfig(start=0.5, window_days=7))
