"""pytest-benchmark suite: each classic recommender's `recommend` for a batch of users, k = 10.

Run and save:  pytest tests/benchmarks --benchmark-enable --benchmark-autosave
Compare:       pytest tests/benchmarks --benchmark-enable --benchmark-compare --benchmark-compare-fail=mean:10%
With benchmarks disabled (the default addopts) each case runs once as an ordinary test.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.recommenders.registry import REGISTRY, get
from tests.support.recommenders import toy_split

CLASSIC = sorted(name for name, e in REGISTRY.items() if e.family == "classic")
BATCH_USERS = 256
K = 10


@pytest.fixture(scope="module")
def split():
    # small and synthetic so the suite needs no download: 1,000 users, 500 items, 30 events each
    return toy_split(n_users=1000, n_items=500, per_user=30, seed=0)


@pytest.fixture(scope="module", params=CLASSIC)
def fitted(request, split):
    return get(request.param).build().fit(split.train_set())


def test_recommend_batch(benchmark, fitted, split):
    users = np.arange(BATCH_USERS, dtype=np.int64)
    benchmark.group = f"recommend batch={BATCH_USERS} k={K}"
    benchmark.extra_info.update({"recommender": fitted.name, "n_items": split.n_items, "k": K})
    top = benchmark(fitted.recommend, users, K)
    assert top.items.shape == (BATCH_USERS, K)
    seen = split.train_set().matrix()[users].toarray()
    assert not np.take_along_axis(seen, top.items, axis=1).any()
