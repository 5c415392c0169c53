"""Two-tower strategies: the item cache is reused, new items are encoded from their text at once, and the user
vectors of changed profiles are re-encoded; optionally the towers are fine-tuned afresh every K windows.

Serving reads cached user vectors (a live system keeps them; the per-request cost of encoding a profile is
what the other scenarios measure), so an update's cost is the encoding it triggers:
- two-tower-incremental: after the initial fit (fine-tuned by default), each window encodes its new items
  and re-encodes the profiles of the users active in it; the encoder never changes;
- two-tower-finetune: the same between retrains; every `retrain_every` windows the towers are fine-tuned
  again on the whole history (from the pretrained encoder), which invalidates every cached vector: the
  whole catalogue and every profile are re-encoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.data.replay import Update
from bench.recommenders.base import Recommender, TopK, check_k, mask_seen, top_k
from bench.recommenders.classic._common import check_positive_int, fitted
from bench.recommenders.llm.two_tower import TwoTower
from bench.recommenders.online.base import Strategy, build_model
from bench.variants.registry import FP32

#: the initial model: MiniLM fine-tuned on the history (top two layers, then the projection), on a short budget
DEFAULT_PARAMS: dict[str, Any] = {"model": "minilm", "mode": "finetune", "train_budget_s": 20.0, "finetune_steps": 100}


class TwoTowerIncremental(Strategy):
    name = "two-tower-incremental"
    run_context_params = ("variant", "threads", "seed")
    family = "llm"
    model_key = "llm-two-tower"

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        retrain_every: int = 0,
        variant: str = FP32,
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.params = {**DEFAULT_PARAMS, **(params or {}), "variant": variant, "threads": threads, "seed": seed}
        self.retrain_every = int(retrain_every)
        model = build_model("llm-two-tower", self.params)
        if not isinstance(model, TwoTower):  # the strategy drives the two-tower model's incremental methods
            raise TypeError(f"{self.name} needs the llm-two-tower recommender, the registry built {type(model)}")
        self.model: TwoTower = model
        self.user_vectors: np.ndarray | None = None  # (n_users, d): zero until a user has a profile
        self._n_users = 0

    def score_model(self) -> Recommender:
        return self.model

    def start(self, train: TrainSet) -> None:
        self._n_users = train.n_users
        self.model.fit(train)
        self._set_catalogue(train)
        self.user_vectors = None
        self._encode_users(np.unique(train.interactions.users).astype(np.int64))

    def update(self, update: Update) -> str:
        if self.retrain_every and update.step % self.retrain_every == 0:
            self.start(update.history)
            return "fine-tuned; every item and profile re-encoded"
        self.model.add_items(update.window.new_items)
        self._set_catalogue(update.history)
        self.model.update_profiles(update.history)
        self._encode_users(update.window.changed_users)
        return "new items encoded, changed profiles re-encoded"

    def _encode_users(self, users: np.ndarray) -> None:
        if self.user_vectors is None:
            item_matrix = fitted(self.model.item_matrix, self.model.name)
            self.user_vectors = np.zeros((self._n_users, item_matrix.shape[1]), dtype=np.float32)
        if users.size:
            self.user_vectors[users] = self.model.encode_users(users)

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix) -> TopK:
        """Cached user vectors against the cached item matrix, over the catalogue."""
        users = np.asarray(users, dtype=np.int64)
        check_k(k, self.model.n_items)
        scores = fitted(self.user_vectors, self.name)[users] @ fitted(self.model.item_matrix, self.model.name).T
        mask_seen(scores, self._with_unknown(exclude, users), users)
        return top_k(users, scores, k)

    def footprint(self) -> int:
        cache = 0 if self.user_vectors is None else int(self.user_vectors.nbytes)
        return int(self.model.footprint()) + cache

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "retrain_every": self.retrain_every, "params": dict(self.params)}


class TwoTowerFinetune(TwoTowerIncremental):
    name = "two-tower-finetune"
    full_update = True

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        retrain_every: int = 5,
        variant: str = FP32,
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(params, check_positive_int("retrain_every", retrain_every, self.name), variant, threads, seed)
