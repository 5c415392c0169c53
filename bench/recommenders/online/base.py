"""The strategy protocol: start on the initial history, absorb one window per update, recommend in between.

A strategy's catalogue is the items its model can recommend now: an item exists once the model has absorbed an
interaction with it (a two-tower encodes its text then; EASE between refits has no weights for it yet).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.data.replay import Update
from bench.recommenders.base import Recommender, TopK
from bench.recommenders.context import TakesRunContext


class Strategy(TakesRunContext, ABC):
    name = "strategy"
    #: "classic" or "llm", as in the recommender registry
    family = "classic"
    #: True when update() rebuilds the model from the whole history: the reference its model's other
    #: strategies are compared with
    full_update = False
    #: False when update() leaves user histories as they were (stale): nothing new is ever reflected
    updates_history = True

    def __init__(self) -> None:
        self.catalogue: np.ndarray | None = None  # (n_items,) bool

    #: the model kept fresh ("ease", "ials", "itemknn", "llm-two-tower"): comparisons pair strategies of one model
    model_key = ""

    @abstractmethod
    def start(self, train: TrainSet) -> None:
        """The initial fit on everything before the replay's first window."""

    @abstractmethod
    def update(self, update: Update) -> str:
        """Absorb one window; returns what it did ("refit", "fold-in", "incremental", "none", ...)."""

    @abstractmethod
    def score_model(self) -> Recommender:
        """The recommender that ranks now (masking and top-k are shared, in recommend)."""

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix) -> TopK:
        """Top-k over the strategy's catalogue, `exclude` (users x items) and unknown items left out."""
        users = np.asarray(users, dtype=np.int64)
        return self.score_model().recommend(users, k, exclude=self._with_unknown(exclude, users))

    def footprint(self) -> int:
        return int(self.score_model().footprint())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model_key,
            "family": self.family,
            "full_update": self.full_update,
            "updates_history": self.updates_history,
        }

    # ------------------------------------------------------------------------------------------ helpers
    def _set_catalogue(self, train: TrainSet) -> None:
        known = np.arange(train.n_items) if train.known_items is None else np.asarray(train.known_items, np.int64)
        self.catalogue = np.zeros(train.n_items, dtype=bool)
        self.catalogue[known] = True

    def _with_unknown(self, exclude: sp.csr_matrix, users: np.ndarray) -> sp.csr_matrix:
        """`exclude` plus, for `users`, every item outside the catalogue (an item that does not exist yet for
        this model is never recommended)."""
        if self.catalogue is None or self.catalogue.all():
            return exclude
        unknown = np.flatnonzero(~self.catalogue)
        rows = np.repeat(users, unknown.size)
        cols = np.tile(unknown, users.size)
        extra = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=exclude.shape)
        out = sp.csr_matrix(exclude + extra)
        out.data[:] = 1.0
        return out


def build_model(model: str, params: dict[str, Any] | None) -> Recommender:
    """A recommender from the registry, by name (the strategies reuse them; nothing is copied)."""
    from bench.recommenders import registry

    return registry.get(model).build(**(params or {}))
