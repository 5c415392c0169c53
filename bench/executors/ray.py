"""The Ray executor: each cell a Ray task in a fresh worker process, on the nodes of a Ray cluster.

Isolation. Ray's CPU resources are logical: it does not keep two tasks off the same cores. So the driver
schedules cells itself: every cell is pinned to one node (hard node affinity), and a node runs at most
`cells_per_node` cells at a time (1 by default: one timed cell per node). CPU cells go to nodes without a
GPU while the cluster has any; CUDA cells (num_gpus=1) only to nodes with one. A task asks Ray for
`num_cpus` = the cell's threads, `max_calls=1` (a fresh worker process per cell) and no automatic retry.

Nodes. Before any cell runs, a probe task on each node records its hardware, code version and packages
and, when the run needs them, measures its own GEMM peak and memory bandwidth (holding the node's slot,
so no cell runs beside it): utilisation and cost of a cell use the peaks of the node that ran it. A node
whose recbench code differs from the driver's is left out, with the reason in the run's provenance.

Faults. A cell whose node or worker dies becomes a failed row with the reason; a node that died runs no
more cells; the other cells go on (`recbench run --resume RUN_DIR` reruns the failed ones).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.errors import ConfigError
from bench.executors.base import CellTask, Listener, execute_cell, failed_result, node_record, stamp_node, stamp_times
from bench.executors.local import failed_from_error
from bench.results import CellResult
from bench.scenario import Settings

INSTALL_HINT = "pip install 'recbench[ray]'"
_ADDRESS = re.compile(r"^(auto|ray://[^:/\s]+:\d+|[^:/\s]+:\d+)$")
#: seconds to wait for a node's probe (start-up, imports, peak measurement) before leaving the node out
PROBE_TIMEOUT_S = 300.0
#: seconds a node that lost a worker gets to answer a ping before it is taken as dead
PING_TIMEOUT_S = 20.0


def _run_on_node(task: CellTask) -> tuple[str, Any, str]:
    """The Ray task: measure the cell in this (fresh) worker process; also say which node this is."""
    import ray  # noqa: PLC0415 - inside the worker

    kind, payload = execute_cell(task, progress=lambda _msg: None)
    return kind, payload, ray.get_runtime_context().get_node_id()


def _probe(threads: int, measure_peaks: bool) -> dict[str, Any]:
    return node_record(threads, measure_peaks)


def _ping() -> bool:
    return True


@dataclass
class _Node:
    name: str
    node_id: str
    cpus: float
    gpus: float
    running: int = 0
    usable: bool = True
    why_not: str = ""


@dataclass
class _Running:
    task: CellTask
    node: _Node
    started_monotonic: float
    started_unix_s: float
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class RayExecutor:
    """Cells as Ray tasks, at most `cells_per_node` timed cells per node at a time."""

    name = "ray"

    def __init__(self, cells_per_node: int = 1, address: str | None = None) -> None:
        self.address = address or "auto"
        if not _ADDRESS.match(self.address):
            raise ConfigError(
                f"--address {self.address!r} is not a Ray address: use auto, ray://HOST:PORT "
                "(Ray Client) or HOST:PORT (the head's GCS)"
            )
        if not isinstance(cells_per_node, int) or cells_per_node < 1:
            raise ConfigError(f"--cells-per-node {cells_per_node} must be a whole number >= 1")
        self.cells_per_node = cells_per_node
        try:
            import ray  # noqa: PLC0415 - optional extra
        except ImportError:
            raise ConfigError(f"--executor ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
        self._ray = ray
        self._nodes: dict[str, _Node] = {}
        self._pending: list[CellTask] = []
        self._running: dict[Any, _Running] = {}
        self._listener: Listener | None = None
        self._settings: Settings | None = None
        self._connected = False
        self._left_out: dict[str, str] = {}

    # ------------------------------------------------------------------ start: connect, find and probe nodes

    def start(self, settings: Settings, measure_peaks: bool, listener: Listener | None = None) -> dict[str, dict]:
        ray = self._ray
        self._listener, self._settings = listener, settings
        try:
            ray.init(
                address=self.address,
                namespace="recbench",
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError, ... by address kind
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ConfigError(
                f"cannot connect to a Ray cluster at {self.address} ({first}); start one "
                "(`ray start --head`, `ray up`, KubeRay) or pass --address ray://HOST:PORT"
            ) from None
        self._connected = True
        self._nodes = self._discover(settings.threads)
        if not self._nodes:
            raise ConfigError(
                f"no live node of the Ray cluster at {self.address} has {settings.threads} CPUs for a "
                "cell; lower --threads or add nodes"
            )
        return self._probe_all(settings.threads, measure_peaks)

    def _discover(self, threads: int) -> dict[str, _Node]:
        alive = [n for n in self._ray.nodes() if n.get("Alive")]
        names = [str(n.get("NodeName") or n["NodeID"][:12]) for n in alive]
        nodes = {}
        for info, name in zip(alive, names):
            if names.count(name) > 1:  # several nodes on one host share its address: tell them apart
                name = f"{name}#{info['NodeID'][:8]}"
            resources = info.get("Resources") or {}
            if resources.get("CPU", 0) < threads:
                self._left_out[name] = f"{resources.get('CPU', 0):g} CPUs, fewer than the cells' {threads} threads"
                continue
            nodes[name] = _Node(name, info["NodeID"], float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))
        return nodes

    def _on(self, node: _Node) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

        return NodeAffinitySchedulingStrategy(node.node_id, soft=False)

    def _probe_all(self, threads: int, measure_peaks: bool) -> dict[str, dict]:
        ray = self._ray
        from bench.measure.provenance import git_version  # noqa: PLC0415

        driver_commit = git_version().get("commit")
        if self._listener:
            what = "hardware and peak GEMM FLOP/s and bandwidth" if measure_peaks else "hardware"
            self._listener("note", _NO_CELL, f"probing {len(self._nodes)} Ray node(s): {what}")
        probe = ray.remote(max_calls=1, max_retries=0)(_probe)  # max_calls is a remote() option, not an options() one
        refs = {
            name: probe.options(
                num_cpus=threads, scheduling_strategy=self._on(node), name=f"recbench-probe:{name}"
            ).remote(threads, measure_peaks)
            for name, node in self._nodes.items()
        }
        records: dict[str, dict] = {}
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        for name, ref in refs.items():
            node = self._nodes[name]
            try:
                record = ray.get(ref, timeout=max(1.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - a node that cannot run a probe cannot run cells
                node.usable, node.why_not = False, f"probe failed: {_first_line(exc)}"
                ray.cancel(ref, force=True)
                continue
            commit = (record.get("code") or {}).get("commit")
            if driver_commit not in (None, "unknown") and commit not in (None, "unknown") and commit != driver_commit:
                node.usable = False
                node.why_not = (
                    f"runs recbench {commit[:12]}, the driver {driver_commit[:12]}: install the same "
                    "version on every node"
                )
            record["ray"] = {"node_id": node.node_id, "cpus": node.cpus, "gpus": node.gpus}
            records[name] = record
        for node in self._nodes.values():
            if not node.usable:
                self._left_out[node.name] = node.why_not
                if self._listener:
                    self._listener("note", _NO_CELL, f"node {node.name} left out: {node.why_not}")
        if not any(n.usable for n in self._nodes.values()):
            raise ConfigError(
                "no node of the Ray cluster can run cells: " + "; ".join(f"{k}: {v}" for k, v in self._left_out.items())
            )
        return records

    # ------------------------------------------------------------------ cells

    def submit(self, task: CellTask) -> None:
        self._pending.append(task)

    def completed(self) -> Iterator[tuple[CellTask, CellResult]]:
        ray = self._ray
        remote = ray.remote(max_calls=1, max_retries=0)(_run_on_node)  # a fresh worker process per cell, no retry
        while self._pending or self._running:
            yield from self._dispatch(remote)
            if not self._running:
                continue  # _dispatch failed every pending cell it could never place; the loop ends
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=1.0)
            for ref in ready:
                yield self._collect(ref)
            self._enforce_timeouts()

    def _dispatch(self, remote: Any) -> Iterator[tuple[CellTask, CellResult]]:
        usable = [n for n in self._nodes.values() if n.usable]
        cpu_only = [n for n in usable if n.gpus < 1]
        for task in list(self._pending):
            cuda = task.spec.device.startswith("cuda")
            # CPU cells keep off GPU nodes while the cluster has CPU-only ones, so GPU slots stay for CUDA cells
            eligible = [n for n in usable if n.gpus >= 1] if cuda else (cpu_only or usable)
            if not eligible:
                self._pending.remove(task)
                why = (
                    "no live node of the Ray cluster has a GPU: add a GPU node, or run the cell with --device cpu"
                    if cuda
                    else "no live node of the Ray cluster is left to run it"
                )
                result = failed_result(task.spec, why + self._left_out_note())
                stamp_node(result, "", self.provenance())
                yield task, result
                continue
            free = [n for n in eligible if n.running < self.cells_per_node]
            if not free:
                continue
            node = min(free, key=lambda n: (n.running, n.name))
            options = dict(
                num_cpus=task.settings.threads,
                scheduling_strategy=self._on(node),
                name=f"recbench-cell:{task.spec.name}",
            )
            if cuda:
                options["num_gpus"] = 1
            ref = remote.options(**options).remote(task)
            node.running += 1
            self._pending.remove(task)
            self._running[ref] = _Running(task, node, time.monotonic(), time.time())
            if self._listener:
                self._listener("start", task.spec, f"on Ray node {node.name}")

    def _collect(self, ref: Any) -> tuple[CellTask, CellResult]:
        ray = self._ray
        entry = self._running.pop(ref)
        entry.node.running -= 1
        task, node = entry.task, entry.node
        try:
            kind, payload, node_id = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a lost worker, node or task: the cell fails, the run goes on
            result = failed_result(
                task.spec, self._failure_reason(entry, exc), time.monotonic() - entry.started_monotonic
            )
            stamp_times(result, entry.started_unix_s, time.time())  # as seen from the driver
            result.provenance.pop("cell_pid", None)  # the driver's pid says nothing about the cell
        else:
            elapsed = time.monotonic() - entry.started_monotonic
            if kind == "result":
                result = payload
                result.extras["cell_wall_s"] = elapsed
            else:
                result = failed_from_error(task.spec, payload, elapsed)
            if node_id != node.node_id:  # hard affinity makes this impossible; record it rather than trust it
                result.extras["node_mismatch"] = f"scheduled on {node.node_id}, ran on {node_id}"
        stamp_node(result, node.name, {**self.provenance(), "node_id": node.node_id})
        return task, result

    def _failure_reason(self, entry: _Running, exc: Exception) -> str:
        ray = self._ray
        node = entry.node
        if entry.timed_out:
            return (
                f"timed out after {entry.task.settings.cell_timeout_s:g} s on node {node.name} (raise "
                "Settings.cell_timeout_s or --cell-timeout)"
            )
        if isinstance(exc, ray.exceptions.OutOfMemoryError):
            return f"Ray killed the cell's worker on node {node.name}: out of memory ({_first_line(exc)})"
        if isinstance(
            exc, (ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError)
        ) or not self._node_answers(node):
            node.usable, node.why_not = False, "died during the run"
            self._left_out[node.name] = node.why_not
            return (
                f"node {node.name} died while the cell ran ({exc.__class__.__name__}); the other cells went on "
                "on the remaining nodes: rerun this one with --resume RUN_DIR"
            )
        if isinstance(exc, ray.exceptions.WorkerCrashedError):
            return (
                f"the cell's worker process on node {node.name} died without a result (killed by the OS: out "
                "of memory?)"
            )
        return f"Ray could not run the cell on node {node.name}: {exc.__class__.__name__}: {_first_line(exc)}"

    def _node_answers(self, node: _Node) -> bool:
        """Whether a node still runs tasks: listed alive, and a ping pinned to it comes back."""
        ray = self._ray
        if not any(n.get("NodeID") == node.node_id and n.get("Alive") for n in ray.nodes()):
            return False
        ref = ray.remote(_ping).options(num_cpus=0, max_retries=0, scheduling_strategy=self._on(node)).remote()
        try:
            return bool(ray.get(ref, timeout=PING_TIMEOUT_S))
        except Exception:  # noqa: BLE001 - any failure to answer means the node is not usable
            ray.cancel(ref, force=True)
            return False

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for ref, entry in self._running.items():
            if not entry.timed_out and now - entry.started_monotonic > entry.task.settings.cell_timeout_s:
                entry.timed_out = True
                self._ray.cancel(ref, force=True)  # kills the worker process; its ray.get raises next round

    def _left_out_note(self) -> str:
        if not self._left_out:
            return ""
        return " (left out: " + "; ".join(f"{k}: {v}" for k, v in self._left_out.items()) + ")"

    # ------------------------------------------------------------------ provenance, shutdown

    def provenance(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "cells_per_node": self.cells_per_node,
            "ray_version": getattr(self._ray, "__version__", None),
        }
        if self._left_out:
            record["nodes_left_out"] = dict(self._left_out)
        return record

    def shutdown(self) -> None:
        ray = self._ray
        for ref in list(self._running):
            # best effort: a task that already ended or whose node is gone cannot be cancelled, and shutdown goes on
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        self._running.clear()
        self._pending.clear()
        if self._connected:
            self._connected = False
            ray.shutdown()  # disconnects this driver; a cluster we connected to keeps running


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


class _NoCell:
    """Stands in for a cell in run-level notes (the listener's signature names a cell)."""

    name = ""


_NO_CELL: Any = _NoCell()
