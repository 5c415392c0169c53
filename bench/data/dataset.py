"""The in-memory dataset every other module consumes.

Users and items are re-indexed to dense 0..n-1 integers once, at load time; the original ids are kept
for reporting. Everything downstream works on the dense indices.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays, one row per (user, item) event. `timestamps` is None when the source has none."""

    users: np.ndarray  # int32, dense user index
    items: np.ndarray  # int32, dense item index
    ratings: np.ndarray  # float32; 1.0 for implicit-only sources
    timestamps: np.ndarray | None = None  # int64 seconds

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def subset(self, mask_or_index: np.ndarray) -> Interactions:
        ts = None if self.timestamps is None else self.timestamps[mask_or_index]
        return Interactions(self.users[mask_or_index], self.items[mask_or_index], self.ratings[mask_or_index], ts)

    def matrix(self, n_users: int, n_items: int, binary: bool = True) -> sp.csr_matrix:
        """User x item CSR matrix. Binary (implicit feedback) by default; duplicates collapse to one."""
        values = np.ones(len(self), dtype=np.float32) if binary else self.ratings.astype(np.float32)
        m = sp.csr_matrix((values, (self.users, self.items)), shape=(n_users, n_items), dtype=np.float32)
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m


@dataclass(frozen=True)
class ItemText:
    """Item side text, indexed by dense item index. Missing fields are empty strings / -1."""

    titles: list[str]
    years: np.ndarray  # int32, -1 where unknown
    genres: list[tuple[str, ...]]

    def describe(self, item: int) -> str:
        """The text a language model reads for one item: title, year and genres; never a rating."""
        title = self.titles[item]
        year = int(self.years[item])
        text = title if year < 0 or f"({year})" in title else f"{title} ({year})"
        if self.genres[item]:
            text += ". Genres: " + ", ".join(self.genres[item])
        return text


@dataclass(frozen=True)
class Dataset:
    name: str
    interactions: Interactions
    n_users: int
    n_items: int
    item_text: ItemText
    user_ids: np.ndarray  # original id of each dense user index
    item_ids: np.ndarray  # original id of each dense item index
    source: str = ""  # where it came from, e.g. "recbole-1.2.1 wheel" or a path
    checksum: str = field(default="")  # canonical content checksum, see canonical_checksum()

    @property
    def has_timestamps(self) -> bool:
        return self.interactions.timestamps is not None


def canonical_checksum(
    user_ids: np.ndarray, item_ids: np.ndarray, ratings: np.ndarray, timestamps: np.ndarray | None
) -> str:
    """sha256 of the interactions as sorted text lines `user\\titem\\trating\\ttimestamp`, in original ids.

    Independent of file layout, so the GroupLens archive and the RecBole copy prove to be the same data.
    """
    ts = timestamps if timestamps is not None else np.zeros(len(user_ids), dtype=np.int64)
    order = np.lexsort((ts, item_ids, user_ids))
    h = hashlib.sha256()
    lines = (
        f"{u}\t{i}\t{r:g}\t{t}\n"
        for u, i, r, t in zip(
            np.asarray(user_ids)[order].tolist(),
            np.asarray(item_ids)[order].tolist(),
            np.asarray(ratings, dtype=np.float64)[order].tolist(),
            np.asarray(ts)[order].tolist(),
        )
    )
    for line in lines:
        h.update(line.encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Split:
    """train / valid / test parts of one dataset under one protocol and seed.

    `cold_items` lists the items held out entirely (only for protocols that hold items out).
    """

    protocol: str
    seed: int
    dataset: Dataset
    train: Interactions
    valid: Interactions
    test: Interactions
    cold_items: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    def train_set(self) -> TrainSet:
        return TrainSet(self.train, self.n_users, self.n_items, self.dataset.item_text)

    def test_users(self) -> np.ndarray:
        return np.unique(self.test.users)


@dataclass(frozen=True)
class TrainSet:
    """What a recommender's fit() sees: training interactions, catalogue size and item text. Nothing else."""

    interactions: Interactions
    n_users: int
    n_items: int
    item_text: ItemText
    #: the items that exist at fit time (a replay's catalogue so far); None = the whole catalogue. Indices stay
    #: dense over the whole catalogue either way; a model that reads item text encodes only these.
    known_items: np.ndarray | None = None

    def matrix(self, binary: bool = True) -> sp.csr_matrix:
        return self.interactions.matrix(self.n_users, self.n_items, binary=binary)
