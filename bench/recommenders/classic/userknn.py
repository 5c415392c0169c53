"""UserKNN: user-user cosine similarity (the article's user similarity), k nearest users."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.recommenders.base import ScoringRecommender
from bench.recommenders.classic._common import check_positive_int, cosine_topk_rows, csr_nbytes, fitted
from bench.work import RequestWork


class UserKNN(ScoringRecommender):
    """score(u, i) = sum over u's k nearest users v of cos(u, v) * x[v, i].

    Cosine between users' binary interaction vectors. Dividing by the sum of similarities would not
    change one user's ranking, so it is left out. Default k = 50, tuned on ML-100K random-8-1-1 seed 0,
    valid part (NDCG@10: k 10 -> 0.201, 30 -> 0.220, 50 -> 0.230, 100 -> 0.228, 400 -> 0.214).
    """

    name = "userknn"

    def __init__(self, k: int = 50) -> None:
        super().__init__()
        self.k = check_positive_int("k", k, "UserKNN")
        self.neighbours_: sp.csr_matrix | None = None

    def fit(self, train: TrainSet) -> UserKNN:
        self._remember_seen(train)
        self.neighbours_ = cosine_topk_rows(fitted(self._seen, "UserKNN"), self.k)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        neighbours, seen = self._fitted()
        return (neighbours[users] @ seen).toarray().astype(np.float32, copy=False)

    def request_work(self, users: np.ndarray) -> RequestWork:
        """neighbour row x user-item matrix: one multiply-add per history item of every neighbour."""
        return RequestWork(n_requests=len(users), scoring_macs=float(self._neighbour_items(users)), kind="scores")

    def bytes_per_user(self, users: np.ndarray) -> float:
        """the neighbour row, every neighbour's history row (value + index), the score row."""
        neighbours, seen = self._fitted()
        nbrs = neighbours[np.asarray(users)]
        per_item = seen.data.itemsize + seen.indices.itemsize
        per_nbr = nbrs.data.itemsize + nbrs.indices.itemsize
        return (float(self._neighbour_items(users)) * per_item + nbrs.nnz * per_nbr) / max(
            len(users), 1
        ) + self._ranking_bytes()

    def _fitted(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(neighbour matrix, user-item history), or the error saying fit comes first."""
        return fitted(self.neighbours_, "UserKNN"), fitted(self._seen, "UserKNN")

    def _neighbour_items(self, users: np.ndarray) -> int:
        neighbours, seen = self._fitted()
        row_nnz = np.diff(seen.indptr)
        return int(row_nnz[neighbours[np.asarray(users)].indices].sum())

    def footprint(self) -> int:
        """The sparse neighbour matrix plus the user-item matrix the neighbours' items are read from."""
        if self.neighbours_ is None:
            return 0
        return csr_nbytes(self.neighbours_) + csr_nbytes(self._seen)
