"""Thread pinning for a cell, recorded for provenance.

THE RUNNER MUST CALL `pin_threads(n)` FIRST THING IN EACH CELL PROCESS, before numpy, scipy, torch or
onnxruntime are imported: OpenMP and most BLAS builds read OMP_NUM_THREADS / OPENBLAS_NUM_THREADS /
MKL_NUM_THREADS once, when they load. Pools already loaded are capped through threadpoolctl (BLAS,
OpenMP) and torch.set_num_threads, so a late call still works where those APIs reach, and the record says
which libraries were already loaded. ONNX Runtime has no global setting: its intra-op pool is per session,
so variants must build their SessionOptions with `ort_session_options(n)` (or read `ort_intra_op_threads`
from the record).

torch is never imported by this module unless asked (`torch=True`): importing it costs seconds and
hundreds of MB of RSS, which a classic-CF cell must not pay.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from bench.measure import _checks

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
#: keeps the threadpoolctl limiter alive for the process lifetime
_limiter: Any = None


def pin_threads(n: int, *, torch: bool | None = None, interop: int | None = 1) -> dict[str, Any]:
    """Pin every thread pool this process can reach to `n` threads and return what was set.

    torch: None -> configure torch only if this process has already imported it; True -> import and
        configure it; False -> leave it alone (the OMP_NUM_THREADS set here still applies when it loads).
    interop: torch's inter-op pool size (1: a cell runs one graph at a time); None leaves it.
    """
    global _limiter
    n = _checks.count("threads", n, 1, "use 1 or more threads per cell")
    record: dict[str, Any] = {
        "threads": n,
        "logical_cpus": os.cpu_count(),
        "already_imported": sorted(m for m in ("numpy", "scipy", "torch", "onnxruntime") if m in sys.modules),
    }
    try:
        record["affinity_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        record["affinity_cpus"] = None
    if record["affinity_cpus"] and n > record["affinity_cpus"]:
        record["warning"] = f"{n} threads on {record['affinity_cpus']} usable CPUs: threads will time-share"
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    record["env"] = {var: str(n) for var in THREAD_ENV_VARS}

    try:
        import threadpoolctl  # noqa: PLC0415 - optional (ships with scikit-learn)
    except ImportError:
        record["threadpoolctl"] = "not installed: only environment variables set"
    else:
        _limiter = threadpoolctl.threadpool_limits(limits=n)
        record["threadpoolctl"] = [
            {"api": p.get("internal_api"), "prefix": p.get("prefix"), "num_threads": p.get("num_threads")}
            for p in threadpoolctl.threadpool_info()
        ]

    use_torch = "torch" in sys.modules if torch is None else torch
    _torch: Any = None
    if use_torch:
        try:
            import torch as _torch  # noqa: PLC0415
        except ImportError:
            record["torch_num_threads"] = "torch not installed"
    if _torch is not None:
        _torch.set_num_threads(n)
        record["torch_num_threads"] = _torch.get_num_threads()
        if interop is not None:
            try:
                _torch.set_num_interop_threads(interop)
            except RuntimeError as exc:  # only allowed before any inter-op work started
                record["torch_interop_note"] = f"not changed: {exc}".splitlines()[0]
            record["torch_num_interop_threads"] = _torch.get_num_interop_threads()
    elif not use_torch:
        record["torch_num_threads"] = "not imported (OMP_NUM_THREADS applies when it is)"
    record["ort_intra_op_threads"] = n
    return record


def ort_session_options(n: int) -> Any:
    """onnxruntime.SessionOptions with intra-op threads = n and inter-op = 1 (sequential execution)."""
    import onnxruntime as ort  # noqa: PLC0415

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = _checks.count("threads", n, 1)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return opts


@contextlib.contextmanager
def blas_limits(n: int | None) -> Iterator[None]:
    """Temporarily cap BLAS/OpenMP pools to n threads (None: leave them); no-op without threadpoolctl."""
    if n is None:
        yield
        return
    try:
        import threadpoolctl  # noqa: PLC0415
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=n):
        yield
