"""The harness's own test recommenders: NoOp, Failing, Sleeping, and the toy split they run on."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.recommenders.registry import REGISTRY, get
from tests.support import recommenders as testing
from tests.support.recommenders import Failing, NoOp, Sleeping, toy_split


@pytest.fixture(scope="module")
def split():
    return toy_split(n_users=30, n_items=40, per_user=10, seed=1)


def test_noop_returns_a_well_formed_topk(split):
    rec = NoOp().fit(split.train_set())
    users = np.array([3, 1, 4])
    top = rec.recommend(users, 5)
    assert np.array_equal(top.users, users)
    assert top.items.shape == (3, 5) and top.items.dtype == np.int64
    assert top.scores.shape == (3, 5) and top.scores.dtype == np.float32
    assert top.items.tolist() == [[0, 1, 2, 3, 4]] * 3
    assert rec.footprint() == 0


def test_noop_still_checks_k(split):
    rec = NoOp().fit(split.train_set())
    with pytest.raises(ConfigError, match="k=0"):
        rec.recommend(np.array([0]), 0)
    with pytest.raises(ConfigError, match="catalogue"):
        rec.recommend(np.array([0]), split.n_items + 1)


def test_failing_raises_a_clear_runtime_error(split):
    with pytest.raises(RuntimeError, match="fit raised on purpose"):
        Failing().fit(split.train_set())


def test_sleeping_sleeps_the_requested_seconds_then_works(split, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(testing.time, "sleep", slept.append)
    rec = Sleeping(seconds=2.5).fit(split.train_set())
    assert slept == [2.5]
    assert rec.recommend(np.array([0]), 3).items.shape == (1, 3)


@pytest.mark.parametrize("bad", [-1, float("inf"), "soon"])
def test_sleeping_rejects_bad_durations(bad):
    with pytest.raises(ConfigError, match="seconds"):
        Sleeping(seconds=bad)


def test_registry_builds_the_test_recommenders_under_family_test():
    for name, cls in [("noop", NoOp), ("failing", Failing), ("sleeping", Sleeping)]:
        assert REGISTRY[name].family == "test"
        assert type(get(name).build()) is cls
    assert get("sleeping").build(seconds=0.25).seconds == 0.25


def test_unknown_name_lists_real_recommenders_only():
    with pytest.raises(ConfigError) as err:
        get("nope")
    assert "ease" in str(err.value) and "failing" not in str(err.value)


def test_toy_split_is_deterministic_and_partitions_each_user(split):
    again = toy_split(n_users=30, n_items=40, per_user=10, seed=1)
    assert np.array_equal(split.train.items, again.train.items)
    assert not np.array_equal(split.train.items, toy_split(n_users=30, n_items=40, per_user=10, seed=2).train.items)
    # 8 / 1 / 1 of each user's 10 events, and no (user, item) pair in two parts
    for part, n in [(split.train, 8), (split.valid, 1), (split.test, 1)]:
        assert np.all(np.bincount(part.users, minlength=30) == n)
    keys = [set(zip(p.users.tolist(), p.items.tolist())) for p in (split.train, split.valid, split.test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])


def test_noop_allocates_and_checks_once_per_shape_so_its_timed_call_is_only_the_harness():
    import numpy as np
    import pytest

    from bench.errors import ConfigError
    from tests.support.recommenders import NoOp, toy_split

    rec = NoOp().fit(toy_split(n_users=30, n_items=50, seed=0).train_set())
    first = rec.recommend(np.array([3]), 10)
    again = rec.recommend(np.array([7]), 10)
    assert again.items is first.items and again.scores is first.scores  # no allocation in the steady state
    assert again.users.tolist() == [7] and again.items.shape == (1, 10)
    assert not again.items.flags.writeable  # shared lists cannot be changed by a caller
    assert rec.recommend(np.arange(4), 10).items.shape == (4, 10)  # another batch size gets its own lists
    with pytest.raises(ConfigError):
        rec.recommend(np.array([1]), 51)  # k is still checked, on the first call of each shape
