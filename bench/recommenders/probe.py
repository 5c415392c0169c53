"""The harness probe: a recommender that does (almost) nothing, so its timings are the harness's own.

Production scenarios (quick, full) run it under the single-stream load: its p50 is what the harness adds
to every timed call, which the analysis sets beside every cell (harness overhead). It is a measurement
probe, not a test double, so it ships in the package; the test doubles live in tests/support.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.recommenders.base import Recommender, TopK, check_k


class NoOp(Recommender):
    """Does (almost) nothing: a well-formed TopK of items 0..k-1 with zero scores, for every user.

    Its single-stream p50 is what the harness adds to every timed call (clock reads, the serve closure, the
    call itself), so nothing else may be in it: the lists are allocated and k is checked once per k, outside
    the timed calls, and a call returns views of them.
    """

    name = "noop"
    is_probe = True

    def __init__(self) -> None:
        super().__init__()
        self._lists: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def fit(self, train: TrainSet) -> NoOp:
        self.n_items = train.n_items  # only what check_k needs; no seen matrix is built
        self._lists = {}
        return self

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> TopK:
        lists = self._lists.get((k, len(users)))
        if lists is None:  # first call for this (k, batch size): not the steady state the probe measures
            lists = self._allocate(k, len(users))
        return TopK(users, lists[0], lists[1])

    def _allocate(self, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        check_k(k, self.n_items)
        items = np.broadcast_to(np.arange(k, dtype=np.int64), (n, k)).copy()
        scores = np.zeros((n, k), np.float32)
        items.flags.writeable = False  # shared between calls: callers must not change them
        scores.flags.writeable = False
        self._lists[(k, n)] = (items, scores)
        return items, scores

    def footprint(self) -> int:
        return 0
