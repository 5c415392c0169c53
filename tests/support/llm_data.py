"""Small deterministic inputs for the language-model recommenders' tests: a toy train set with ratings,
timestamps and item text, and a split around it. Nothing here is used at run time.
"""

from __future__ import annotations

import numpy as np

from bench.data.dataset import Dataset, Interactions, ItemText, Split, TrainSet

_WORDS = (
    "Star",
    "River",
    "Night",
    "Love",
    "War",
    "Ghost",
    "City",
    "Dream",
    "Storm",
    "King",
    "Blue",
    "Secret",
    "Garden",
    "Iron",
    "Last",
    "Summer",
    "Winter",
    "Shadow",
    "Golden",
    "Wild",
)
_GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation")


def toy_item_text(n_items: int, seed: int = 0) -> ItemText:
    rng = np.random.default_rng(seed)
    titles = [f"{_WORDS[rng.integers(len(_WORDS))]} {_WORDS[rng.integers(len(_WORDS))]} {i}" for i in range(n_items)]
    years = rng.integers(1950, 2000, size=n_items).astype(np.int32)
    genres = [tuple(sorted({_GENRES[g] for g in rng.integers(len(_GENRES), size=2)})) for _ in range(n_items)]
    return ItemText(titles=[f"{t} ({y})" for t, y in zip(titles, years)], years=years, genres=genres)


def toy_interactions(
    n_users: int = 24, n_items: int = 40, per_user: tuple[int, int] = (6, 14), seed: int = 0
) -> Interactions:
    """Every user rates a few distinct items (1..5) at distinct timestamps; items cluster by user group."""
    rng = np.random.default_rng(seed)
    users, items, ratings, ts = [], [], [], []
    for u in range(n_users):
        k = int(rng.integers(per_user[0], per_user[1] + 1))
        # two taste groups so that a personalised model has something to find
        pool = np.arange(n_items // 2) if u % 2 == 0 else np.arange(n_items // 2, n_items)
        own = rng.choice(pool, size=min(k - 2, len(pool)), replace=False)
        other = rng.choice(np.setdiff1d(np.arange(n_items), pool), size=2, replace=False)
        chosen = np.concatenate([own, other])
        users.append(np.full(len(chosen), u))
        items.append(chosen)
        liked = np.isin(chosen, pool)
        ratings.append(np.where(liked, rng.integers(3, 6, len(chosen)), rng.integers(1, 3, len(chosen))))
        ts.append(1_000_000 + u * 1000 + rng.permutation(len(chosen)))
    return Interactions(
        np.concatenate(users).astype(np.int32),
        np.concatenate(items).astype(np.int32),
        np.concatenate(ratings).astype(np.float32),
        np.concatenate(ts).astype(np.int64),
    )


def toy_split(n_users: int = 24, n_items: int = 40, seed: int = 0) -> Split:
    """A per-user random 80/10/10 split of the toy interactions (test holds at least one item per user)."""
    inter = toy_interactions(n_users, n_items, seed=seed)
    rng = np.random.default_rng(seed + 1)
    order = np.lexsort((rng.random(len(inter)), inter.users))
    users = inter.users[order]
    starts = np.searchsorted(users, np.arange(n_users))
    pos = np.arange(len(users)) - starts[users]
    counts = np.bincount(users, minlength=n_users)[users]
    part = np.where(pos < 1, 2, np.where(pos < 2, 1, 0))  # 1 test, 1 valid, rest train
    part = np.where(counts < 3, 0, part)
    label = np.empty(len(inter), dtype=np.int64)
    label[order] = part
    text = toy_item_text(n_items, seed)
    ds = Dataset("toy", inter, n_users, n_items, text, np.arange(n_users), np.arange(n_items), source="toy")
    return Split("random-8-1-1", seed, ds, inter.subset(label == 0), inter.subset(label == 1), inter.subset(label == 2))


def toy_train(n_users: int = 24, n_items: int = 40, seed: int = 0) -> TrainSet:
    return toy_split(n_users, n_items, seed).train_set()
