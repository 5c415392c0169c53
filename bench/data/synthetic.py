"""A synthetic dataset with known structure, at any size, deterministic for a seed.

Generative story (a topic model with popularity, so the truth is known and CF has something to find):
  - items: Zipf-like popularity w_i ~ rank^-zipf_exponent, a primary and a secondary topic;
  - users: a topic preference theta_u ~ Dirichlet(concentration) (small -> few favourite topics) and an
    activity level (log-normal, so a few users are heavy);
  - each interaction: with probability `popularity_mix` an item by global popularity (taste-free noise),
    else a topic z ~ theta_u and an item from phi_z, topic z's popularity-weighted item distribution;
  - rating 1-5 from the user's affinity for the item's topics plus item quality, user bias and noise;
  - timestamps: each user active over their own window;
  - item text: titles built from topic-specific words, topic-specific release years, genres = topic names;
    so text carries the same signal as the latent factors.
Everything is numpy-vectorised; loops run over topics or small rounds, never over users or items' rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bench.data.checksum import fast_canonical_checksum
from bench.data.dataset import Dataset, Interactions, ItemText
from bench.errors import ConfigError

TOPIC_NAMES = (
    "Action",
    "Comedy",
    "Drama",
    "Romance",
    "Thriller",
    "Sci-Fi",
    "Horror",
    "Documentary",
    "Animation",
    "Western",
    "Crime",
    "Fantasy",
    "Musical",
    "War",
    "Mystery",
    "Adventure",
)

# Title words per topic: a title is "<word> <word>" from its primary topic, sometimes "of the <word>" from
# its secondary topic, so a text model can infer the topics from titles as well as from genres.
_TOPIC_WORDS = {
    "Action": ("Strike", "Fury", "Mission", "Thunder", "Steel", "Blast", "Chase", "Impact"),
    "Comedy": ("Wedding", "Party", "Roommates", "Mix-Up", "Holiday", "Neighbours", "Prank", "Trouble"),
    "Drama": ("Letters", "Silence", "River", "Mother", "Winter", "Promise", "Distance", "Harvest"),
    "Romance": ("Love", "Heart", "Kiss", "Paris", "Summer", "Sweetheart", "Valentine", "Embrace"),
    "Thriller": ("Witness", "Deception", "Pursuit", "Conspiracy", "Alibi", "Target", "Suspect", "Trap"),
    "Sci-Fi": ("Galaxy", "Android", "Orbit", "Quantum", "Starship", "Colony", "Signal", "Nebula"),
    "Horror": ("Haunting", "Curse", "Shadows", "Graveyard", "Possession", "Blood", "Nightmare", "Ghost"),
    "Documentary": ("Story", "Inside", "Portrait", "Truth", "Chronicle", "Journey", "Record", "Frontline"),
    "Animation": ("Bunny", "Dragon", "Toys", "Kingdom", "Penguins", "Magic", "Robot", "Puppy"),
    "Western": ("Outlaw", "Saddle", "Frontier", "Sheriff", "Canyon", "Gunslinger", "Ranch", "Stagecoach"),
    "Crime": ("Heist", "Mob", "Detective", "Verdict", "Racket", "Getaway", "Informant", "Syndicate"),
    "Fantasy": ("Sword", "Wizard", "Realm", "Prophecy", "Crown", "Enchantress", "Quest", "Elves"),
    "Musical": ("Song", "Melody", "Rhythm", "Broadway", "Chorus", "Dance", "Jazz", "Encore"),
    "War": ("Battalion", "Trenches", "Front", "Siege", "Regiment", "Armistice", "Beachhead", "Platoon"),
    "Mystery": ("Enigma", "Riddle", "Clue", "Manor", "Disappearance", "Cipher", "Locket", "Inheritance"),
    "Adventure": ("Island", "Treasure", "Expedition", "Jungle", "Voyage", "Summit", "Map", "Lost"),
}
_OPENERS = ("The", "A", "Last", "Dark", "Little", "Great", "Final", "Secret", "Wild", "Silent")

_EPOCH_2015 = 1_420_070_400  # 2015-01-01T00:00:00Z; synthetic timestamps start here


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 1000
    n_items: int = 500
    n_interactions: int = 20_000
    seed: int = 0
    n_topics: int = 12
    zipf_exponent: float = 1.0
    concentration: float = 0.1  # Dirichlet parameter of user tastes; smaller -> sharper tastes
    popularity_mix: float = 0.1  # share of interactions drawn by popularity alone
    topic_popularity_power: float = 0.6  # within a topic, items weighted by popularity ** this

    def spec(self) -> str:
        """The dataset name that regenerates exactly this data."""
        spec = (
            f"synthetic:users={self.n_users},items={self.n_items},interactions={self.n_interactions},seed={self.seed}"
        )
        return spec if self.n_topics == SyntheticConfig.n_topics else f"{spec},topics={self.n_topics}"

    def validate(self) -> None:
        for field in ("n_users", "n_items", "n_interactions", "n_topics"):
            if getattr(self, field) < 1:
                raise ConfigError(f"synthetic {field} must be at least 1, got {getattr(self, field)}")
        if self.n_topics > len(TOPIC_NAMES):
            raise ConfigError(f"synthetic n_topics must be at most {len(TOPIC_NAMES)}, got {self.n_topics}")
        # distinct (user, item) pairs must be easy to find: at most half of the user x item grid
        capacity = self.n_users * max(1, self.n_items // 2)
        if self.n_interactions > capacity:
            raise ConfigError(
                f"synthetic: {self.n_interactions} interactions do not fit {self.n_users} users x "
                f"{self.n_items} items (at most {capacity}, half of each user's catalogue); "
                f"ask for fewer interactions or more users/items"
            )
        if not 0.0 <= self.popularity_mix < 1.0:
            raise ConfigError(f"synthetic popularity_mix must lie in [0, 1), got {self.popularity_mix}")


@dataclass(frozen=True)
class SyntheticTruth:
    """The generating factors: what a perfect model would know."""

    user_topics: np.ndarray  # (n_users, n_topics) theta, rows sum to 1
    topic_items: np.ndarray  # (n_topics, n_items) phi, rows sum to 1
    item_popularity: np.ndarray  # (n_items,) sums to 1
    item_membership: np.ndarray  # (n_items, n_topics) topic weights of each item, rows sum to 1
    popularity_mix: float

    def scores(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items): the true probability that a user's next interaction is each item."""
        taste = self.user_topics[users] @ self.topic_items
        return (1.0 - self.popularity_mix) * taste + self.popularity_mix * self.item_popularity[None, :]


