"""CF strategies: stale (never update), full refit each window, and the incremental ones.

- stale: the initial fit serves every window (the floor);
- refit: the model is fitted afresh on the whole history after every window;
- ials-foldin: implicit's partial fit: new items, then changed users, least-squares against the fixed other side;
- itemknn-incremental: the item co-occurrence X^T X updated from the changed users' rows only, then the k
  neighbours re-pruned from it (no pass over X);
- ease-periodic: new users and new interactions fold in for free (EASE scores a user from their history row);
  the item-item weights, and so new items, wait for a refit every `refit_every` windows.
"""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.data.replay import Update
from bench.errors import ConfigError
from bench.recommenders.base import Recommender
from bench.recommenders.classic._common import check_positive_int, fitted
from bench.recommenders.classic.ease import EASE
from bench.recommenders.classic.ials import IALS
from bench.recommenders.classic.itemknn import ItemKNN
from bench.recommenders.online.base import Strategy, build_model

REFIT_MODELS = ("ease", "ials", "itemknn")


class _Wrapped(Strategy):
    """A registry recommender (`model`, built with `params`) whose update is the subclass's."""

    def __init__(self, model: str = "ease", params: dict[str, Any] | None = None) -> None:
        super().__init__()
        if model not in REFIT_MODELS:
            raise ConfigError(f"{self.name}: model={model!r} is not one of {', '.join(REFIT_MODELS)}")
        self.model_key = model
        self.model = build_model(model, params)

    def score_model(self) -> Recommender:
        return self.model

    def start(self, train: TrainSet) -> None:
        self.model.fit(train)
        self._set_catalogue(train)


class Stale(_Wrapped):
    """Fitted once before the replay; never updated."""

    name = "stale"
    updates_history = False

    def update(self, update: Update) -> str:
        return "none"


class Refit(_Wrapped):
    """Fitted afresh on the whole history after every window."""

    name = "refit"
    full_update = True

    def update(self, update: Update) -> str:
        self.start(update.history)
        return "refit"


class IALSFoldIn(_Wrapped):
    """iALS with new items and changed users folded in (implicit's partial_fit_items / partial_fit_users)."""

    name = "ials-foldin"
    model: IALS

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__("ials", params)

    def update(self, update: Update) -> str:
        self.model.fold_in(update.history, update.window.changed_users, update.window.new_items)
        self._set_catalogue(update.history)
        return "fold-in"


class ItemKNNIncremental(_Wrapped):
    """ItemKNN whose co-occurrence matrix G = X^T X is updated from the changed users' rows:
    G += X_new[U]^T X_new[U] - X_old[U]^T X_old[U]; the cosine k-neighbours are then re-pruned from G."""

    name = "itemknn-incremental"
    model: ItemKNN

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__("itemknn", params)
        self.gram: sp.csr_matrix | None = None
        self._x: sp.csr_matrix | None = None

    def start(self, train: TrainSet) -> None:
        self._x = train.matrix(binary=True)
        self.gram = sp.csr_matrix(self._x.T @ self._x)
        self.model.fit_from_gram(train, self.gram)
        self._set_catalogue(train)

    def update(self, update: Update) -> str:
        users = update.window.changed_users
        x_new = update.history.matrix(binary=True)
        old, new = fitted(self._x, self.name)[users], x_new[users]
        self.gram = sp.csr_matrix(fitted(self.gram, self.name) + new.T @ new - old.T @ old)
        self.gram.eliminate_zeros()
        self._x = x_new
        self.model.fit_from_gram(update.history, self.gram)
        self._set_catalogue(update.history)
        return "incremental"

    def footprint(self) -> int:
        from bench.recommenders.classic._common import csr_nbytes

        return int(self.model.footprint()) + csr_nbytes(self.gram)


class EASEPeriodic(_Wrapped):
    """EASE: users fold in for free every window; the item-item weights are refit every `refit_every` windows."""

    name = "ease-periodic"
    model: EASE

    def __init__(self, refit_every: int = 4, params: dict[str, Any] | None = None) -> None:
        super().__init__("ease", params)
        self.refit_every = check_positive_int("refit_every", refit_every, self.name)

    def update(self, update: Update) -> str:
        if update.step % self.refit_every == 0:
            self.start(update.history)
            return "refit"
        self.model.absorb_history(update.history)  # the catalogue stays: new items have no weights yet
        return "users folded in"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "refit_every": self.refit_every}
