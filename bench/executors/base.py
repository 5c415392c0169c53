"""What every executor shares: the task it runs, the interface the runner sees, and the work done on a node.

The runner hands an executor `CellTask`s and reads back `CellResult`s as they finish; it never learns where
they ran. An executor records that itself, in each cell's provenance: `node` (the name of the machine the
cell ran on), `executor` (its name, how many timed cells it allowed per node) and the cell process's own
start and end times, so a reader can check that no two timed cells shared a node.
"""

from __future__ import annotations

import os
import pickle
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from bench.errors import BenchError
from bench.results import CellResult
from bench.scenario import CellSpec, Settings

Listener = Callable[[str, CellSpec, str], None]  # (event, cell, message) for progress display


@dataclass(frozen=True)
class CellTask:
    """One cell to measure, with what the cell must check on whatever node runs it."""

    #: position in the scenario: the runner keeps results in scenario order whatever order they finish in
    index: int
    spec: CellSpec
    settings: Settings
    #: the driver's checksum of spec.dataset; a node whose copy differs fails the cell with the reason
    data_checksum: str | None = None
    #: the scenario's plugin modules (bench.plugins): imported in the cell's process before the cell runs,
    #: since a fresh process holds none of the driver's registrations
    plugins: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[Any, tuple[tuple[str, ...], bytes]]:
        # the settings may hold a plugin's classes (a load's config): the receiving process imports the plugins
        # before it reads the rest, or a plugin loaded from a .py path could not be found there by name
        rest = pickle.dumps((self.index, self.spec, self.settings, self.data_checksum))
        return _rebuild_task, (self.plugins, rest)


def _rebuild_task(plugins: tuple[str, ...], rest: bytes) -> CellTask:
    from bench import plugins as plugin_modules

    plugin_modules.load(plugins)
    index, spec, settings, data_checksum = pickle.loads(rest)
    return CellTask(index, spec, settings, data_checksum, plugins=plugins)


class Executor(Protocol):
    """Where cells run. Used as: start -> submit* -> completed (until every submitted task is back) -> shutdown."""

    name: str

    def start(self, settings: Settings, measure_peaks: bool, listener: Listener | None = None) -> dict[str, dict]:
        """Get ready to run cells; return {node name: node record} for every node cells may run on.

        A node record holds `machine` (bench.measure.provenance.machine_info of that node) and, with
        measure_peaks, the node's own `peak_gemm` and `memory_bandwidth`, measured while no cell runs there.
        """

    def submit(self, task: CellTask) -> None:
        """Queue a cell; it runs when the executor's isolation rule allows."""

    def completed(self) -> Iterator[tuple[CellTask, CellResult]]:
        """Yield (task, result) for every submitted task as it finishes; a cell that could not run is a failed
        result with the reason, never an exception."""

    def provenance(self) -> dict[str, Any]:
        """What a run's provenance says about where its cells ran (executor name, address, cells per node)."""

    def shutdown(self) -> None:
        """Release every process and connection the executor holds; safe to call twice."""


def failed_result(
    spec: CellSpec, reason: str, elapsed_s: float | None = None, traceback_text: str | None = None
) -> CellResult:
    cell = CellResult(
        cell=spec.name,
        dataset=spec.dataset,
        split=spec.split,
        recommender=spec.recommender,
        variant=spec.variant,
        device=spec.device,
        status="failed",
        error=reason,
        params=dict(spec.params),
    )
    if elapsed_s is not None:
        cell.extras["cell_wall_s"] = elapsed_s
    if traceback_text:
        cell.extras["traceback"] = traceback_text
    return cell


