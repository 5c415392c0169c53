"""The roofline of one piece of work on this machine: which limit binds it, and how close it runs to it.

Plain functions over plain numbers and the machine record measured at run start (`peak_gemm`, `peak_int8`,
`peak_cuda`, `memory_bandwidth`, `cache_bandwidth`, `llc_bytes`); nothing here knows recommenders or results.

    arithmetic intensity  AI = FLOPs per request / bytes per request        (analytic counts)
    machine balance       B  = peak FLOP/s of the work's precision / bandwidth
    bound                 "compute" when AI >= B, else "bandwidth"
    attainable            min(peak, AI x bandwidth)                         FLOP/s (bytes/s when FLOPs = 0)
    pct_of_bound          achieved / attainable x 100, achieved = count per request x requests per second

The peak is the best rep of the run-start GEMM of the work's own precision (fp32 GEMM for fp32; the int8
runtime's own int8 GEMM for int8 work; fp16 GEMM on a GPU for half precision): on a shared machine the
median rep is depressed by other processes, and a work rate above a "peak" would mean the peak was
under-measured, not that the work beat the hardware. The bandwidth is the level the work's working set
lives in: the in-cache copy rate when it fits in half the last-level cache, else the large-array rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: precision -> how the machine record names its peak
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Roofline:
    flops_per_request: float
    bytes_per_request: float
    arithmetic_intensity: float  # FLOP per byte
    peak_flops_per_s: float | None
    peak_source: str
    bandwidth_bytes_per_s: float | None
    bandwidth_level: str  # "cache" | "memory"
    machine_balance: float | None  # FLOP per byte at which compute and bandwidth bind equally
    bound: str  # "compute" | "bandwidth"
    attainable_per_s: float  # FLOP/s for compute-bound work, bytes/s for bandwidth-bound work
    achieved_per_s: float  # same unit as attainable_per_s
    achieved_flops_per_s: float
    achieved_bytes_per_s: float
    pct_of_bound: float
    pct_of_peak: float | None  # achieved FLOP/s over the precision's peak (None without a peak)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def roofline(
    flops_per_request: float,
    bytes_per_request: float,
    requests_per_s: float,
    peak_flops_per_s: float | None,
    bandwidth_bytes_per_s: float | None,
    *,
    peak_source: str = "",
    bandwidth_level: str = "memory",
) -> Roofline | None:
    """Classify and score one piece of work; None when neither limit can be stated (no bytes, no peak)."""
    flops = max(float(flops_per_request or 0.0), 0.0)
    nbytes = max(float(bytes_per_request or 0.0), 0.0)
    if requests_per_s <= 0 or not math.isfinite(requests_per_s) or (flops == 0 and nbytes == 0):
        return None
    peak = peak_flops_per_s if peak_flops_per_s and peak_flops_per_s > 0 else None
    bw = bandwidth_bytes_per_s if bandwidth_bytes_per_s and bandwidth_bytes_per_s > 0 else None
    ai = flops / nbytes if nbytes > 0 else math.inf
    balance = peak / bw if peak and bw else None
    achieved_flops = flops * requests_per_s
    achieved_bytes = nbytes * requests_per_s
    if bw is not None and nbytes > 0 and (peak is None or flops == 0 or ai < peak / bw):
        bound, attainable, achieved = "bandwidth", bw, achieved_bytes
    elif peak is not None and flops > 0:
        bound, attainable, achieved = "compute", peak, achieved_flops
    else:
        return None
    return Roofline(
        flops_per_request=flops,
        bytes_per_request=nbytes,
        arithmetic_intensity=ai,
        peak_flops_per_s=peak,
        peak_source=peak_source,
        bandwidth_bytes_per_s=bw,
        bandwidth_level=bandwidth_level,
        machine_balance=balance,
        bound=bound,
        attainable_per_s=attainable,
        achieved_per_s=achieved,
        achieved_flops_per_s=achieved_flops,
        achieved_bytes_per_s=achieved_bytes,
        pct_of_bound=100.0 * achieved / attainable,
        pct_of_peak=100.0 * achieved_flops / peak if peak and flops > 0 else None,
    )


def peak_for(
    machine: dict[str, Any], precision: str, runtime: str = "", device: str = "cpu"
) -> tuple[float | None, str]:
    """(peak FLOP/s, where it came from) for work of `precision` run by `runtime` on `device`.

    Never falls back to another precision's peak: an int8 cell measured against the fp32 GEMM is how a
    utilisation of 114% happened. Missing peak -> (None, why).
    """
    if precision not in PRECISIONS:
        return None, f"unknown precision {precision!r}"
    if device != "cpu":
        half = machine.get("peak_cuda") or {}
        entry = half.get(precision) if precision in ("fp16", "fp32") else None
        if isinstance(entry, dict) and entry.get("gflops_max"):
            return float(entry["gflops_max"]) * 1e9, f"{precision} GEMM on {half.get('device', device)} (best rep)"
        return None, f"no {precision} peak measured on {device}"
    if precision == "fp32":
        gemm = machine.get("peak_gemm") or {}
        value = gemm.get("gflops_max") or gemm.get("gflops")
        return (
            (float(value) * 1e9, f"fp32 GEMM, {gemm.get('backend', '?')} (best rep)")
            if value
            else (None, "no fp32 GEMM peak measured")
        )
    if precision == "int8":
        int8 = (machine.get("peak_int8") or {}).get("by_runtime") or {}
        entry = int8.get(runtime) if runtime in int8 else None
        if isinstance(entry, dict) and entry.get("gops_max"):
            return float(entry["gops_max"]) * 1e9, f"int8 GEMM, {runtime}: {entry.get('kernel', '')} (best rep)"
        return None, f"no int8 peak measured for runtime {runtime or '?'}"
    return None, f"no {precision} peak on CPU (half precision is measured on GPUs only)"


def bandwidth_for(machine: dict[str, Any], working_set_bytes: float | None) -> tuple[float | None, str]:
    """(bytes/s, level) for work whose static working set is `working_set_bytes` (None: assume memory)."""
    memory = _gbs(machine.get("memory_bandwidth"))
    cache = _gbs(machine.get("cache_bandwidth"))
    llc = machine.get("llc_bytes")
    if cache and llc and working_set_bytes is not None and working_set_bytes <= llc / 2:
        return max(cache, memory or 0.0) * 1e9, "cache"
    return (memory * 1e9, "memory") if memory else (None, "memory")


def _gbs(record: Any) -> float | None:
    value = record.get("gbs") if isinstance(record, dict) else record
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def last_level_cache_bytes() -> int | None:
    """Size of CPU 0's largest cache level from sysfs (Linux); None where not readable."""
    best = None
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
            kind = (index / "type").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        size = _parse_size(text)
        if size and (best is None or size > best):
            best = size
    return best


def _parse_size(text: str) -> int | None:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper()
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        return None
