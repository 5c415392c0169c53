"""scenario -> cells -> one fresh process per cell -> results files.

Each cell runs in a spawned process so that no cell inherits another's warm caches, threads or heap.
A cell that raises, dies or outlives its timeout becomes a failed row with the reason; the run goes on
and the results files, rewritten atomically after every cell, stay valid throughout.
"""
from __future__ import annotations

import datetime as dt
import math
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

#: devices a cell may name
DEVICES = ("cpu", "cuda")

Listener = Callable[[str, CellSpec, str], None]  # (event, cell, message) for progress display


@dataclass(frozen=True)
class RunOptions:
    out_root: Path = Path("reports")
    prices: Path | None = None
    instance: str | None = None
    report: bool = True
    measure_peak: bool = True


def _child(spec: CellSpec, settings: Settings, conn, parent_pid: int | None = None) -> None:
    """Entry point of a cell's process: sends ("progress", msg)*, then ("result", CellResult) or ("error", ...)."""
    if parent_pid is not None:
        from bench.lifeline import die_with_parent
        die_with_parent(parent_pid)  # a parent killed by SIGKILL must not leave this cell running
    doing = ["starting"]

    def progress(msg: str) -> None:
        doing[0] = msg
        conn.send(("progress", msg))

    try:
        # pin threads before numpy/torch are imported, so every library starts with the right pool
        from bench.measure.threads import pin_threads
        pinned = pin_threads(settings.threads)
        from bench.cell import run_cell
        result = run_cell(spec, settings, progress=progress, pinned=pinned)
        conn.send(("result", result))
    except BaseException as exc:  # report everything, including MemoryError and KeyboardInterrupt
        if isinstance(exc, BenchError):
            reason = str(exc)
        elif isinstance(exc, MemoryError):
            reason = _out_of_memory(exc, doing[0])
        else:
            reason = f"{exc.__class__.__name__}: {exc}"
        try:
            conn.send(("error", (reason, traceback.format_exc(limit=8))))
        except OSError:
            pass  # the parent is gone (its pipe is closed): nobody to tell
    finally:
        conn.close()


def _out_of_memory(exc: MemoryError, doing: str) -> str:
    """What the cell was doing, what it asked for (numpy says; plain Python does not) and what was free."""
    asked = str(exc).strip() or "the size of the failed allocation was not reported"
    try:
        import psutil
        free = f"; {psutil.virtual_memory().available / 2**30:.1f} GiB was available, the cell held " \
               f"{psutil.Process().memory_info().rss / 2**30:.1f} GiB"
    except Exception:  # noqa: BLE001 - the message must come out even if psutil cannot
        free = ""
    return (f"out of memory while {doing} ({asked}{free}): use a smaller dataset or model, fewer or smaller "
            "batch sizes, or a machine with more memory")


def run_cell_isolated(spec: CellSpec, settings: Settings, listener: Listener | None = None) -> CellResult:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, settings, child, os.getpid()), name="recbench-cell", daemon=True)
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
    """Every check that can fail on the user's input, before any cell runs or any file is written:
    settings, names, parameter values (each recommender is constructed, which checks them), devices,
    datasets (loaded and verified), splits (made, and must leave test users) and batch sizes against memory.

    Datasets are loaded (and fetched into the cache, with a progress bar, if needed) once here, so that
    cells only read the verified cache.
    """
    from bench.data import load_dataset
    from bench.data.splits import SPLITS, make_split
    from bench.recommenders import registry
    from bench.cell import _constructor_params as constructor_params
    from bench.recommenders.base import check_k
    from bench.scenario import check_name

    settings = scenario.settings
    settings.validate()
    check_name(scenario.name)  # it names the run folder
    for spec in scenario.cells:
        entry = registry.get(spec.recommender)
        entry.check_params(spec.params)
        _check_finite(spec.params, f"cell {spec.name}: parameter")
        if spec.device not in DEVICES:
            raise ConfigError(f"cell {spec.name}: device {spec.device!r} is unknown: use one of {', '.join(DEVICES)}")
        try:  # constructors check their values and do no work (fitting does): a cheap, complete check
            entry.build(**constructor_params(entry, spec, settings))
        except BenchError as exc:
            raise ConfigError(f"cell {spec.name}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"cell {spec.name}: recommender {spec.recommender} rejected its parameters "
                              f"({exc}); fix them in the scenario") from None
        if spec.split not in SPLITS:
            raise ConfigError(f"unknown split {spec.split!r} in cell {spec.name}: choose one of {', '.join(SPLITS)}")
        if spec.variant != NO_VARIANT:
            from bench.variants import parse_variant
            parse_variant(spec.variant)
        if spec.batch_sizes is not None and (not spec.batch_sizes or min(spec.batch_sizes) <= 0
                                             or not all(isinstance(b, int) for b in spec.batch_sizes)):
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
            if len(make_split(dataset, protocol, seed=settings.seed).test_users()) == 0:
                raise ConfigError(f"split {protocol} of {name} leaves no test users (too few interactions per "
                                  "user): use more data or another split")
        for spec in (c for c in scenario.cells if c.dataset == name and "offline" in c.loads):
            _check_batch_memory(spec, spec.batch_sizes or settings.batch_sizes, dataset.n_items)


#: bytes one user of a batch takes while its scores over the catalogue are ranked: float32 scores, a float64
#: working copy and int64 positions from the partial sort
BYTES_PER_SCORE = 20


def _check_batch_memory(spec: CellSpec, batch_sizes: tuple[int, ...], n_items: int) -> None:
    """A batch must be able to hold its scores over the whole catalogue in the memory this machine has."""
    import psutil

    available = psutil.virtual_memory().available
    limit = max(1, available // (BYTES_PER_SCORE * max(n_items, 1)))
    too_big = [b for b in batch_sizes if b > limit]
    if too_big:
        raise ConfigError(f"cell {spec.name}: batch size {max(too_big):,} would need "
                          f"{max(too_big) * n_items * BYTES_PER_SCORE / 2**30:,.1f} GiB for its scores over "
                          f"{n_items:,} items and {available / 2**30:.1f} GiB is available: use batch sizes up "
                          f"to {limit:,}")


def _check_finite(value, where: str) -> None:
    """NaN or infinity anywhere in a parameter (lists and dicts included) is refused before any work."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} value {value!r} is not a finite number: use a finite value")
    if isinstance(value, dict):
        for key, v in value.items():
            _check_finite(v, f"{where} {key}" if where.endswith("parameter") else f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(v, where)


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
        try:
            result = run_cell_isolated(spec, scenario.settings, listener)
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the cell process is already stopped
            run.cells.append(_failed(spec, f"interrupted ({exc or 'SIGINT'}) before the cell finished; its "
                                           "figures were not kept", 0.0))
            results_mod.write(run, out_dir)
            raise
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
