"""Pop: every user gets the most popular items they have not seen. The floor every model must clear."""

from __future__ import annotations

import numpy as np

from bench.data.dataset import TrainSet
from bench.recommenders.base import ScoringRecommender
from bench.recommenders.classic._common import fitted


class Pop(ScoringRecommender):
    """Scores an item by its number of training interactions (distinct users); ties go to the lower index."""

    name = "pop"

    def __init__(self) -> None:
        super().__init__()
        self.counts_: np.ndarray | None = None

    def fit(self, train: TrainSet) -> Pop:
        self._remember_seen(train)
        # distinct users per item (the binary matrix), so a repeated event does not count twice
        self.counts_ = np.asarray(fitted(self._seen, "Pop").sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        counts = fitted(self.counts_, "Pop")
        return np.broadcast_to(counts, (len(users), counts.shape[0])).copy()

    def bytes_per_user(self, users: np.ndarray) -> float:
        """The popularity vector copied into the score row: no arithmetic, all memory traffic."""
        return float(fitted(self.counts_, "Pop").nbytes) + self._ranking_bytes()

    def footprint(self) -> int:
        return 0 if self.counts_ is None else int(self.counts_.nbytes)
