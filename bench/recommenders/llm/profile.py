"""User profile texts and within-train hold-out splits for the language-model recommenders.

A profile is what the user tower reads: the user's most recent liked titles, most recent first. It is
built from training interactions only and never carries a rating or label as text (the article's code
put the rating into the item text; that leaks the answer into the input).

The hold-out split lets a recommender learn from (profile, target item) pairs without touching valid or
test: per user, part A of the train interactions builds the profile, part B supplies the targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.dataset import Interactions, ItemText
from bench.errors import ConfigError

#: ratings at or above this count as "liked" (MovieLens' 1..5 scale); implicit sources keep every event
DEFAULT_MIN_RATING = 4.0
#: titles a profile lists by default: ~65 MiniLM tokens on ML-100K; 10 ranked better than 5 (valid split)
DEFAULT_PROFILE_LEN = 10
SEPARATOR = "; "


@dataclass(frozen=True)
class ProfileConfig:
    max_titles: int = DEFAULT_PROFILE_LEN
    min_rating: float = DEFAULT_MIN_RATING
    #: "title" lists titles (with year); "describe" lists ItemText.describe (adds genres: longer, costlier)
    fields: str = "title"

    def validate(self) -> None:
        if self.max_titles < 1:
            raise ConfigError(f"profile_len={self.max_titles} must be at least 1 title")
        if self.fields not in ("title", "describe"):
            raise ConfigError(f"profile fields {self.fields!r} unknown: use 'title' or 'describe'")


def item_title(item_text: ItemText, item: int) -> str:
    """Title with its year (MovieLens titles already carry it); no genres, never a rating."""
    title = item_text.titles[item]
    year = int(item_text.years[item])
    return title if year < 0 or f"({year})" in title else f"{title} ({year})"


def item_texts(item_text: ItemText, fields: str = "describe") -> list[str]:
    """The text the item tower reads for every item, by dense index."""
    n = len(item_text.titles)
    if fields == "title":
        return [item_title(item_text, i) for i in range(n)]
    return [item_text.describe(i) for i in range(n)]


def has_ratings(interactions: Interactions) -> bool:
    """Explicit ratings exist when the rating column is not one constant (implicit sources store 1.0)."""
    r = interactions.ratings
    return len(r) > 0 and bool(np.any(r != r[0]))


def recent_liked(
    interactions: Interactions, n_users: int, max_titles: int, min_rating: float = DEFAULT_MIN_RATING
) -> list[np.ndarray]:
    """Per user, up to `max_titles` item indices: liked items, most recent first.

    Liked = rating >= min_rating where ratings exist, else every event. A user who liked nothing falls
    back to all their items (the profile then still says what they watched, not how they rated it).
    Order: timestamp descending when present, else later rows first; ties by item index (deterministic).
    """
    n = len(interactions)
    users = interactions.users.astype(np.int64)
    items = interactions.items.astype(np.int64)
    recency = (
        interactions.timestamps.astype(np.int64)
        if interactions.timestamps is not None
        else np.arange(n, dtype=np.int64)
    )
    liked = (interactions.ratings >= min_rating) if has_ratings(interactions) else np.ones(n, dtype=bool)
    # a user with no liked event keeps all events
    liked_count = np.bincount(users[liked], minlength=n_users)
    keep = liked | (liked_count[users] == 0)
    users, items, recency = users[keep], items[keep], recency[keep]
    order = np.lexsort((items, -recency, users))
    users, items = users[order], items[order]
    starts = np.searchsorted(users, np.arange(n_users), side="left")
    pos = np.arange(len(users)) - starts[users]
    sel = pos < max_titles
    users, items = users[sel], items[sel]
    bounds = np.searchsorted(users, np.arange(n_users + 1), side="left")
    return [items[bounds[u] : bounds[u + 1]] for u in range(n_users)]


def build_profiles(
    interactions: Interactions, item_text: ItemText, n_users: int, config: ProfileConfig = ProfileConfig()
) -> list[str]:
    """One profile text per user (dense index); an empty string for a user with no interactions."""
    config.validate()
    texts = item_texts(item_text, config.fields)
    history = recent_liked(interactions, n_users, config.max_titles, config.min_rating)
    return [SEPARATOR.join(texts[i] for i in h.tolist()) for h in history]


def holdout_split(interactions: Interactions, frac: float, seed: int) -> tuple[Interactions, Interactions]:
    """Split train interactions per user into (A: profile source, B: held-out targets), seeded.

    Each user with at least two events gets round(frac * n) targets, at least one and never all of them;
    users with one event keep it in A. Used only inside fit(), on the training split.
    """
    if not 0.0 < frac < 1.0:
        raise ConfigError(f"holdout_frac={frac} must be strictly between 0 and 1")
    n = len(interactions)
    users = interactions.users.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), users))
    sorted_users = users[order]
    n_users = int(users.max()) + 1 if n else 0
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(n) - starts[sorted_users]
    per_user = counts[sorted_users]
    n_target = np.clip(np.rint(frac * per_user), 1, np.maximum(per_user - 1, 0))
    in_b = np.zeros(n, dtype=bool)
    in_b[order] = pos < n_target
    return interactions.subset(~in_b), interactions.subset(in_b)
