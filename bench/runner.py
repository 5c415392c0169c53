"""scenario -> cells -> executor -> results files -> run-level figures -> report.

The executor (bench.executors: `local` by default, or `ray`) decides where and how each cell runs in a
fresh process; the runner does not know which one it drives. A cell that raises, dies or outlives its
timeout comes back as a failed row with the reason; the run goes on and the results files, rewritten
atomically after every cell, stay valid throughout, so `--resume RUN_DIR` can finish an interrupted run.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import executors
from bench import results as results_mod
from bench import resume as resume_mod
from bench.errors import BenchError, ConfigError
from bench.executors import CellTask, Listener
from bench.executors.base import failed_result
from bench.results import RunResult
from bench.scenario import NO_VARIANT, CellSpec, Scenario, Settings

if TYPE_CHECKING:
    from bench.cost import PriceSheet

#: devices a cell may name
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class RunOptions:
    out_root: Path = Path("reports")
    prices: Path | None = None
    instance: str | None = None
    #: node name -> instance, for runs across machines: each node's cells are priced as that instance
    node_instances: dict[str, str] = field(default_factory=dict)
    report: bool = True
    measure_peak: bool = True
    #: a name registered in bench.executors, and its options (address, cells_per_node)
    executor: str = "local"
    executor_options: dict[str, Any] = field(default_factory=dict)
    #: an earlier run's directory: run only its missing and failed cells, and complete its files
    resume: Path | None = None


def preflight(scenario: Scenario, listener: Listener | None = None) -> dict[str, str]:
    """Every check that can fail on the user's input, before any cell runs or any file is written:
    settings, names, parameter values (each recommender is constructed, which checks them), devices,
    datasets (loaded and verified), splits (made, and must leave test users) and batch sizes against memory.

    Datasets are loaded (and fetched into the cache, with a progress bar, if needed) once here, so that
    local cells only read the verified cache. Returns each dataset's checksum: every cell, on whatever node,
    checks its own copy against it.
    """
    from bench.cell import run_context
    from bench.data import load_dataset, replay
    from bench.data.splits import SPLITS, make_split
    from bench.measure import load_registry
    from bench.names import check_name
    from bench.recommenders import registry
    from bench.recommenders.base import check_k
    from bench.recommenders.online import registry as strategies

    settings = scenario.settings
    settings.validate()
    check_name(scenario.name)  # it names the run folder
    for spec in scenario.cells:
        replay_cell = replay.is_replay(spec.split)  # an online strategy on a replay: its own registry and spec
        entry = (strategies if replay_cell else registry).get(spec.recommender)
        entry.check_params(spec.params)
        _check_finite(spec.params, f"cell {spec.name}: parameter")
        if spec.device not in DEVICES:
            raise ConfigError(f"cell {spec.name}: device {spec.device!r} is unknown: use one of {', '.join(DEVICES)}")
        try:  # constructors check their values and do no work (fitting does): a cheap, complete check
            entry.build_in(run_context(spec, settings), dict(spec.params))
        except BenchError as exc:
            raise ConfigError(f"cell {spec.name}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"cell {spec.name}: recommender {spec.recommender} rejected its parameters "
                f"({exc}); fix them in the scenario"
            ) from None
        if replay_cell:
            replay.parse_spec(spec.split)
        elif spec.split not in SPLITS:
            raise ConfigError(f"unknown split {spec.split!r} in cell {spec.name}: choose one of {', '.join(SPLITS)}")
        if spec.variant != NO_VARIANT:
            from bench.variants import registry as variants

            variants.check_device(spec.variant, spec.device)  # unknown, or not on this device: one line now
        if spec.batch_sizes is not None and (
            not spec.batch_sizes or min(spec.batch_sizes) <= 0 or not all(isinstance(b, int) for b in spec.batch_sizes)
        ):
            raise ConfigError(f"cell {spec.name}: batch sizes {spec.batch_sizes} must be positive integers")
        if spec.quality_users is not None and spec.quality_users < 0:
            raise ConfigError(f"cell {spec.name}: quality_users must be >= 0 (0 = every test user)")
        load_registry.check_names(spec.loads, f"cell {spec.name}")
    checksums = {}
    for name in sorted({c.dataset for c in scenario.cells}):
        if listener:
            listener("note", scenario.cells[0], f"checking dataset {name}")
        dataset = load_dataset(name, data_dir=settings.data_dir)
        checksums[name] = dataset.checksum
        for k in {settings.k, *settings.ks}:
            check_k(k, dataset.n_items)
        for protocol in sorted({c.split for c in scenario.cells if c.dataset == name}):
            if replay.is_replay(protocol):
                replay.make_replay(dataset, protocol)  # no timestamps, or too short a timeline: one line now
                continue
            if protocol == "temporal-loo" and not dataset.has_timestamps:
                raise ConfigError(
                    f"split temporal-loo needs timestamps and {name} has none: use random-8-1-1 or cold-items"
                )
            if len(make_split(dataset, protocol, seed=settings.seed).test_users()) == 0:
                raise ConfigError(
                    f"split {protocol} of {name} leaves no test users (too few interactions per "
                    "user): use more data or another split"
                )
        for spec in (c for c in scenario.cells if c.dataset == name and load_registry.OFFLINE in c.loads):
            _check_batch_memory(spec, spec.batch_sizes or settings.batch_sizes, dataset.n_items)
    return checksums


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
        raise ConfigError(
            f"cell {spec.name}: batch size {max(too_big):,} would need "
            f"{max(too_big) * n_items * BYTES_PER_SCORE / 2**30:,.1f} GiB for its scores over "
            f"{n_items:,} items and {available / 2**30:.1f} GiB is available: use batch sizes up "
            f"to {limit:,}"
        )


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
    now = now or dt.datetime.now(dt.UTC)
    return f"{scenario.name}-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid() % 10000:04d}"


def check_writable(out_dir: Path) -> None:
    """Fail before any work if results could not be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".recbench-write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write results to {out_dir} ({exc.strerror or exc}); choose a writable directory with --out"
        ) from None


