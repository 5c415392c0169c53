"""iALS (Hu, Koren & Volinsky 2008) through the `implicit` library's CPU solver."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.data.dataset import TrainSet
from bench.recommenders.base import ScoringRecommender
from bench.recommenders.classic._common import check_non_negative, check_positive_int, fitted
from bench.work import RequestWork


class IALS(ScoringRecommender):
    """Implicit-feedback ALS: confidence 1 + alpha * x_ui on the binary matrix, L2 `regularization`.

    `num_threads` defaults to 1: implicit's multi-threaded solver is not bit-reproducible, and the
    harness pins threads per cell anyway.

    Defaults tuned on ML-100K random-8-1-1 seed 0, valid part (NDCG@10 0.254 at factors 128, reg 10,
    alpha 1; reg 0.01-1 gave 0.17-0.22, alpha 5-20 was worse). Strong L2 matters more than width here. BLAS is held to one thread during fit (implicit's own advice:
    its solver parallelises over users, and a threaded BLAS underneath only oversubscribes the cores).
    """

    name = "ials"
    run_context_params = ("seed",)

    def __init__(
        self,
        factors: int = 128,
        regularization: float = 10.0,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        super().__init__()
        self.factors = check_positive_int("factors", factors, "IALS")
        self.regularization = check_non_negative("regularization", regularization, "IALS")
        self.alpha = check_non_negative("alpha", alpha, "IALS")
        self.iterations = check_positive_int("iterations", iterations, "IALS")
        self.seed = int(seed)
        self.num_threads = check_positive_int("num_threads", num_threads, "IALS")
        self.user_factors_: np.ndarray | None = None
        self.item_factors_: np.ndarray | None = None
        self._model: Any = None  # implicit's AlternatingLeastSquares once fitted (implicit has no type hints)

    def fit(self, train: TrainSet) -> IALS:
        from implicit.cpu.als import AlternatingLeastSquares  # imported here: loading `implicit` is slow
        from threadpoolctl import threadpool_limits  # a dependency of `implicit` itself

        self._remember_seen(train)
        with threadpool_limits(limits=1, user_api="blas"):  # held from construction: implicit checks it there
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                num_threads=self.num_threads,
                random_state=self.seed,
            )
            model.fit(self._seen, show_progress=False)
        self._model = model  # kept for fold_in (implicit's partial fit updates it in place)
        self._copy_factors()
        return self

    def _copy_factors(self) -> None:
        self.user_factors_ = np.ascontiguousarray(self._model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(self._model.item_factors, dtype=np.float32)

    def fold_in(self, train: TrainSet, users: np.ndarray, items: np.ndarray) -> IALS:
        """Absorb `train` (the fitted history plus new interactions) without a full refit.

        `implicit`'s partial fit: first each of `items` (new items) gets the least-squares item factor given
        the current user factors and its interactions in `train`; then each of `users` (those with new
        interactions, new users included) gets the least-squares user factor given the item factors. Every
        other factor stays as fitted. A user's fold-in is exactly one ALS half-step for that user.
        """
        fitted(self.user_factors_, "IALS")
        from threadpoolctl import threadpool_limits

        self._remember_seen(train)
        seen = fitted(self._seen, "IALS")
        items = np.asarray(items, dtype=np.int64)
        users = np.asarray(users, dtype=np.int64)
        with threadpool_limits(limits=1, user_api="blas"):
            if items.size:
                item_users = seen.T.tocsr()[items]
                self._model.partial_fit_items(items, item_users)
            if users.size:
                self._model.partial_fit_users(users, seen[users])
        self._copy_factors()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        user_factors, item_factors = self._fitted()
        return user_factors[users] @ item_factors.T

    def request_work(self, users: np.ndarray) -> RequestWork:
        """one user factor against every item factor: factors x n_items multiply-adds per user."""
        n_items, factors = fitted(self.item_factors_, "IALS").shape
        return RequestWork(n_requests=len(users), scoring_macs=len(users) * factors * n_items, kind="scores")

    def bytes_per_user(self, users: np.ndarray) -> float:
        """the item factor matrix read once, the user's factor, the score row."""
        item_factors = fitted(self.item_factors_, "IALS")
        return float(item_factors.nbytes + item_factors.itemsize * item_factors.shape[1]) + self._ranking_bytes()

    def batch_shared_bytes(self) -> float:
        """the item factors: one GEMM scores the whole batch against them"""
        return float(fitted(self.item_factors_, "IALS").nbytes)

    def footprint(self) -> int:
        """User and item factors. (Scoring needs no history: the user factor already summarises it.)"""
        if self.user_factors_ is None:
            return 0
        user_factors, item_factors = self._fitted()
        return int(user_factors.nbytes + item_factors.nbytes)

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        """(user factors, item factors), or the error saying fit comes first."""
        return fitted(self.user_factors_, "IALS"), fitted(self.item_factors_, "IALS")
