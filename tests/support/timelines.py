"""Tiny synthetic timelines for replay tests: events as (user, item, day)."""

from __future__ import annotations

import numpy as np

from bench.data.dataset import Dataset, Interactions, ItemText
from bench.data.replay import DAY_S

T_START = 1_000_000_000


def timeline(events: list[tuple[int, int, float]], n_users: int | None = None, n_items: int | None = None) -> Dataset:
    """A dataset from (user, item, day) events; day may be fractional."""
    users = np.array([e[0] for e in events], dtype=np.int32)
    items = np.array([e[1] for e in events], dtype=np.int32)
    ts = np.array([T_START + int(round(e[2] * DAY_S)) for e in events], dtype=np.int64)
    n_u = n_users or int(users.max()) + 1
    n_i = n_items or int(items.max()) + 1
    text = ItemText([f"item {i}" for i in range(n_i)], np.full(n_i, -1, np.int32), [("Drama",)] * n_i)
    return Dataset(
        "toy",
        Interactions(users, items, np.ones(len(events), np.float32), ts),
        n_u,
        n_i,
        text,
        np.arange(n_u),
        np.arange(n_i),
    )


def random_timeline(n_users=40, n_items=30, n_events=900, days=40, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    pairs = set()
    events = []
    while len(events) < n_events:
        u, i = int(rng.integers(n_users)), int(rng.integers(n_items))
        if (u, i) not in pairs:
            pairs.add((u, i))
            # item i is released around day i: later items appear later in the timeline
            events.append((u, i, float(min(days, i * days / n_items + rng.random() * days / 2))))
    events.append((0, 0, 0.0))  # the timeline starts at day 0
    return timeline(list({(u, i): (u, i, d) for u, i, d in events}.values()), n_users, n_items)


def write_csv(data: Dataset, path) -> str:
    """The dataset as a user,item,rating,timestamp CSV (what `recbench run` reads as a user's own data)."""
    inter = data.interactions
    lines = ["user,item,rating,timestamp"] + [
        f"{u},{i},{r:g},{t}"
        for u, i, r, t in zip(
            inter.users.tolist(), inter.items.tolist(), inter.ratings.tolist(), inter.timestamps.tolist()
        )
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)
