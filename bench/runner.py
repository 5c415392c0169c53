"""scenario -> cells -> one fresh process per cell -> results files.

Each cell runs in a spawned process so that no cell inherits another's warm caches, threads or heap.
A cell that raises, dies or outlives its timeout becomes a failed row with the reason; the run goes on
and the results files, rewritten atomically after every cell, stay valid throughout.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import results as results_mod
from bench.errors import BenchError, ConfigError
from bench.results import CellResult, RunResult
from bench.scenario import LOADS, NO_VARIANT, CellSpec, Scenario, Settings

Listener = Callable[[str, CellSpec, str], None]  # (event, cell, message) for progress display


@dataclass(frozen=True)
class RunOptions:
    out_root: Path = Path("reports")
    prices: Path | None = None
    instance: str | None = None
    report: bool = True
    measure_peak: bool = True


def _child(spec: CellSpec, settings: Settings, conn) -> None:
    """Entry point of a cell's process: sends ("progress", msg)*, then ("result", CellResult) or ("error", ...)."""
    try:
        # pin threads before numpy/torch are imported, so every library starts with the right pool
        from bench.measure.threads import pin_threads
        pinned = pin_threads(settings.threads)
        from bench.cell import run_cell
        result = run_cell(spec, settings, progress=lambda msg: conn.send(("progress", msg)), pinned=pinned)
        conn.send(("result", result))
    except BaseException as exc:  # report everything, including MemoryError and KeyboardInterrupt
        reason = str(exc) if isinstance(exc, BenchError) else f"{exc.__class__.__name__}: {exc}"
        conn.send(("error", (reason, traceback.format_exc(limit=8))))
    finally:
        conn.close()


def run_cell_isolated(spec: CellSpec, settings: Settings, listener: Listener | None = None) -> CellResult:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, settings, child), name=f"recbench-cell", daemon=True)
    started = time.monotonic()
    proc.start()
    child.close()
    outcome: tuple[str, object] | None = None
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
        reason, tb = outcome[1]  # type: ignore[misc]
        return _failed(spec, str(reason), elapsed, traceback_text=tb)
    if elapsed >= settings.cell_timeout_s:
        return _failed(spec, f"timed out after {settings.cell_timeout_s:g} s (raise Settings.cell_timeout_s "
                             "or --cell-timeout)", elapsed)
    code = proc.exitcode
    why = "killed by SIGKILL (out of memory?)" if code == -9 else f"process exited with code {code}"
    return _failed(spec, f"cell process died without a result: {why}", elapsed)


def _failed(spec: CellSpec, reason: str, elapsed: float, traceback_text: str | None = None) -> CellResult:
    cell = CellResult(cell=spec.name, dataset=spec.dataset, split=spec.split, recommender=spec.recommender,
                      variant=spec.variant, device=spec.device, status="failed", error=reason, params=dict(spec.params))
    cell.extras["cell_wall_s"] = elapsed
    if traceback_text:
        cell.extras["traceback"] = traceback_text
    return cell


def preflight(scenario: Scenario, listener: Listener | None = None) -> None:
    """Every check that can fail on the user's input, before any cell runs or any file is written.

    Datasets are loaded (and fetched into the cache, with a progress bar, if needed) once here, so that
    cells only read the verified cache.
    """
    from bench.data import load_dataset
    from bench.data.splits import SPLITS
    from bench.recommenders import registry
    from bench.recommenders.base import check_k

    settings = scenario.settings
    for spec in scenario.cells:
        registry.get(spec.recommender).check_params(spec.params)
        if spec.split not in SPLITS:
            raise ConfigError(f"unknown split {spec.split!r} in cell {spec.name}: choose one of {', '.join(SPLITS)}")
        if spec.variant != NO_VARIANT:
            from bench.variants import parse_variant
            parse_variant(spec.variant)
        if spec.batch_sizes is not None and (not spec.batch_sizes or min(spec.batch_sizes) <= 0):
            raise ConfigError(f"cell {spec.name}: batch sizes {spec.batch_sizes} must be positive integers")
        if spec.quality_users is not None and spec.quality_users < 0:
            raise ConfigError(f"cell {spec.name}: quality_users must be >= 0 (0 = every test user)")
        unknown_loads = set(spec.loads) - set(LOADS)
        if unknown_loads:
            raise ConfigError(f"unknown load(s) {sorted(unknown_loads)} in cell {spec.name}: choose from {', '.join(LOADS)}")
    for name in sorted({c.dataset for c in scenario.cells}):
        if listener:
            listener("note", scenario.cells[0], f"checking dataset {name}")
        dataset = load_dataset(name, data_dir=settings.data_dir)
        for k in {settings.k, *settings.ks}:
            check_k(k, dataset.n_items)
        for protocol in sorted({c.split for c in scenario.cells if c.dataset == name}):
            if protocol == "temporal-loo" and not dataset.has_timestamps:
                raise ConfigError(f"split temporal-loo needs timestamps and {name} has none: "
                                  "use random-8-1-1 or cold-items")


