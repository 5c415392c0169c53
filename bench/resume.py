"""`recbench run --resume RUN_DIR`: finish an interrupted run (or rerun its failed cells) in place.

A run directory holds results.json, rewritten after every cell. While cells run it holds the cells as measured;
once the run finishes, run-level figures (costs, utilisation, the quality gate) are derived into it, and the
cells as measured are kept beside it in measured.json, so a resume can derive those figures again from
scratch. A resume keeps every ok cell, runs the missing and failed ones, and refuses (one line, exit 2) a
run whose scenario, settings, code version or data differ from this invocation's: figures measured under
two configurations must never meet in one results file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import results as results_mod
from bench.errors import BenchError, ConfigError
from bench.results import RunResult
from bench.scenario import SCENARIO_DIR, Scenario

#: beside results.json: the cells before run-level figures were derived (written when the cells are done)
MEASURED_FILE = "measured.json"
#: settings a resume may change: where the data lives, and how long a cell may take (to rerun timed-out cells)
MAY_DIFFER = ("data_dir", "cell_timeout_s")


@dataclass
class Resumable:
    run: RunResult  # the kept cells (ok as measured), run-level fields as they were
    out_dir: Path
    todo: list[int]  # scenario indices of the cells to run


def finished(run: RunResult) -> bool:
    """Whether run-level figures were derived (the runner records the run's wall time last)."""
    return "wall_s" in (run.provenance or {})


def _check_dir(run_dir: Path) -> None:
    if not (Path(run_dir) / "results.json").is_file():
        raise ConfigError(f"--resume {run_dir}: no results.json there; pass the run directory of a `recbench run`")


def scenario_of(run_dir: Path) -> str:
    """The scenario an earlier run ran: a packaged scenario by its name (wherever this install keeps it), a
    user's file by its path while it still exists, else the name."""
    _check_dir(run_dir)
    try:
        run = results_mod.load(run_dir)
    except BenchError as exc:
        raise ConfigError(f"--resume {run_dir}: {exc}") from None
    name = str((run.scenario or {}).get("name") or "")
    source = Path(str((run.scenario or {}).get("source") or ""))
    if source.parent.resolve() == SCENARIO_DIR and source.stem == name:
        return name
    return str(source) if source.name and source.is_file() else name


def load(run_dir: Path, scenario: Scenario, code: dict[str, Any]) -> Resumable:
    """The run in `run_dir`, checked against `scenario` and this code version, with the cells left to run."""
    run_dir = Path(run_dir)
    _check_dir(run_dir)
    try:
        run = results_mod.load(run_dir)
        if finished(run):  # results.json has derived figures: start again from the cells as measured
            if not (run_dir / MEASURED_FILE).is_file():
                raise ConfigError(
                    f"--resume {run_dir}: the run finished without keeping its measured cells "
                    f"({MEASURED_FILE}); start a new run"
                )
            run = results_mod.load(run_dir / MEASURED_FILE)
    except ConfigError:
        raise
    except BenchError as exc:
        raise ConfigError(f"--resume {run_dir}: {exc}") from None
    problem = mismatch(run, scenario, code)
    if problem:
        raise ConfigError(
            f"cannot resume {run_dir}: {problem}; resume with the same scenario, options and code, or start a new run"
        )
    wanted = {c.name for c in scenario.cells}
    run.cells = [c for c in run.cells if c.cell in wanted and c.status != "failed"]
    kept = {c.cell for c in run.cells}
    todo = [i for i, c in enumerate(scenario.cells) if c.name not in kept]
    return Resumable(run, run_dir, todo)


def mismatch(run: RunResult, scenario: Scenario, code: dict[str, Any]) -> str:
    """The first difference that makes `run` another configuration than `scenario` under `code`; "" if none."""
    saved = run.scenario or {}
    mine = scenario.describe()
    if saved.get("name") != mine["name"]:
        return f"it ran scenario {saved.get('name')!r}, this is {mine['name']!r}"
    if list(saved.get("cells") or []) != mine["cells"]:
        return (
            f"its cells differ from this scenario's ({len(saved.get('cells') or [])} vs {len(mine['cells'])}: "
            "another --recommenders or --dataset)"
        )
    old, new = saved.get("settings") or {}, mine["settings"]
    for key in sorted(set(old) | set(new)):
        if key in MAY_DIFFER:
            continue
        a, b = _plain(old.get(key)), _plain(new.get(key))
        if a != b:
            return f"its {key} is {a!r}, this run's {b!r}"
    then, now = results_mod.code_version(run.provenance.get("code")), results_mod.code_version(code)
    if then != now:
        return f"it was measured with code version {then}, this is {now}"
    return ""


def check_data(run: RunResult, checksums: dict[str, str]) -> None:
    """Refuse a resume whose data differ from the data the kept cells were measured on."""
    for cell in run.cells:
        theirs = (cell.provenance or {}).get("data_checksum")
        mine = checksums.get(cell.dataset)
        if theirs and mine and theirs != mine:
            raise ConfigError(
                f"cannot resume: dataset {cell.dataset} has checksum {mine[:16]} here, the run's cells "
                f"were measured on {theirs[:16]}; point --data-dir at the same data, or start a new run"
            )


def record_session(run: RunResult, cells: list[str], executor: dict[str, Any]) -> None:
    """Say in the run's provenance when it was resumed, which cells this session ran and where."""
    prov = run.provenance
    previous_wall_s = prov.pop("wall_s", None)  # results.json is "as measured" again until this session ends
    prov.setdefault("resumed", []).append(
        {
            "at_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cells": cells,
            "executor": executor,
            "previous_wall_s": previous_wall_s,
        }
    )


def _plain(value: Any) -> Any:
    """Tuples and lists compare alike (JSON has no tuples)."""
    return list(value) if isinstance(value, (list, tuple)) else value