def run(
    scenario: Scenario, options: RunOptions = RunOptions(), listener: Listener | None = None
) -> tuple[RunResult, Path]:
    """Execute every cell of the scenario in isolation and write results (and the report) under out_root/run_id
    (or, with options.resume, the missing and failed cells of that run, into its directory)."""
    from bench import plugins

    plugins.load(scenario.plugins)  # their recommenders, variants and loads, before anything is checked
    scenario.settings.validate()
    for spec in scenario.cells:  # per-cell overrides are checked before any work too
        spec.settings_for(scenario.settings).validate()
    from bench import cost
    from bench.measure import provenance

    prices = cost.load_prices(options.prices)  # a bad price sheet or instance fails before any work
    for name in ([options.instance] if options.instance else []) + list(options.node_instances.values()):
        prices.instance(name)
    executor = executors.create(options.executor, **options.executor_options)  # e.g. Ray missing: fail now
    run_provenance = provenance.collect()
    previous = resume_mod.load(options.resume, scenario, run_provenance["code"]) if options.resume else None
    checksums = preflight(scenario, listener)

    if previous is not None:
        resume_mod.check_data(previous.run, checksums)
        run, out_dir, todo = previous.run, previous.out_dir, previous.todo
    else:
        run_id = make_run_id(scenario)
        out_dir = Path(options.out_root) / run_id
        todo = list(range(len(scenario.cells)))
        run = RunResult(
            run_id=run_id,
            scenario=scenario.describe(),
            provenance=run_provenance,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        # how busy the machine was: a reader of any timing needs to know whether other work competed for the cores
        run.provenance["machine_load"] = {
            "what": "1-minute load average before the run and after each cell; "
            "above the usable core count, other processes competed for the cores",
            "usable_cores": run.provenance.get("machine", {}).get("usable_cores"),
            "samples": [],
        }
    check_writable(out_dir)
    started = time.perf_counter()
    run.provenance["machine_load"]["samples"].append(_load_average())
    cells = [scenario.cells[i] for i in todo]
    order = {c.name: i for i, c in enumerate(scenario.cells)}
    try:
        # utilisation needs a throughput: measure each node's peaks only when some cell puts a load on it
        measure_peaks = options.measure_peak and any(c.loads for c in cells)
        if measure_peaks and listener:
            listener(
                "note",
                scenario.cells[0],
                "measuring the peak GEMM rates (fp32, int8) and memory bandwidth of each machine",
            )
        running: dict[str, CellSpec] = {}  # cells an executor announced as started and has not returned yet

        def track(event: str, spec: CellSpec, message: str) -> None:
            if event == "start":
                running[spec.name] = spec
            if listener:
                listener(event, spec, message)

        try:
            nodes = executor.start(scenario.settings, measure_peaks, track) if cells else {}
        except BaseException:
            if previous is None and not any(out_dir.iterdir()):
                out_dir.rmdir()  # nothing half-written: a run that never started leaves no folder
            raise
        _add_nodes(run, nodes, scenario.settings.threads)
        if previous is not None:
            resume_mod.record_session(run, [c.name for c in cells], executor.provenance())
        else:
            run.provenance["executor"] = executor.provenance()
        results_mod.write(run, out_dir)

        for i in todo:
            spec = scenario.cells[i]
            executor.submit(
                CellTask(
                    i,
                    spec,
                    spec.settings_for(scenario.settings),
                    checksums.get(spec.dataset),
                    plugins=tuple(scenario.plugins),
                )
            )
        try:
            for task, result in executor.completed():
                running.pop(task.spec.name, None)
                _record(run, result, order, out_dir)
                if listener:
                    listener(
                        "done", task.spec, result.status if result.status != "failed" else f"failed: {result.error}"
                    )
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the cell processes are already stopped
            for spec in running.values():
                _record(
                    run,
                    failed_result(
                        spec,
                        f"interrupted ({exc or 'SIGINT'}) before the cell finished; "
                        "its figures were not kept (--resume RUN_DIR reruns it)",
                        0.0,
                    ),
                    order,
                    out_dir,
                )
            raise
        if previous is None:
            run.provenance["executor"] = executor.provenance()  # with any node that dropped out on the way
    finally:
        executor.shutdown()

    # the cells as measured: --resume derives the run-level figures again from these
    results_mod.write_json(run, out_dir / resume_mod.MEASURED_FILE)
    _post_process(run, scenario.settings, prices, options)
    run.provenance["wall_s"] = time.perf_counter() - started  # cells, peaks and post-processing; not the report
    results_mod.write(run, out_dir)
    if options.report:
        from bench.report import write_report

        write_report(run, out_dir)
    return run, out_dir


def _record(run: RunResult, result, order: dict[str, int], out_dir: Path) -> None:
    """Add a finished cell in scenario order (whatever order cells finish in) and rewrite the results files,
    so they are valid on disk after every cell, even if the run is interrupted."""
    if not result.family:  # a cell whose process died before it said: its registry entry's family
        result.family = _family(result.recommender, result.split)
    run.cells.append(result)
    run.cells.sort(key=lambda c: order.get(c.cell, len(order)))
    run.provenance["machine_load"]["samples"].append(_load_average())
    results_mod.write(run, out_dir)


def _family(recommender: str, split: str) -> str:
    from bench.data import replay
    from bench.recommenders import registry
    from bench.recommenders.online import registry as strategies

    entries = strategies.STRATEGIES if replay.is_replay(split) else registry.REGISTRY
    entry = entries.get(recommender)
    return entry.family if entry is not None else ""


def _add_nodes(run: RunResult, nodes: dict[str, dict], threads: int) -> None:
    """Record each node's machine and peaks under run.machine.nodes; a resumed run keeps the records its earlier
    cells were measured against, and refuses a node of the same name that is another machine."""
    known = run.machine.setdefault("nodes", {})
    run.machine.setdefault("threads", threads)
    for name, record in nodes.items():
        old = known.get(name)
        if old is None:
            known[name] = record
            continue
        then = (old.get("machine") or {}).get("machine_fingerprint")
        now = (record.get("machine") or {}).get("machine_fingerprint")
        if then and now and then != now:
            raise ConfigError(
                f"cannot resume: node {name!r} of this run was another machine (fingerprint {then}, "
                f"now {now}); resume it where it ran, or start a new run"
            )
        if "peak_gemm" not in old and "peak_gemm" in record:
            known[name] = {**old, **{k: v for k, v in record.items() if k not in old}}


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not every platform has one
        return None


def _post_process(run: RunResult, settings: Settings, prices: PriceSheet, options: RunOptions) -> None:
    """The run's derived section, computed once from its cells (bench.analysis): cost, hosted-API lines (prompts
    built from the run's own datasets, here, so that no reader ever needs the data), size fits, utilisation,
    roofline, harness overhead and the quality gate."""
    from bench.analysis.derive import AnalysisOptions, derive

    run.derived = derive(
        run,
        AnalysisOptions(
            prices=prices,
            instance=options.instance,
            node_instances=dict(options.node_instances),
            threads_used=settings.threads,
            quality_gate=settings.quality_gate,
        ),
    )
