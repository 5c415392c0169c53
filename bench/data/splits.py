"""Train / valid / test splits: `random-8-1-1`, `temporal-loo`, `cold-items`.

All three are vectorised: rows are ordered once (by user, then a seeded random key or the timestamp) and
every row's part follows from its rank within its user and its user's count -- no Python loop over users.
Each part keeps the dataset's original row order, so a split is a pure function of (dataset, protocol, seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.data.dataset import Dataset, Split
from bench.errors import ConfigError

TRAIN, VALID, TEST = 0, 1, 2

#: RecBole's default general-recommendation protocol: eval_args split {'RS': [0.8, 0.1, 0.1]}, order 'RO',
#: group_by 'user'
RECBOLE_RATIOS = (0.8, 0.1, 0.1)


def recbole_part_sizes(totals: np.ndarray, ratios=RECBOLE_RATIOS) -> np.ndarray:
    """Rows per part for groups of `totals` rows, exactly as RecBole 1.2.1's Dataset._calcu_split_ids.

    RecBole: cnt = [int(r * tot) for r in ratios]; cnt[0] = tot - sum(cnt[1:]); then, walking the parts from
    the last towards the second, while cnt[0] > 1, a part whose share of tot lies in (0, 1) gets one row
    taken from the first. Returns an (n_groups, len(ratios)) int64 array. Same float arithmetic as RecBole
    (ratios normalised by their Python sum, products in float64), so boundary cases round identically.
    """
    total_ratio = sum(ratios)
    ratios = [r / total_ratio for r in ratios]
    tot = np.asarray(totals, dtype=np.int64)
    cnt = np.stack([np.floor(r * tot.astype(np.float64)).astype(np.int64) for r in ratios], axis=1)
    cnt[:, 0] = tot - cnt[:, 1:].sum(axis=1)
    for i in range(1, len(ratios)):  # over parts (2 or 3), not users
        share = ratios[-i] * tot.astype(np.float64)
        bump = (cnt[:, 0] > 1) & (share > 0) & (share < 1)
        cnt[bump, -i] += 1
        cnt[bump, 0] -= 1
    return cnt


def _group_ranks(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by group key: each row's 0-based rank in its group, and its group's size."""
    n = sorted_keys.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n, dtype=np.int64) - np.repeat(starts, sizes)
    return rank, np.repeat(sizes, sizes)


def _ratio_labels(users: np.ndarray, rows: np.ndarray, rng: np.random.Generator, ratios) -> np.ndarray:
    """Part label for each of `rows`: per user, rows in a seeded random order, cut by RecBole's rounding."""
    labels = np.empty(rows.shape[0], dtype=np.int8)
    if rows.shape[0] == 0:
        return labels
    random_key = rng.permutation(rows.shape[0])
    order = np.lexsort((random_key, users[rows]))
    rank, size = _group_ranks(users[rows][order])
    cnt = recbole_part_sizes(size, ratios)
    bounds = np.cumsum(cnt, axis=1)
    part = (rank[:, None] >= bounds[:, :-1]).sum(axis=1).astype(np.int8)
    labels[order] = part
    return labels


def _assemble(
    dataset: Dataset, protocol: str, seed: int, labels: np.ndarray, cold_items: np.ndarray | None = None
) -> Split:
    inter = dataset.interactions
    return Split(
        protocol,
        seed,
        dataset,
        inter.subset(labels == TRAIN),
        inter.subset(labels == VALID),
        inter.subset(labels == TEST),
        cold_items,
    )


def random_8_1_1(dataset: Dataset, seed: int) -> Split:
    """RecBole's general protocol: each user's interactions in a seeded random order; first 80% train,
    next 10% valid, last 10% test, with RecBole's rounding (valid/test rounded down, except that a user with
    fewer than 10 rows still gets one valid and one test row while keeping at least one train row). All
    ratings count as implicit feedback for ranking; the ratings stay attached for the rating track."""
    users = dataset.interactions.users
    rng = np.random.default_rng(seed)
    labels = _ratio_labels(users, np.arange(users.shape[0]), rng, RECBOLE_RATIOS)
    return _assemble(dataset, "random-8-1-1", seed, labels)


