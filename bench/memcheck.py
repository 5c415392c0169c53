"""Will a recommender's fit hold in this machine's memory? An analytic pre-check before any work.

Some models need memory that grows faster than the data: EASE holds dense n_items x n_items matrices, so
100,000 items need hundreds of GiB. Started anyway, such a fit swaps or is killed by the kernel minutes in,
taking the cell's process (and sometimes its neighbours) with it. The cell calls `check_fit_memory` before
`fit`: a size that cannot fit fails at once with the figures, and the run goes on with the other cells.

    fit_memory_bytes(recommender, n_users, n_items, n_interactions) -> int | None   (None: no known bound)
    check_fit_memory(recommender, n_users, n_items, n_interactions, available_bytes=None)  raises FitMemoryError
"""
from __future__ import annotations

from typing import Callable

import psutil

from bench.errors import BenchError

#: EASE's peak resident bytes per n_items^2 while fitting: the float32 Gram from the sparse product, its
#: float64 copy, the float64 inverse (LAPACK works on a copy plus an identity right-hand side), the float64
#: weights and their float32 copy. Measured here on synthetic data: 33.8 n^2 at 2k items, 32.3 n^2 at 4k
#: (RSS above the data, sampled at 10 ms).
EASE_BYTES_PER_ITEM_PAIR = 32.0
#: share of the available memory a fit may plan to use; the rest is left to the OS, the data and the sampler
HEADROOM = 0.9


class FitMemoryError(BenchError):
    """The fit would need more memory than the machine has available."""


def _ease(n_users: int, n_items: int, n_interactions: int) -> int:
    return int(EASE_BYTES_PER_ITEM_PAIR * float(n_items) ** 2)


#: recommender name -> bytes its fit needs; only models whose need can outgrow a machine are listed
#: (the sparse and factor models grow with the interactions and stay far below RAM at these sizes)
NEEDS: dict[str, tuple[Callable[[int, int, int], int], str]] = {
    "ease": (_ease, f"dense item x item Gram, inverse and weights, about {EASE_BYTES_PER_ITEM_PAIR:g} bytes "
                    "x n_items^2"),
}


def fit_memory_bytes(recommender: str, n_users: int, n_items: int, n_interactions: int) -> int | None:
    """Estimated peak bytes of `recommender`'s fit on data of this size, or None when no bound is known."""
    entry = NEEDS.get(recommender)
    return None if entry is None else entry[0](int(n_users), int(n_items), int(n_interactions))


def available_memory_bytes() -> int:
    """What this process can still allocate: the kernel's MemAvailable, or the cgroup's limit if lower."""
    available = int(psutil.virtual_memory().available)
    for path, usage_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(path) as f:
                limit = f.read().strip()
            with open(usage_path) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:  # "max" or a huge number: no limit
            available = min(available, max(int(limit) - usage, 0))
        break
    return available


def _gib(n: float) -> str:
    return f"{n / 1024 ** 3:.1f} GiB"


def check_fit_memory(recommender: str, n_users: int, n_items: int, n_interactions: int,
                     available_bytes: int | None = None) -> int | None:
    """Raise FitMemoryError (one line: need, available, what to do) when the fit cannot hold in memory.

    Returns the estimated need (None when unknown) so the caller can record it.
    """
    need = fit_memory_bytes(recommender, n_users, n_items, n_interactions)
    if need is None:
        return None
    available = available_memory_bytes() if available_bytes is None else int(available_bytes)
    if need > HEADROOM * available:
        why = NEEDS[recommender][1]
        raise FitMemoryError(
            f"{recommender} cannot fit {n_items:,} items here: it needs about {_gib(need)} ({why}) and "
            f"{_gib(available)} is available; use fewer items, a machine with more memory, or a sparse or "
            f"factor model (itemknn, ials)")
    return need
