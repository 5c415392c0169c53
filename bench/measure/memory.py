"""Memory: resident-set sampling from outside the timed code, CUDA and NVML device memory, object footprints.

`RssSampler` polls a process's RSS (psutil, by pid) from a background thread. Run it in the PARENT watching
a cell's child process (no interference with the child at all), or in a thread watching its own process
(the thread wakes every interval, briefly takes the GIL, and never runs inside a timed call's code path).
Beside the sampled peak it reads the kernel's own high-water mark (VmHWM, Linux), reset at start when the
kernel allows it, which also catches spikes shorter than the sampling interval.

Nothing here imports torch: CUDA figures are read only when the process has already imported torch
(a process that never imported torch has no torch CUDA memory to report).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.errors import BenchError
from bench.measure import _checks


@dataclass
class RssReport:
    pid: int
    baseline_rss_bytes: int  # RSS when sampling started (the cell's own baseline)
    peak_rss_total_bytes: int  # highest RSS sampled
    peak_rss_bytes: int  # peak above baseline: the figure results report as peak_rss_bytes
    end_rss_bytes: int
    n_samples: int
    interval_target_s: float
    interval_achieved_s: float  # mean gap between samples
    max_gap_s: float  # longest gap between samples (a spike shorter than this may be missed)
    duration_s: float
    #: kernel high-water mark (VmHWM) above baseline, when readable; exact, not sampled
    hwm_peak_rss_bytes: int | None = None
    #: True when VmHWM was reset at start, so it covers only this window (else it covers the process life)
    hwm_reset: bool = False
    method: str = "psutil memory_info().rss polled from a background thread"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_vmhwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_vmhwm(pid: int) -> bool:
    """Writing 5 to /proc/PID/clear_refs resets the peak RSS (Linux >= 4.0); harmless otherwise."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Sample a process's RSS every `interval_s` (default 5 ms) in a daemon thread.

    with RssSampler(pid) as s:      # pid=None: this process
        ...work...
    report = s.report()
    """

    def __init__(self, pid: int | None = None, interval_s: float = 0.005) -> None:
        self.interval_s = _checks.positive("interval_s", interval_s, "sample every few milliseconds, e.g. 0.005")
        if self.interval_s > 0.010:
            raise BenchError(
                f"RSS sampling interval {interval_s:g} s is coarser than 10 ms; the measurement rules "
                "require 10 ms or finer, pass interval_s <= 0.01"
            )
        self.pid = os.getpid() if pid is None else int(pid)
        try:
            self._proc = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            raise BenchError(
                f"no process with pid {self.pid} to watch; start the RSS sampler after the process"
            ) from None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._report: RssReport | None = None
        self._lock = threading.Lock()

    def _rss(self) -> int | None:
        try:
            return int(self._proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def start(self) -> RssSampler:
        if self._thread is not None:
            raise BenchError("RssSampler already started; create a new sampler per measurement window")
        self._hwm_reset = _reset_vmhwm(self.pid)
        first = self._rss()
        if first is None:
            raise BenchError(
                f"cannot read the RSS of pid {self.pid} (gone or access denied); watch a live process you own"
            )
        self._baseline = self._peak = self._last = first
        self._n = 1
        self._max_gap_ns = 0
        self._t_start = self._t_last = time.perf_counter_ns()
        self._thread = threading.Thread(target=self._run, name="recbench-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = self.interval_s
        while not self._stop.wait(interval):
            rss = self._rss()
            t = time.perf_counter_ns()
            if rss is None:  # the watched process ended: keep what was seen
                break
            with self._lock:
                self._max_gap_ns = max(self._max_gap_ns, t - self._t_last)
                self._t_last = t
                self._n += 1
                self._last = rss
                if rss > self._peak:
                    self._peak = rss

    def sample_now(self) -> None:
        """Take one extra sample from the calling thread (e.g. right after a phase ends)."""
        rss = self._rss()
        if rss is not None:
            with self._lock:
                self._n += 1
                self._last = rss
                self._peak = max(self._peak, rss)

    def stop(self) -> RssReport:
        if self._thread is None:
            raise BenchError("RssSampler.stop() before start(); use it as a context manager")
        if self._report is not None:
            return self._report
        self.sample_now()
        self._stop.set()
        self._thread.join()
        t_end = time.perf_counter_ns()
        duration_s = (t_end - self._t_start) / 1e9
        hwm = _read_vmhwm(self.pid)
        hwm_peak = None if hwm is None else max(hwm - self._baseline, 0)
        self._report = RssReport(
            pid=self.pid,
            baseline_rss_bytes=self._baseline,
            peak_rss_total_bytes=self._peak,
            peak_rss_bytes=max(self._peak - self._baseline, 0),
            end_rss_bytes=self._last,
            n_samples=self._n,
            interval_target_s=self.interval_s,
            interval_achieved_s=duration_s / max(self._n - 1, 1),
            max_gap_s=max(self._max_gap_ns / 1e9, 0.0),
            duration_s=duration_s,
            hwm_peak_rss_bytes=hwm_peak,
            hwm_reset=self._hwm_reset,
        )
        return self._report

    def report(self) -> RssReport:
        if self._report is None:
            raise BenchError("RssSampler.report() before stop(); leave the `with` block first")
        return self._report

    def __enter__(self) -> RssSampler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---------------------------------------------------------------- CUDA / NVML


def _torch_if_imported() -> Any:
    return sys.modules.get("torch")


def cuda_memory(device: Any = None) -> dict[str, Any]:
    """torch's CUDA allocator peaks since the last torch.cuda.reset_peak_memory_stats (or the process start),
    or {"available": False, "reason": ...}."""
    torch = _torch_if_imported()
    if torch is None:
        return {"available": False, "reason": "torch not imported in this process"}
    if not torch.cuda.is_available():
        return {"available": False, "reason": "torch.cuda.is_available() is False"}
    return {
        "available": True,
        "device": str(torch.cuda.get_device_name(device)),
        "max_memory_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
        "max_memory_reserved_bytes": int(torch.cuda.max_memory_reserved(device)),
        "method": "torch.cuda.max_memory_allocated / max_memory_reserved",
    }


def nvml_device_memory(index: int = 0) -> dict[str, Any]:
    """Device memory as NVML sees it (all processes on the GPU), or {"available": False, "reason": ...}.

    Needs the `nvidia-ml-py` package (module `pynvml`); absent here, this reports why and does nothing.
    """
    try:
        import pynvml  # noqa: PLC0415 - optional
    except ImportError:
        return {"available": False, "reason": "pynvml not importable (pip install nvidia-ml-py)"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return {"available": False, "reason": f"NVML init failed: {exc}"}
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        return {
            "available": True,
            "index": index,
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "used_bytes": int(info.used),
            "total_bytes": int(info.total),
            "method": "NVML nvmlDeviceGetMemoryInfo (whole device, all processes)",
        }
    except Exception as exc:  # noqa: BLE001 - any NVML error: reported as unavailable, with why
        return {"available": False, "reason": f"NVML query failed: {exc}"}
    finally:
        with contextlib.suppress(Exception):  # shutting NVML down is best effort
            pynvml.nvmlShutdown()


# ---------------------------------------------------------------- static footprints


def object_nbytes(obj: Any) -> int:
    """Bytes held by the arrays inside `obj`: numpy arrays, scipy sparse matrices, torch tensors and
    modules (parameters + buffers), recursively through dicts, lists, tuples, sets and object attributes.

    Shared memory is counted once: a numpy view counts its base array (what it keeps alive), tensors are
    deduplicated by storage. Python object overhead and non-array attributes are not counted. Neither
    scipy nor torch is imported: objects are recognised by their type's module.
    """
    seen: set[Any] = set()
    return _nbytes(obj, seen, depth=0)


def _nbytes(obj: Any, seen: set[Any], depth: int) -> int:
    if obj is None or depth > 50 or isinstance(obj, (int, float, complex, bool, str)):
        return 0
    import numpy as np  # noqa: PLC0415 - already imported by any caller that holds arrays

    if isinstance(obj, np.ndarray):
        root = obj
        while isinstance(root.base, np.ndarray):
            root = root.base
        if id(root) in seen:
            return 0
        seen.add(id(root))
        return int(root.nbytes)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        return len(obj) if not isinstance(obj, memoryview) else obj.nbytes
    module = type(obj).__module__ or ""
    if module.startswith("scipy.sparse"):
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        total = 0
        for attr in ("data", "indices", "indptr", "row", "col", "offsets"):
            part = getattr(obj, attr, None)
            if isinstance(part, np.ndarray):
                total += _nbytes(part, seen, depth + 1)
        if total == 0 and hasattr(obj, "tocsr"):  # dok / lil: measure their CSR equivalent
            total = _nbytes(obj.tocsr(), seen, depth + 1)
        return total
    if module.startswith("torch"):
        torch = _torch_if_imported()
        if torch is not None:
            if isinstance(obj, torch.Tensor):
                try:
                    storage = obj.untyped_storage()
                    key, size = storage.data_ptr(), storage.nbytes()
                except (RuntimeError, NotImplementedError):  # meta / sparse tensors
                    key, size = id(obj), obj.numel() * obj.element_size()
                if ("storage", key) in seen:  # views and tied weights share one storage
                    return 0
                seen.add(("storage", key))
                return int(size)
            if isinstance(obj, torch.nn.Module):
                tensors = list(obj.parameters()) + list(obj.buffers())
                return sum(_nbytes(t, seen, depth + 1) for t in tensors)
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, dict):
        return sum(_nbytes(k, seen, depth + 1) + _nbytes(v, seen, depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sum(_nbytes(v, seen, depth + 1) for v in obj)
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        return sum(_nbytes(v, seen, depth + 1) for v in attrs.values())
    slots = getattr(type(obj), "__slots__", ())
    if slots:
        return sum(
            _nbytes(getattr(obj, s, None), seen, depth + 1) for s in ((slots,) if isinstance(slots, str) else slots)
        )
    return 0


def file_nbytes(*paths: str | Path) -> int:
    """Bytes on disk of model files (e.g. an exported .onnx and its external-data file); directories summed."""
    total = 0
    for p in map(Path, paths):
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            total += p.stat().st_size
        else:
            raise BenchError(f"{p}: no such file to measure; pass the path of the exported model file")
    return total