def _user_counts(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: a floor for everyone, the rest by log-normal activity, capped at half the
    catalogue (the excess goes to the others)."""
    cap = max(1, cfg.n_items // 2)
    floor = min(3, cfg.n_interactions // cfg.n_users, cap)
    counts = np.full(cfg.n_users, floor, dtype=np.int64)
    activity = rng.lognormal(0.0, 1.0, size=cfg.n_users)
    rest = cfg.n_interactions - counts.sum()
    while rest > 0:  # converges in a few rounds: each pass fills uncapped users
        open_users = counts < cap
        p = np.where(open_users, activity, 0.0)
        counts += rng.multinomial(rest, p / p.sum())
        counts = np.minimum(counts, cap)
        rest = cfg.n_interactions - counts.sum()
    return counts


def _draw_items(users: np.ndarray, truth: SyntheticTruth, rng: np.random.Generator) -> np.ndarray:
    """One item per entry of `users`, from the generative story (vectorised; loops over topics only)."""
    n = int(users.shape[0])
    n_topics, n_items = truth.topic_items.shape
    # topic z ~ theta_u by inverse CDF; theta rows sum to 1, so one uniform per draw suffices
    # All users' CDFs laid end to end, user u's shifted by u, so one searchsorted serves every row
    # without materialising an (n, n_topics) matrix.
    n_users = truth.user_topics.shape[0]
    shifted = (np.cumsum(truth.user_topics, axis=1) + np.arange(n_users)[:, None]).ravel()
    topic = np.searchsorted(shifted, users + rng.random(n), side="right") - users * n_topics
    topic = np.clip(topic, 0, n_topics - 1).astype(np.int16)
    topic[rng.random(n) < truth.popularity_mix] = n_topics  # "topic" n_topics: global popularity
    draws = rng.random(n)
    cdfs = np.cumsum(np.vstack([truth.topic_items, truth.item_popularity[None, :]]), axis=1)
    order = np.argsort(topic, kind="stable")  # radix sort on small ints: rows grouped by topic
    bounds = np.searchsorted(topic[order], np.arange(n_topics + 2))
    items = np.empty(n, dtype=np.int64)
    for z in range(n_topics + 1):
        rows = order[bounds[z] : bounds[z + 1]]
        items[rows] = np.searchsorted(cdfs[z], draws[rows] * cdfs[z, -1], side="right")
    return np.minimum(items, n_items - 1)


def _unique_pairs(
    users: np.ndarray,
    items: np.ndarray,
    counts: np.ndarray,
    truth: SyntheticTruth,
    n_items: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs, `counts[u]` per user: draw with margin, drop repeats, top up the shortfall."""
    have_u = np.zeros(0, np.int64)
    have_i = np.zeros(0, np.int64)
    need = counts.copy()
    for round_ in range(60):
        keys = np.concatenate([have_u * n_items + have_i, users * n_items + items])
        _, first = np.unique(keys, return_index=True)
        first.sort()  # keep earlier draws first: the order of drawing is already random
        keys = keys[first]
        ku, ki = keys // n_items, keys % n_items
        order = np.argsort(ku, kind="stable")
        ku, ki = ku[order], ki[order]
        starts = np.searchsorted(ku, np.arange(counts.shape[0]))
        rank = np.arange(ku.shape[0]) - starts[ku]
        keep = rank < counts[ku]
        have_u, have_i = ku[keep], ki[keep]
        need = counts - np.bincount(have_u, minlength=counts.shape[0])
        if need.sum() == 0:
            return have_u, have_i
        users = np.repeat(np.arange(counts.shape[0]), np.where(need > 0, need * 2 + 2, 0))
        # after 10 rounds, a heavy user with sharp tastes may have few items left that the model ever picks: fill
        # the rest uniformly (each draw is new with probability >= 1/2, as a user holds <= half the catalogue)
        items = _draw_items(users, truth, rng) if round_ < 10 else rng.integers(n_items, size=users.shape[0])
    # the caps in _user_counts make this unreachable in practice; fail loudly rather than return short data
    raise ConfigError("synthetic: could not draw enough distinct (user, item) pairs; ask for fewer interactions")


def generate_with_truth(cfg: SyntheticConfig) -> tuple[Dataset, SyntheticTruth]:
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    n_u, n_i, n_t = cfg.n_users, cfg.n_items, cfg.n_topics

    # items: Zipf popularity over a random ranking; primary topic 0.75, secondary 0.25
    ranks = rng.permutation(n_i) + 1
    popularity = ranks.astype(np.float64) ** -cfg.zipf_exponent
    popularity /= popularity.sum()
    primary = rng.integers(n_t, size=n_i)
    secondary = rng.integers(n_t, size=n_i)
    membership = np.zeros((n_i, n_t))
    np.add.at(membership, (np.arange(n_i), primary), 0.75)
    np.add.at(membership, (np.arange(n_i), secondary), 0.25)
    phi = membership.T * (popularity[None, :] ** cfg.topic_popularity_power)
    topic_mass = phi.sum(axis=1, keepdims=True)
    phi = np.where(topic_mass > 0, phi / np.where(topic_mass > 0, topic_mass, 1.0), popularity[None, :])

    # users: Dirichlet tastes via normalised gammas (vectorised), floor avoids all-zero rows
    theta = rng.gamma(cfg.concentration, size=(n_u, n_t)) + 1e-12
    theta /= theta.sum(axis=1, keepdims=True)
    truth = SyntheticTruth(theta, phi, popularity, membership, cfg.popularity_mix)

    counts = _user_counts(cfg, rng)
    draw_users = np.repeat(np.arange(n_u), np.ceil(counts * 1.3).astype(np.int64) + 1)
    users, items = _unique_pairs(draw_users, _draw_items(draw_users, truth, rng), counts, truth, n_i, rng)

    # ratings: affinity of the user for the item's topics (vs. a uniform taste), item quality, user bias
    flat_theta = theta.ravel()  # each item has two topic weights: index them instead of a dense product
    affinity = np.where(
        primary[items] == secondary[items],
        flat_theta[users * n_t + primary[items]],
        0.75 * flat_theta[users * n_t + primary[items]] + 0.25 * flat_theta[users * n_t + secondary[items]],
    )
    quality = 0.3 * (np.log(popularity) - np.log(popularity).mean()) / (np.log(popularity).std() + 1e-9)
    quality += rng.normal(0.0, 0.4, size=n_i)
    user_bias = rng.normal(0.0, 0.3, size=n_u)
    latent = (
        0.6 * np.log(n_t * affinity + 0.05)
        + quality[items]
        + user_bias[users]
        + rng.normal(0.0, 0.6, size=users.shape[0])
    )
    latent += 3.55 - latent.mean()  # centred like MovieLens (mean rating about 3.5) at any size
    ratings = np.clip(np.rint(latent), 1, 5).astype(np.float32)

    # timestamps: each user active from a start date over a log-normal span of days
    start = _EPOCH_2015 + rng.integers(0, 3 * 365 * 86_400, size=n_u)
    span = (rng.lognormal(np.log(60.0), 1.0, size=n_u) * 86_400).astype(np.int64) + 1
    timestamps = start[users] + (rng.random(users.shape[0]) * span[users]).astype(np.int64)

    order = np.lexsort((timestamps, users))
    users, items, ratings, timestamps = users[order], items[order], ratings[order], timestamps[order]
    item_text = _item_text(primary, secondary, rng)
    user_ids = np.arange(n_u, dtype=np.int64)
    item_ids = np.arange(n_i, dtype=np.int64)
    checksum = fast_canonical_checksum(user_ids[users], item_ids[items], ratings, timestamps)
    interactions = Interactions(users.astype(np.int32), items.astype(np.int32), ratings, timestamps)
    dataset = Dataset(
        cfg.spec(),
        interactions,
        n_u,
        n_i,
        item_text,
        user_ids,
        item_ids,
        source=f"synthetic generator ({cfg})",
        checksum=checksum,
    )
    return dataset, truth


def _item_text(primary: np.ndarray, secondary: np.ndarray, rng: np.random.Generator) -> ItemText:
    n_i = primary.shape[0]
    names = np.array(TOPIC_NAMES, dtype=object)
    words = np.array([_TOPIC_WORDS[t] for t in TOPIC_NAMES], dtype=object)  # (topics, 8)
    n_words = words.shape[1]
    opener = np.array(_OPENERS, dtype=object)[rng.integers(len(_OPENERS), size=n_i)]
    head = words[primary, rng.integers(n_words, size=n_i)]
    tail = words[secondary, rng.integers(n_words, size=n_i)]
    with_tail = (rng.random(n_i) < 0.5) & (secondary != primary)
    titles = opener + " " + head
    titles = np.where(with_tail, titles + " of the " + tail, titles)
    # each topic has its own era: release years carry the latent structure too
    topic_year = 1950 + rng.integers(0, 60, size=len(TOPIC_NAMES))
    years = np.clip(np.rint(topic_year[primary] + rng.normal(0.0, 8.0, size=n_i)), 1920, 2024).astype(np.int32)
    first, second = np.minimum(primary, secondary), np.maximum(primary, secondary)
    genres: list[tuple[str, ...]] = [
        (names[a],) if a == b else (names[a], names[b]) for a, b in zip(first.tolist(), second.tolist())
    ]
    return ItemText(titles.tolist(), years, genres)


def generate(
    n_users: int = 1000, n_items: int = 500, n_interactions: int = 20_000, seed: int = 0, **options
) -> Dataset:
    """A synthetic Dataset; same arguments, same data (checksum included). Options: SyntheticConfig fields."""
    return generate_with_truth(SyntheticConfig(n_users, n_items, n_interactions, seed, **options))[0]


def parse_spec(spec: str) -> SyntheticConfig:
    """ "synthetic" or "synthetic:users=1000,items=500,interactions=20000,seed=0" (any subset, any order).

    Pairs may also be separated by ":" or ";" (synthetic:users=1000:seed=1), for command lines that
    split their arguments at commas.
    """
    keys = {
        "users": "n_users",
        "items": "n_items",
        "interactions": "n_interactions",
        "seed": "seed",
        "topics": "n_topics",
    }
    head, _, params = spec.partition(":")
    if head != "synthetic":
        raise ConfigError(
            f"not a synthetic dataset spec: {spec!r}; use synthetic:users=N,items=N,interactions=N,seed=N"
        )
    values: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in re.split(r"[,;:]", params))):
        key, eq, value = part.partition("=")
        if key.strip() not in keys or not eq:
            raise ConfigError(
                f"synthetic option {part!r} is not one of {', '.join(k + '=N' for k in keys)}; "
                f"e.g. synthetic:users=1000,items=500,interactions=20000,seed=0"
            )
        try:
            values[keys[key.strip()]] = int(value.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"synthetic option {key.strip()} must be an integer, got {value.strip()!r}") from None
    return SyntheticConfig(**values)
