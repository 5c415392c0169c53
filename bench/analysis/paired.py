"""One rule for every quality comparison between two cells: on the users both evaluated, paired.

Two cells' quality means are only comparable over the same users: a cell evaluated on a sample of 100 test
users and one evaluated on all 943 differ by sampling alone, whatever their models do. So every comparison
(headlines, findings, the frontier, the quality gate, `recbench compare`) goes through `compare_cells`:

- both cells kept per-user figures (bench.per_user): intersect their users; A's and B's means on those users,
  the paired difference A - B and the ratio A / B, each with a seeded bootstrap 95% interval over users
  (percentile method, users resampled with replacement, the same resample for A and B), and the n it rests on;
- either did not (results written before per-user figures were kept): the two means as recorded, labelled
  unpaired; they are still comparable when both cells evaluated every test user of the same split (the same
  users, only no interval), and not comparable when either was evaluated on a sample;
- cells on other data, another split or another split seed are never comparable.

Pure: results in, numbers out; formatting belongs to the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from bench import per_user

QUALITY = "ndcg@10"
N_BOOT = 2000
SEED = 0
#: the flag bench.cell puts on quality rows measured on a sample of the test users
SAMPLED_FLAG = "sampled users"


@dataclass(frozen=True)
class Comparison:
    """A against B on one metric. `a`, `b` are means over the shared users when `paired`, else as recorded."""

    metric: str
    a: float
    b: float
    n: int | None  # the users the comparison rests on; None when unpaired over different users
    n_a: int | None  # each cell's own evaluated users
    n_b: int | None
    paired: bool
    same_users: bool  # both cells evaluated exactly the same users
    diff_ci95: tuple[float, float] | None = None
    ratio_ci95: tuple[float, float] | None = None
    b_ci95: tuple[float, float] | None = None  # B's own mean on those users (is B clear of zero?)
    identical: bool = False  # every shared user has the same figure under A and B

    @property
    def diff(self) -> float:
        return self.a - self.b

    @property
    def ratio(self) -> float:
        return self.a / self.b if self.b else math.nan

    @property
    def comparable(self) -> bool:
        return (self.paired and bool(self.n)) or (not self.paired and self.same_users)

    @property
    def verdict(self) -> str:
        """better | worse | not distinguishable (paired, by the interval); unpaired (same users, no interval);
        not comparable (different users and nothing to pair them by)."""
        if not self.comparable:
            return "not comparable"
        if not self.paired or self.diff_ci95 is None:
            return "unpaired"
        low, high = self.diff_ci95
        return "better" if low > 0 else "worse" if high < 0 else "not distinguishable"

    def a_clearly_better(self) -> bool:
        """A beats B beyond the noise: the interval of A - B lies above 0 (paired), else A's mean > B's."""
        if self.paired and self.diff_ci95 is not None:
            return self.diff_ci95[0] > 0
        return self.a > self.b


@lru_cache(maxsize=4)
def _resample(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) user indices drawn with replacement; cached (a run compares most pairs over the same n users,
    ~7.5 MB each at 943 users), and every comparison over n users draws the same resamples."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=np.int32)


def _interval(x: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(x, [2.5, 97.5])
    return float(low), float(high)


def compare_arrays(
    metric: str,
    users_a: np.ndarray,
    a: np.ndarray,
    users_b: np.ndarray,
    b: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> Comparison:
    """A against B on the users both hold (ids ascending and unique in each), paired, with bootstrap intervals."""
    users_a, users_b = np.asarray(users_a), np.asarray(users_b)
    shared, ia, ib = np.intersect1d(users_a, users_b, assume_unique=True, return_indices=True)
    n = int(shared.size)
    same = n == users_a.size == users_b.size
    if n == 0:
        return Comparison(metric, math.nan, math.nan, 0, int(users_a.size), int(users_b.size), True, False)
    va, vb = np.asarray(a, dtype=np.float64)[ia], np.asarray(b, dtype=np.float64)[ib]
    idx = _resample(n, n_boot, seed)
    ma, mb = va[idx].mean(axis=1), vb[idx].mean(axis=1)
    ratio_ci = _interval(ma / mb) if np.all(mb > 0) else None
    return Comparison(
        metric,
        float(va.mean()),
        float(vb.mean()),
        n,
        int(users_a.size),
        int(users_b.size),
        True,
        same,
        diff_ci95=_interval(ma - mb),
        ratio_ci95=ratio_ci,
        b_ci95=_interval(mb),
        identical=bool(np.array_equal(va, vb)),
    )


def _finite(row) -> bool:
    return row is not None and isinstance(row.value, (int, float)) and math.isfinite(row.value)


def _sampled(row) -> bool:
    return SAMPLED_FLAG in (row.flag or "")


def _same_split(a, b) -> bool:
    """The same data, split protocol and split seed (where both record one)."""
    seed_a, seed_b = (a.provenance or {}).get("seed"), (b.provenance or {}).get("seed")
    return (a.dataset, a.split) == (b.dataset, b.split) and (seed_a is None or seed_b is None or seed_a == seed_b)


def _unpaired(metric: str, a, b, row_a, row_b) -> Comparison:
    """Means as recorded. The same users only when both cells evaluated the same users of the same data, split
    and seed: every test user, or (bench.cell draws its sample from the seed alone) samples of the same size.
    Then the means are comparable, only without an interval; otherwise they are not comparable."""
    same = _sampled(row_a) == _sampled(row_b) and row_a.n == row_b.n and _same_split(a, b)
    return Comparison(
        metric, float(row_a.value), float(row_b.value), row_a.n if same else None, row_a.n, row_b.n, False, same
    )


_CACHE: dict[tuple[int, int, str], tuple[Any, Any, Comparison | None]] = {}


def compare_cells(a: Any, b: Any, metric: str = QUALITY) -> Comparison | None:
    """Cell A against cell B (CellResults) on `metric`, paired where both kept per-user figures, else unpaired.

    None when either cell has no finite figure of the metric (no quality, cost-only, failed before evaluating).
    """
    key = (id(a), id(b), metric)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is a and hit[1] is b:
        return hit[2]
    result = _compare_cells(a, b, metric)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[key] = (a, b, result)  # the cells are kept in the entry, so their ids cannot be reused meanwhile
    return result


def _compare_cells(a: Any, b: Any, metric: str) -> Comparison | None:
    row_a, row_b = a.metric(metric), b.metric(metric)
    if not (_finite(row_a) and _finite(row_b)) or "cost-only" in (a.label, b.label):
        return None
    if not _same_split(a, b):  # user ids on other data or another split are other evaluations altogether
        return Comparison(metric, float(row_a.value), float(row_b.value), None, row_a.n, row_b.n, False, False)
    pa, pb = per_user.of_cell(a), per_user.of_cell(b)
    va = pa.metric(metric) if pa is not None else None
    vb = pb.metric(metric) if pb is not None else None
    if pa is None or pb is None or va is None or vb is None:
        return _unpaired(metric, a, b, row_a, row_b)
    return compare_arrays(metric, pa.users, va, pb.users, vb)


# ---------------------------------------------------------------- the quality-cost frontier


@dataclass(frozen=True)
class Frontier:
    """Indices into the points given: `on` the frontier (cheapest first); `beaten_by[i] = (j, comparison of i
    against j)` for a point matched or beaten by a cell j no dearer on the users they share; `left_out` for a
    point no cheaper cell could be compared with on the same users (unpaired over different samples)."""

    on: list[int]
    beaten_by: dict[int, tuple[int, Comparison]]
    left_out: list[int]


def frontier(cells: Sequence[Any], costs: Sequence[float], metric: str = QUALITY) -> Frontier:
    """A cell is on the frontier only if every cell no dearer than it that can be compared with it (shared
    users) is clearly worse on the users they share: the interval of the paired difference above 0. A cell
    that no cheaper cell can be compared with is left out (reported as such), not put on the frontier."""
    means = [c.metric(metric).value for c in cells]
    order = sorted(range(len(cells)), key=lambda i: (costs[i], -means[i]))
    on, beaten, left_out = [], {}, []
    for pos, i in enumerate(order):
        cheaper = sorted(order[:pos], key=lambda j: -means[j])  # the likeliest to match it first
        compared = False
        for j in cheaper:
            c = compare_cells(cells[i], cells[j], metric)
            if c is None or not c.comparable:
                continue
            compared = True
            if not c.a_clearly_better():
                beaten[i] = (j, c)
                break
        else:
            if compared or not cheaper:
                on.append(i)
            else:
                left_out.append(i)
    return Frontier(on, beaten, left_out)


# ---------------------------------------------------------------- the quality gate


#: the quality gate's share when a results file does not say which one its run used (Settings' default)
DEFAULT_QUALITY_GATE = 0.99


def gate_verdict(c: Comparison, share: float) -> str:
    """Variant (A) against its fp32 model (B), which must keep `share` of B's quality:

    - "not distinguishable" when B's own figure is not clear of zero (its interval reaches 0: a share of noise
      is not a share), or when the interval of A / B straddles `share`;
    - "passed" when the whole interval of A / B is at or above `share`, "failed" when it lies below.
    Unpaired (no per-user figures), the point ratio decides, as before intervals existed.
    """
    if not c.paired:
        return "passed" if c.ratio >= share else "failed"
    if c.b_ci95 is None or c.b_ci95[0] <= 0 or c.ratio_ci95 is None:
        return "not distinguishable"
    low, high = c.ratio_ci95
    if low >= share:
        return "passed"
    if high < share:
        return "failed"
    return "not distinguishable"
