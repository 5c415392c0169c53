"""The recommender protocol and a shared base for models that score the whole catalogue.

`recommenders/` knows nothing of measurement or reports: it fits, scores and ranks.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.errors import ConfigError
from bench.recommenders.context import RunContext, TakesRunContext
from bench.work import RequestWork

__all__ = [
    "Recommender",
    "ScoringRecommender",
    "TopK",
    "RunContext",
    "PER_REQUEST",
    "check_k",
    "mask_seen",
    "top_k",
    "top_k_indices",
]

#: the `load` of an extra measurement timed one request at a time, back to back: the cell files such figures
#: under the single-stream load (recommenders know no load by name)
PER_REQUEST = "per-request"


class TopK(NamedTuple):
    """Ranked lists for a batch of users: items[i, j] is user i's j-th best item (dense index).

    A NamedTuple: immutable like a frozen dataclass, but built in a fraction of its time, and one is built on
    every timed request."""

    users: np.ndarray  # (n,) int
    items: np.ndarray  # (n, k) int64
    scores: np.ndarray  # (n, k) float32


class Recommender(TakesRunContext, ABC):
    """fit(train) -> self; recommend(users, k) -> TopK with seen items excluded; footprint() -> bytes.

    Hyper-parameters go in __init__, work goes in fit (scikit-learn's convention). The cell builds one as
    `cls.from_context(params, RunContext(variant, device, threads, seed))`: a constructor that takes any of
    those four names them in `run_context_params` (bench.recommenders.context).

    Capabilities the cell reads, each with a default here (override what applies):
    `cost_only` (random weights: report cost, never quality), `gate_key()` (which cells are "the same model"
    for the quality gate), `stats` (one-time figures of fit, recorded as rows), `extras` (what the model
    records about itself), `extra_measurements(...)` (figures only the model can time), `request_work` (the
    analytic work of a batch of requests, which bench.measure.flops counts) and `bytes_per_user`.
    """

    name: str = "recommender"
    #: True when predict_rating is meaningful (the rating track: RMSE/MAE)
    predicts_ratings: bool = False
    #: one-time figures of fit (seconds, bytes, counts) the cell records as result rows; set in fit
    stats: Mapping[str, Any] = MappingProxyType({})
    #: harness probes (the `noop` recommender) rank nothing meaningful: the cell reports no quality for them
    is_probe: bool = False
    #: describe the work of at most this many (seeded) test users, for models whose description is costly
    work_sample_users: int | None = None

    @property
    def cost_only(self) -> bool:
        """True when the model runs random weights (cost measurement only): quality is never reported."""
        return False

    @property
    def extras(self) -> Mapping[str, Any]:
        """What the recommender records about itself (architecture, tokenizer), copied into the cell's extras."""
        return MappingProxyType({})

    def gate_key(self) -> str | None:
        """Identifies "the same model" for the quality gate across variants; None: not gated."""
        return None

    def extra_measurements(
        self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None
    ) -> list[dict[str, Any]]:
        """Figures only the recommender can time, from inside a call (e.g. a decoder's time to first token).

        Each dict is either timing samples, `{"metric": prefix, "samples_ms": [...], "load": ..., "unit_of_work":
        ...}` (the cell summarises them like every load), or one figure, `{"metric": name, "value": v, "unit":
        ..., "load": ..., "n": ..., "flag": ..., "label": ...}`; an analytic ratio of two works gives
        `"work_ratio": (RequestWork, RequestWork)` in place of `value` (the cell counts their FLOPs). `load`
        PER_REQUEST files a figure under the single-stream load. None by default."""
        return []

    def __init__(self) -> None:
        self._seen: sp.csr_matrix | None = None
        self.n_items = 0

    @abstractmethod
    def fit(self, train: TrainSet) -> Recommender: ...

    @abstractmethod
    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> TopK:
        """Top-k per user. `exclude` (users x items CSR) overrides the items seen in fit as the exclusion set."""

    def predict_rating(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} does not predict ratings")

    def get_params(self) -> dict[str, Any]:
        """The resolved hyper-parameters: each `__init__` argument's value as this object holds it (defaults
        filled in, values checked and converted), read from the attribute of the same name (scikit-learn's
        convention). Results record these, so a cell says which model it measured, not only what was asked."""
        params: dict[str, Any] = {}
        for name, p in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or not hasattr(self, name):
                continue
            value = getattr(self, name)
            params[name] = value.item() if isinstance(value, np.generic) else value
        return params

    @abstractmethod
    def footprint(self) -> int:
        """Bytes of the fitted model's static state (parameters, index, similarity matrix)."""

    def request_work(self, users: np.ndarray) -> RequestWork | None:
        """The analytic work of these users' requests (transformer passes with their real token counts, scoring
        multiply-adds, another model's share), which bench.measure.flops counts; None where no simple
        description applies. Masking and top-k are not counted."""
        return None

    def absorb_history(self, train: TrainSet) -> None:
        """Score from (and exclude) `train`'s interactions from now on, without refitting anything else.

        For models that score a user from their history (EASE, ItemKNN) this folds new users and new
        interactions in for free; the learned weights stay as fitted.
        """
        self._remember_seen(train)

    def bytes_per_user(self, users: np.ndarray) -> float | None:
        """Analytic bytes one request moves to and from memory to rank the catalogue for one of these users
        alone (mean over them): the model state its scoring reads, with no reuse across requests, plus the
        score row written and read back by masking and top-k. None where no simple count applies."""
        return None

    def batch_shared_bytes(self) -> float:
        """Of `bytes_per_user`, the model state a batched call reads once for all its requests (a dense matrix
        every request multiplies with, in one GEMM); 0 where each request reads its own share (sparse rows,
        neighbour lists)."""
        return 0.0

    def _ranking_bytes(self) -> float:
        """The float32 score row written by scoring and read back by masking and top-k."""
        return 2.0 * 4.0 * self.n_items

    def _remember_seen(self, train: TrainSet) -> None:
        self._seen = train.matrix(binary=True)
        self.n_items = train.n_items


class ScoringRecommender(Recommender):
    """A recommender that can score every item for a batch of users; ranking is shared here.

    Subclasses implement `score(users) -> (len(users), n_items) float32`, vectorised over the batch.
    """

    @abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray: ...

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> TopK:
        users = np.asarray(users, dtype=np.int64)
        check_k(k, self.n_items)
        scores = np.asarray(self.score(users), dtype=np.float32)
        seen = self._seen if exclude is None else exclude
        if seen is not None:
            mask_seen(scores, seen, users)
        return top_k(users, scores, k)


def check_k(k: int, n_items: int) -> None:
    if k <= 0 or k > n_items:
        raise ConfigError(f"k={k} is out of range: choose 1 <= k <= {n_items} (the catalogue size)")


def mask_seen(scores: np.ndarray, seen: sp.csr_matrix, users: np.ndarray) -> None:
    """Set the score of every excluded (user, item) to -inf, in place, without a Python loop over items."""
    rows = seen[users]
    r, c = rows.nonzero()
    scores[r, c] = -np.inf


def top_k(users: np.ndarray, scores: np.ndarray, k: int) -> TopK:
    """Exact top-k per row, best first; equal scores rank by lower item index (see `top_k_indices`)."""
    items = top_k_indices(scores, k)
    return TopK(users=users, items=items, scores=np.take_along_axis(scores, items, axis=1))


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) int64 column indices of each row's k largest scores, ordered by (-score, index).

    The order is a total one, so the first k of a top-(k+m) list are exactly the top-k list: a figure at @10
    never depends on which other cut-offs are evaluated. argpartition alone keeps an arbitrary subset of a
    tie group that straddles the k-th position; rows where that happens are resolved here by taking the
    group's lowest indices (vectorised over those rows only: ties at the boundary are rare in float scores).
    """
    n_rows, n = scores.shape
    k = min(k, n)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)  # the k-th largest value of each row
        at_least = scores >= kth[:, None]
        straddle = np.flatnonzero(at_least.sum(axis=1) > k)  # rows whose k-th value's tie group is cut
        if straddle.size:
            sub, th = scores[straddle], kth[straddle, None]
            above = sub > th
            need = k - above.sum(axis=1, keepdims=True)
            tie = sub == th
            keep = above | (tie & (np.cumsum(tie, axis=1) <= need))
            part[straddle] = np.nonzero(keep)[1].reshape(straddle.size, k)
    else:
        part = np.tile(np.arange(n), (n_rows, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)
