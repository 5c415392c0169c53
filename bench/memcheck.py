"""Will a recommender's fit hold in this machine's memory? An analytic pre-check before any work.

Some models need memory that grows faster than the data: EASE holds dense n_items x n_items matrices, so
100,000 items need hundreds of GiB. Started anyway, such a fit swaps or is killed by the kernel minutes in,
taking the cell's process (and sometimes its neighbours) with it. The cell calls `check_fit_memory` before
`fit`: a size that cannot fit fails at once with the figures, and the run goes on with the other cells.

    fit_memory_bytes(recommender, n_users, n_items, n_interactions, params=None, variant="fp32") -> int | None
    check_fit_memory(recommender, n_users, n_items, n_interactions, available_bytes=None, params=None,
                     variant="fp32")  raises FitMemoryError
Decoder LLMs (llm-decoder-rank) need their weights whatever the data: a 7B model in fp32 needs ~28 GiB.
"""

from __future__ import annotations

from collections.abc import Callable

import psutil

from bench.errors import BenchError
from bench.variants.registry import FP32, INT8

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
    "ease": (
        _ease,
        f"dense item x item Gram, inverse and weights, about {EASE_BYTES_PER_ITEM_PAIR:g} bytes x n_items^2",
    ),
}


#: recommenders that hold a decoder LLM: their need is the model's weights, whatever the data
DECODER_RECOMMENDERS = ("llm-decoder-rank",)
#: int8 (dynamic quantisation) builds the fp32 model first, then its quantised copy
INT8_BUILD_FACTOR = 1.3


def decoder_memory(params: dict, variant: str) -> tuple[int, str] | None:
    """(bytes, why) a decoder's weights need while built and held under `variant`; None for a model whose size
    is unknown here (a local directory is counted from its checkpoint header)."""
    from pathlib import Path

    from bench.recommenders.generative.archs import ARCHS, BYTES_PER_ELEMENT, check_variant

    model = str(params.get("model", "qwen2.5-0.5b"))
    check_variant(variant)
    if model in ARCHS:
        n = ARCHS[model].n_parameters()
    elif (Path(model).expanduser() / "config.json").is_file():
        from bench.models import count_parameters

        n = count_parameters(Path(model).expanduser())
    else:
        return None
    if variant == INT8:
        need = int(n * BYTES_PER_ELEMENT[FP32] * INT8_BUILD_FACTOR)
        return need, f"{n / 1e9:.2f}B parameters built in fp32 ({_gib(n * 4)}) and quantised to int8 beside it"
    return int(
        n * BYTES_PER_ELEMENT[variant]
    ), f"{n / 1e9:.2f}B parameters x {BYTES_PER_ELEMENT[variant]} bytes in {variant}: the weights alone"


def fit_memory_bytes(
    recommender: str, n_users: int, n_items: int, n_interactions: int, params: dict | None = None, variant: str = FP32
) -> int | None:
    """Estimated peak bytes of `recommender`'s fit on data of this size, or None when no bound is known."""
    if recommender in DECODER_RECOMMENDERS:
        found = decoder_memory(params or {}, variant)
        return None if found is None else found[0]
    entry = NEEDS.get(recommender)
    return None if entry is None else entry[0](int(n_users), int(n_items), int(n_interactions))


def available_memory_bytes() -> int:
    """What this process can still allocate: the kernel's MemAvailable, or the cgroup's limit if lower."""
    available = int(psutil.virtual_memory().available)
    for path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
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
    return f"{n / 1024**3:.1f} GiB"


def check_fit_memory(
    recommender: str,
    n_users: int,
    n_items: int,
    n_interactions: int,
    available_bytes: int | None = None,
    params: dict | None = None,
    variant: str = FP32,
) -> int | None:
    """Raise FitMemoryError (one line: need, available, what to do) when the fit cannot hold in memory.

    Returns the estimated need (None when unknown) so the caller can record it. `params` and `variant` size a
    decoder recommender's model.
    """
    need = fit_memory_bytes(recommender, n_users, n_items, n_interactions, params, variant)
    if need is None:
        return None
    available = available_memory_bytes() if available_bytes is None else int(available_bytes)
    if need > HEADROOM * available and recommender in DECODER_RECOMMENDERS:
        found = decoder_memory(params or {}, variant)  # not None: `need` came from it
        why = found[1] if found is not None else "estimated from the model's size"
        raise FitMemoryError(
            f"{recommender} cannot hold {(params or {}).get('model', 'its model')} in {variant} here: it needs "
            f"about {_gib(need)} ({why}) and {_gib(available)} is available; use a smaller model, bf16 or int8, "
            "or a machine with more memory"
        )
    if need > HEADROOM * available:
        why = NEEDS[recommender][1]
        raise FitMemoryError(
            f"{recommender} cannot fit {n_items:,} items here: it needs about {_gib(need)} ({why}) and "
            f"{_gib(available)} is available; use fewer items, a machine with more memory, or a sparse or "
            f"factor model (itemknn, ials)"
        )
    return need
