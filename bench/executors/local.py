"""The default executor: each cell in a freshly spawned process on this machine, one at a time.

Each cell runs in a spawned process so that no cell inherits another's warm caches, threads or heap.
A cell that raises, dies or outlives its timeout becomes a failed row with the reason; the run goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from typing import Any

from bench.errors import ConfigError
from bench.executors.base import CellTask, Listener, execute_cell, failed_result, node_record, stamp_node, stamp_times
from bench.results import CellResult
from bench.scenario import CellSpec, Settings

#: the one node of a local run, as cells' provenance and the run's machine.nodes name it
LOCAL_NODE = "local"


def _child(task: CellTask, conn, parent_pid: int | None = None) -> None:
    """Entry point of a cell's process: sends ("progress", msg)*, then ("result", CellResult) or ("error", ...)."""
    if parent_pid is not None:
        from bench.lifeline import die_with_parent

        die_with_parent(parent_pid)  # a parent killed by SIGKILL must not leave this cell running
    try:
        outcome = execute_cell(task, progress=lambda msg: conn.send(("progress", msg)))
        with contextlib.suppress(OSError):  # the parent is gone (its pipe is closed): nobody to tell
            conn.send(outcome)
    finally:
        conn.close()


def run_cell_isolated(task: CellTask, listener: Listener | None = None) -> CellResult:
    spec, settings = task.spec, task.settings
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(task, child, os.getpid()), name="recbench-cell", daemon=True)
    started = time.monotonic()
    started_unix_s = time.time()
    proc.start()
    child.close()
    outcome: tuple[str, Any] | None = None
    deadline = started + settings.cell_timeout_s
    try:
        while outcome is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if parent.poll(min(remaining, 0.5)):
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    break
                if kind == "progress":
                    if listener:
                        listener("progress", spec, str(payload))
                else:
                    outcome = (kind, payload)
            elif not proc.is_alive() and not parent.poll(0):
                break
    finally:
        if outcome is None and proc.is_alive():
            proc.kill()
        proc.join(timeout=10)
        parent.close()
    elapsed = time.monotonic() - started

    if outcome is not None and outcome[0] == "result":
        result = outcome[1]
        assert isinstance(result, CellResult)
        result.extras["cell_wall_s"] = elapsed
        return result
    if outcome is not None:
        return failed_from_error(spec, outcome[1], elapsed)
    if elapsed >= settings.cell_timeout_s:
        result = failed_result(
            spec,
            f"timed out after {settings.cell_timeout_s:g} s (raise Settings.cell_timeout_s or --cell-timeout)",
            elapsed,
        )
    else:
        code = proc.exitcode
        why = "killed by SIGKILL (out of memory?)" if code == -9 else f"process exited with code {code}"
        result = failed_result(spec, f"cell process died without a result: {why}", elapsed)
    stamp_times(result, started_unix_s, time.time())  # the process's life, as seen from here
    result.provenance["cell_pid"] = proc.pid
    return result


def failed_from_error(spec: CellSpec, error: dict[str, Any], elapsed_s: float | None) -> CellResult:
    """The failed row for a cell whose process reported an exception (execute_cell's "error" outcome)."""
    result = failed_result(spec, str(error["reason"]), elapsed_s, traceback_text=error.get("traceback"))
    stamp_times(result, error["started_unix_s"], error["ended_unix_s"])
    return result


class LocalExecutor:
    """One cell at a time, each in a fresh spawned process on this machine."""

    name = "local"

    def __init__(self, cells_per_node: int = 1, address: str | None = None) -> None:
        if address is not None:
            raise ConfigError("--address applies to --executor ray; drop it, or add --executor ray")
        if cells_per_node != 1:
            raise ConfigError(
                f"--cells-per-node {cells_per_node}: the local executor runs one cell at a time so "
                "that no two timed cells share the machine; use --executor ray to pack cells"
            )
        self._queue: list[CellTask] = []
        self._listener: Listener | None = None

    def start(self, settings: Settings, measure_peaks: bool, listener: Listener | None = None) -> dict[str, dict]:
        self._listener = listener
        return {LOCAL_NODE: node_record(settings.threads, measure_peaks)}

    def submit(self, task: CellTask) -> None:
        self._queue.append(task)

    def completed(self) -> Iterator[tuple[CellTask, CellResult]]:
        while self._queue:
            task = self._queue.pop(0)
            if self._listener:
                self._listener("start", task.spec, "starting a fresh process")
            result = run_cell_isolated(task, self._listener)
            stamp_node(result, LOCAL_NODE, self.provenance())
            yield task, result

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name, "cells_per_node": 1}

    def shutdown(self) -> None:
        self._queue.clear()