def make_run_id(scenario: Scenario, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{scenario.name}-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid() % 10000:04d}"


def check_writable(out_dir: Path) -> None:
    """Fail before any work if results could not be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".recbench-write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write results to {out_dir} ({exc.strerror or exc}); "
                          "choose a writable directory with --out") from None


def run(scenario: Scenario, options: RunOptions = RunOptions(), listener: Listener | None = None) -> tuple[RunResult, Path]:
    """Execute every cell of the scenario in isolation and write results (and the report) under out_root/run_id."""
    scenario.settings.validate()
    from bench import cost
    prices = cost.load_prices(options.prices)  # a bad price sheet or instance fails before any work
    if options.instance:
        prices.instance(options.instance)
    preflight(scenario, listener)
    run_id = make_run_id(scenario)
    out_dir = Path(options.out_root) / run_id
    check_writable(out_dir)

    from bench.measure import provenance
    started = time.perf_counter()
    run = RunResult(run_id=run_id, scenario=scenario.describe(), provenance=provenance.collect(),
                    created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    # how busy the machine was: a reader of any timing needs to know whether other work competed for the cores
    run.provenance["machine_load"] = {"what": "1-minute load average before the run and after each cell; above "
                                              "the usable core count, other processes competed for the cores",
                                      "usable_cores": run.provenance.get("machine", {}).get("usable_cores"),
                                      "samples": [_load_average()]}
    if options.measure_peak and any(c.loads for c in scenario.cells):  # utilisation needs a throughput
        if listener:
            listener("note", scenario.cells[0], "measuring this machine's peak GEMM FLOP/s and memory bandwidth")
        run.machine = _machine_peaks(scenario.settings.threads)
    results_mod.write(run, out_dir)

    for spec in scenario.cells:
        if listener:
            listener("start", spec, "")
        result = run_cell_isolated(spec, scenario.settings, listener)
        run.cells.append(result)
        run.provenance["machine_load"]["samples"].append(_load_average())
        results_mod.write(run, out_dir)  # valid on disk after every cell, even if the run is interrupted
        if listener:
            listener("done", spec, result.status if result.status != "failed" else f"failed: {result.error}")

    _post_process(run, scenario.settings, prices, options)
    run.provenance["wall_s"] = time.perf_counter() - started  # cells, peaks and post-processing; not the report
    results_mod.write(run, out_dir)
    if options.report:
        from bench.report import write_report
        write_report(run, out_dir, prices=prices)
    return run, out_dir


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not every platform has one
        return None


def _machine_peaks(threads: int) -> dict:
    from bench.measure import flops
    peak = flops.measure_peak_flops(threads=threads, seconds=0.5)
    bandwidth = flops.measure_memory_bandwidth_gbs(size_mb=128, seconds=0.5, threads=threads)
    return {"peak_gemm": peak, "memory_bandwidth": bandwidth, "threads": threads}


def _post_process(run: RunResult, settings: Settings, prices, options: RunOptions) -> None:
    """Run-level figures that need more than one cell: utilisation, quality gate, cost."""
    from bench import cost
    from bench.derived import add_harness_overhead, add_utilisation, apply_quality_gate
    add_utilisation(run)
    add_harness_overhead(run)
    apply_quality_gate(run, settings.quality_gate)
    cost.add_costs(run, prices, options.instance, threads_used=settings.threads)
    from bench.sizes import add_size_figures
    add_size_figures(run)  # cost against model size (needs the costs above); nothing when one size ran