def execute_cell(task: CellTask, progress: Callable[[str], None]) -> tuple[str, Any]:
    """Measure one cell in *this* process, which must be fresh: ("result", CellResult) or ("error", details).

    Threads are pinned before numpy or torch is imported, so every library starts with the right pool.
    The process's start and end times (Unix seconds) travel with either outcome: they are what proves
    that timed cells on one node did not overlap.
    """
    started = time.time()
    doing = ["starting"]

    def announce(msg: str) -> None:
        doing[0] = msg  # what the cell was doing, should it run out of memory
        progress(msg)

    try:
        from bench.measure.threads import pin_threads

        pinned = pin_threads(task.settings.threads)
        from bench import plugins

        plugins.load(task.plugins)
        from bench.cell import run_cell

        result = run_cell(
            task.spec, task.settings, progress=announce, pinned=pinned, expected_checksum=task.data_checksum
        )
        stamp_times(result, started, time.time())
        return "result", result
    except BaseException as exc:  # noqa: BLE001 - report everything, including MemoryError and KeyboardInterrupt
        if isinstance(exc, BenchError):
            reason = str(exc)
        elif isinstance(exc, MemoryError):
            reason = out_of_memory(exc, doing[0])
        else:
            reason = f"{exc.__class__.__name__}: {exc}"
        return "error", {
            "reason": reason,
            "traceback": traceback.format_exc(limit=8),
            "started_unix_s": started,
            "ended_unix_s": time.time(),
        }


def out_of_memory(exc: MemoryError, doing: str) -> str:
    """What the cell was doing, what it asked for (numpy says; plain Python does not) and what was free."""
    asked = str(exc).strip() or "the size of the failed allocation was not reported"
    try:
        import psutil

        free = (
            f"; {psutil.virtual_memory().available / 2**30:.1f} GiB was available, the cell held "
            f"{psutil.Process().memory_info().rss / 2**30:.1f} GiB"
        )
    except Exception:  # noqa: BLE001 - the message must come out even if psutil cannot
        free = ""
    return (
        f"out of memory while {doing} ({asked}{free}): use a smaller dataset or model, fewer or smaller "
        "batch sizes, or a machine with more memory"
    )


def stamp_times(result: CellResult, started_unix_s: float, ended_unix_s: float) -> None:
    result.provenance["cell_started_unix_s"] = started_unix_s
    result.provenance["cell_ended_unix_s"] = ended_unix_s
    result.provenance["cell_pid"] = os.getpid()


def stamp_node(result: CellResult, node: str, executor: dict[str, Any]) -> None:
    """Where the cell ran: the node's name (a key of the run's machine.nodes) and the executor's rule there."""
    result.provenance["node"] = node
    result.provenance["executor"] = executor


def node_record(threads: int, measure_peaks: bool) -> dict[str, Any]:
    """This machine as a node of a run: its hardware, code and packages, and (optionally) its own peaks,
    measured with the cells' thread count, so they are the peaks a cell can reach."""
    from bench.measure import provenance

    record: dict[str, Any] = {
        "machine": provenance.machine_info(),
        "code": provenance.git_version(),
        "packages": provenance.package_versions(),
        "threads": threads,
    }
    if measure_peaks:
        from bench.measure import flops
        from bench.measure.roofline import last_level_cache_bytes

        # every limit a cell's roofline is measured against: fp32 GEMM, the int8 GEMM of each int8 runtime,
        # fp16/bf16 GEMM where a GPU is visible, large-array and in-cache memory bandwidth
        record["peak_gemm"] = flops.measure_peak_flops(threads=threads, seconds=0.5)
        record["peak_int8"] = flops.measure_int8_peak(threads=threads, seconds=0.5)
        record["memory_bandwidth"] = flops.measure_memory_bandwidth_gbs(size_mb=128, seconds=0.5, threads=threads)
        # 4 MB arrays (8 MB copied) stay in the last-level cache of any server CPU of the last decade
        record["cache_bandwidth"] = flops.measure_memory_bandwidth_gbs(size_mb=4, seconds=0.5, threads=threads)
        record["llc_bytes"] = last_level_cache_bytes()
        cuda = flops.measure_half_peak_cuda()
        if cuda.get("available", True):
            record["peak_cuda"] = cuda
        record["peaks_measured_unix_s"] = time.time()
    return record
