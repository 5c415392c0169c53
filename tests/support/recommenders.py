"""Test doubles for the harness itself, registered as a plugin, and a toy split to test recommenders on.

- Failing raises in fit, to prove a failed cell is reported and does not take the run down.
- Sleeping(seconds) sleeps in fit, to prove timeouts and fit timing.

Importing this module registers both (`failing`, `sleeping`, family "test"); a test scenario names it as a
plugin (`Scenario(plugins=(PLUGIN,))`) so that every cell process registers them too. They are never in
the production registry.
"""

from __future__ import annotations

import time

import numpy as np

from bench.data.dataset import Dataset, Interactions, ItemText, Split, TrainSet
from bench.errors import ConfigError
from bench.plugins import class_target
from bench.recommenders import registry
from bench.recommenders.probe import NoOp

#: this module as a plugin: its file, importable in any process whatever its working directory
PLUGIN = __file__


class Failing(NoOp):
    """Raises RuntimeError in fit, always."""

    name = "failing"

    def fit(self, train: TrainSet) -> Failing:
        raise RuntimeError(
            "Failing recommender: fit raised on purpose (this test recommender always fails; "
            "use it only to check that the harness reports failed cells)"
        )


class Sleeping(NoOp):
    """Sleeps `seconds` in fit, then behaves like NoOp."""

    name = "sleeping"

    def __init__(self, seconds: float = 1.0) -> None:
        super().__init__()
        try:
            self.seconds = float(seconds)
        except (TypeError, ValueError):
            raise ConfigError(f"Sleeping: seconds={seconds!r} is not a number: use seconds >= 0") from None
        if not np.isfinite(self.seconds) or self.seconds < 0:
            raise ConfigError(f"Sleeping: seconds={seconds!r} is invalid: use a finite number >= 0")

    def fit(self, train: TrainSet) -> Sleeping:
        time.sleep(self.seconds)
        return super().fit(train)


def toy_split(n_users: int = 200, n_items: int = 120, n_clusters: int = 4, per_user: int = 20, seed: int = 0) -> Split:
    """A small clustered dataset split 80/10/10 per user, for unit tests and benchmarks of recommenders.

    Users and items fall in `n_clusters` taste groups; a user draws 85% of their items from their own
    group with Zipf-like popularity inside it, so collaborative filtering beats popularity, as on real
    data. Ratings are 1..5, higher inside the user's group. Deterministic for a seed; no files touched.
    """
    rng = np.random.default_rng(seed)
    user_group = rng.integers(0, n_clusters, n_users)
    item_group = np.arange(n_items) % n_clusters
    item_weight = 1.0 / (1.0 + np.arange(n_items)) ** 0.8  # Zipf-like: low index = popular
    same = item_group[None, :] == user_group[:, None]
    prob = item_weight[None, :] * np.where(same, 0.85 * n_clusters, 0.15)
    prob /= prob.sum(axis=1, keepdims=True)
    # per user, `per_user` distinct items by Gumbel top-k on log-probabilities (vectorised sampling)
    keys = np.log(prob) - np.log(-np.log(rng.random((n_users, n_items))))
    chosen = np.argsort(-keys, axis=1)[:, :per_user]
    users = np.repeat(np.arange(n_users), per_user).astype(np.int32)
    items = chosen.ravel().astype(np.int32)
    in_group = same[users, items]
    ratings = np.clip(np.where(in_group, 4.0, 2.5) + rng.normal(0, 0.8, users.size), 1, 5).round()
    ts = rng.integers(0, 10**6, users.size).astype(np.int64)
    inter = Interactions(users, items, ratings.astype(np.float32), ts)
    text = ItemText(
        [f"Item {i}" for i in range(n_items)], np.full(n_items, -1, np.int32), [(f"group{g}",) for g in item_group]
    )
    ds = Dataset("toy", inter, n_users, n_items, text, np.arange(n_users), np.arange(n_items), source="toy")
    # per user: a random order of their events, first 80% train, next 10% valid, rest test
    pos = np.argsort(rng.random((n_users, per_user)), axis=1)
    n_train, n_valid = int(round(per_user * 0.8)), int(round(per_user * 0.1))
    part = np.where(pos < n_train, 0, np.where(pos < n_train + n_valid, 1, 2)).ravel()
    return Split("random-8-1-1", seed, ds, inter.subset(part == 0), inter.subset(part == 1), inter.subset(part == 2))


for _cls, _summary in (
    (Failing, "raises in fit: checks failed cells are reported"),
    (Sleeping, "sleeps `seconds` in fit: checks timeouts"),
):
    registry.register(registry.Entry(_cls.name, class_target(_cls), "test", _summary))