def temporal_loo(dataset: Dataset, seed: int) -> Split:
    """Per user by timestamp: the last interaction is test, the second-last valid, the rest train.
    Ties in time keep file order (deterministic; the seed is recorded but not needed). A user with two
    interactions gives train + test, with one only train -- so every test user has training history."""
    inter = dataset.interactions
    if inter.timestamps is None:
        raise ConfigError(
            f"split temporal-loo needs timestamps, which dataset {dataset.name} lacks; "
            f"use one of: {', '.join(n for n, p in SPLITS.items() if not p.needs_timestamps)}"
        )
    n = len(inter)
    order = np.lexsort((np.arange(n), inter.timestamps, inter.users))
    rank, size = _group_ranks(inter.users[order])
    from_end = size - 1 - rank
    part = np.full(n, TRAIN, dtype=np.int8)
    part[(from_end == 0) & (size >= 2)] = TEST
    part[(from_end == 1) & (size >= 3)] = VALID
    labels = np.empty(n, dtype=np.int8)
    labels[order] = part
    return _assemble(dataset, "temporal-loo", seed, labels)


def cold_items(dataset: Dataset, seed: int, cold_share: float = 0.2) -> Split:
    """A seeded `cold_share` of the items that have interactions is held out entirely: all their interactions
    go to test. The remaining (warm) interactions are split per user 90/10 into train/valid with the same
    rounding as random-8-1-1. `Split.cold_items` lists the held-out items. A test user may have no training
    history (every item they touched is cold); such users can only be served from side information."""
    if not 0.0 < cold_share < 1.0:
        raise ConfigError(f"cold-items share must lie strictly between 0 and 1, got {cold_share}; try 0.2")
    inter = dataset.interactions
    rng = np.random.default_rng(seed)
    candidates = np.unique(inter.items)
    n_cold = int(round(cold_share * candidates.shape[0]))
    if n_cold < 1 or n_cold >= candidates.shape[0]:
        raise ConfigError(
            f"cold-items share {cold_share} holds out {n_cold} of {candidates.shape[0]} items; "
            f"choose a share that leaves at least one cold and one warm item"
        )
    cold = np.sort(rng.choice(candidates, size=n_cold, replace=False))
    is_cold = np.isin(inter.items, cold)
    labels = np.full(len(inter), TEST, dtype=np.int8)
    warm_rows = np.flatnonzero(~is_cold)
    labels[warm_rows] = _ratio_labels(inter.users, warm_rows, rng, (0.9, 0.1))
    return _assemble(dataset, "cold-items", seed, labels, cold_items=cold.astype(np.int32))


@dataclass(frozen=True)
class SplitProtocol:
    name: str
    description: str
    needs_timestamps: bool
    make: Callable[..., Split]


SPLITS: dict[str, SplitProtocol] = {
    "random-8-1-1": SplitProtocol(
        "random-8-1-1", "RecBole's general protocol: per user random 80/10/10", False, random_8_1_1
    ),
    "temporal-loo": SplitProtocol(
        "temporal-loo", "per user by time: last item test, second-last valid", True, temporal_loo
    ),
    "cold-items": SplitProtocol(
        "cold-items", "20% of items held out entirely (test); rest per user 90/10", False, cold_items
    ),
}


def make_split(dataset: Dataset, protocol: str, seed: int = 0, **options) -> Split:
    """Split `dataset` under `protocol` (a SPLITS key) with `seed`. Options: cold-items takes cold_share."""
    entry = SPLITS.get(protocol)
    if entry is None:
        raise ConfigError(f"unknown split {protocol!r}; choose one of: {', '.join(SPLITS)}")
    try:
        return entry.make(dataset, int(seed), **options)
    except TypeError as exc:
        if options:
            raise ConfigError(f"split {protocol} does not take option(s) {', '.join(options)} ({exc})") from None
        raise
