"""The results contract: a versioned JSON per run and a long-form results.csv, written atomically.

JSON holds everything (config, per-cell measurements, timing summaries with raw samples, memory, provenance) and,
from schema 2 on, a typed `derived` section: what the analysis step (bench.analysis) computed from the cells once
at the end of the run (cost, utilisation and roofline, harness overhead, the quality gate, hosted-API lines, size
fits, online comparisons). The CSV is one figure per row with the stable columns the results contract fixes, plus
columns appended after them (add, never rename); derived figures appear there as they always did.

Schema history (read by `load`, older files upgraded on read):
  1  derived rows mixed into the cells' metrics, hosted-API lines and size fits as pseudo-cells
     (recommender `hosted-llm` / `size-fit`), the price context in provenance["cost"], no cell family;
  2  cells hold measurements only, with their `family`; everything derived lives in `derived`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bench import metrics as metrics_catalogue
from bench.atomic_io import atomic_write_bytes, atomic_write_text
from bench.errors import BenchError
from bench.measure.load_registry import OFFLINE
from bench.measure.row import MetricRow

#: atomic_write_text / atomic_write_bytes are bench.atomic_io's, re-exported for the callers that import them from here
__all__ = [
    "CellDerived",
    "CellResult",
    "Derived",
    "HostedLine",
    "MetricRow",
    "Pricing",
    "RunResult",
    "SizeFitGroup",
    "atomic_write_bytes",
    "atomic_write_text",
    "from_dict",
    "load",
    "split_derived",
    "to_dict",
    "with_derived",
    "write",
    "write_json",
]

SCHEMA_VERSION = 2
CSV_COLUMNS = [
    "run_id",
    "cell",
    "dataset",
    "split",
    "recommender",
    "variant",
    "device",
    "load",
    "metric",
    "value",
    "unit",
    # appended columns (stable from schema 1 on)
    "label",
    "status",
    "n",
    "ci95_low",
    "ci95_high",
    "flag",
    # provenance on every row, so a row quoted alone still says where it came from
    "code_version",
    "seed",
    "threads",
    "data_checksum",
    "machine",
    "packages",
    # where the cell ran: the executor, the node (machine) it ran on, and how many timed cells that
    # node was allowed at once (1 unless --cells-per-node)
    "executor",
    "node",
    "cells_per_node",
]
LABELS = ("measured", "estimated", "projected", "cost-only")
STATUSES = ("ok", "failed", "gated")


@dataclass
class CellResult:
    cell: str
    dataset: str
    split: str
    recommender: str
    variant: str
    device: str
    status: str = "ok"
    error: str | None = None
    #: the recommender's family as its registry gives it: classic | llm | test ("" when no registry knows it)
    family: str = ""
    #: "measured" for real models; "cost-only" for random-weight models whose quality is never reported
    label: str = "measured"
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[MetricRow] = field(default_factory=list)
    #: timing summaries, each with n, percentiles, intervals and its raw samples (see bench.measure.stats)
    timings: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    #: each evaluated user's own quality figures, encoded by bench.per_user (empty in older results)
    per_user: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str, load: str | None = None) -> MetricRow | None:
        for m in self.metrics:
            if m.metric == name and (load is None or m.load == load):
                return m
        return None

    def row(self, name: str, load: str | None = None) -> MetricRow:
        """The row `metric` finds, for a caller that selected this cell for having it: a missing row is a bug
        there, raised as a LookupError naming the cell, the figure and the load."""
        row = self.metric(name, load)
        if row is None:
            at = f" at load {load!r}" if load is not None else ""
            raise LookupError(f"cell {self.cell!r} has no {name!r} row{at}")
        return row

    def value(self, name: str, load: str | None = None) -> float:
        """`row(name, load).value`: the figure of a row the caller relies on being there."""
        return self.row(name, load).value

    def model_key(self) -> tuple:
        """Which cells hold "the same model" under different variants (the quality gate and fp32 comparisons):
        the recommender's own gate key where it recorded one (its ranking parameters, variant left out), else
        the cell name's recommender part with its [tag]; plus dataset, split and device."""
        parts = self.cell.split("/")
        model = self.extras.get("gate_key") or (parts[2] if len(parts) >= 5 else self.recommender)
        return self.dataset, self.split, model, self.device

    def add(self, metric: str, value: float, unit: str = "", **kw: Any) -> MetricRow:
        row = MetricRow(metric, float(value), unit, **kw)
        if self.label == "cost-only" and row.label == "measured":
            row.label = "cost-only"
        self.metrics.append(row)
        return row


#: recommender names schema 1 gave the pseudo-cells it wrote; the upgrade turns them into `derived` entries and the
#: CSV still names their rows so (its columns are stable)
HOSTED_RECOMMENDER = "hosted-llm"
HOSTED_DEVICE = "api"
SIZE_FIT_RECOMMENDER = "size-fit"
#: extras keys schema 1 cells carried for figures the analysis step derives (schema 2: CellDerived fields)
DERIVED_RECORDS = ("cost", "roofline", "quality_gate", "online_comparisons", "online_frontier")


@dataclass
class CellDerived:
    """What the analysis step derived for one measured cell: its rows (cost, utilisation, roofline, harness
    overhead, the share of fp32 quality retained, online comparisons) and the records that explain them."""

    metrics: list[MetricRow] = field(default_factory=list)
    #: "gated" when the cell fell below the quality gate (its cost does not count); None otherwise
    status: str | None = None
    error: str | None = None
    #: how the cell was priced (instance, hourly price, projection targets) or why it was not
    cost: dict[str, Any] | None = None
    roofline: dict[str, Any] | None = None
    quality_gate: dict[str, Any] | None = None
    online_comparisons: dict[str, Any] | None = None
    online_frontier: dict[str, Any] | None = None


class _Entry:
    """What a derived entry shares with a cell for compare and the CSV: rows, and always "ok" with no error and
    no timings."""

    metrics: list[MetricRow]

    @property
    def status(self) -> str:
        return "ok"

    @property
    def error(self) -> str | None:
        return None

    @property
    def timings(self) -> list[dict[str, Any]]:
        return []

    def metric(self, name: str, load: str | None = None) -> MetricRow | None:
        return next((m for m in self.metrics if m.metric == name and (load is None or m.load == load)), None)


@dataclass
class HostedLine(_Entry):
    """A hosted LLM doing the run's job on one dataset/split: prompts counted with a real tokenizer x one price
    entry. An estimate beside the measured cells, never a cell."""

    #: the key its rows carry in results.csv and compare ("DATASET/SPLIT/hosted-llm/ENTRY/api"), stable from schema 1
    name: str
    dataset: str
    split: str
    #: the price sheet's hosted entry
    entry: str
    label: str = "estimated"
    metrics: list[MetricRow] = field(default_factory=list)
    #: the prompts' token counts and settings (bench.cost.HostedWorkload's fields)
    workload: dict[str, Any] = field(default_factory=dict)
    #: the price entry and how the tokens were billed
    cost: dict[str, Any] = field(default_factory=dict)


@dataclass
class SizeFitGroup(_Entry):
    """Power laws of cost against model size over the cells of one group that differ only in their model
    (bench.sizes): exponents, R^2 and projections to larger models, labelled estimated / projected."""

    #: the key its rows carry in results.csv and compare ("DATASET/SPLIT/size-fit[TAG]/VARIANT/DEVICE")
    name: str
    dataset: str
    split: str
    #: the recommender whose sizes were fitted, and its architecture family where one was recorded
    recommender: str
    variant: str
    device: str
    family: str = ""
    label: str = "projected"
    metrics: list[MetricRow] = field(default_factory=list)
    model: str = ""
    assumptions: str = ""
    #: bench.sizes.SizeFit records: points, fit, projections, flags
    fits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Pricing:
    """The price context the run's costs were computed with (so a reader can say what a dollar figure assumes)."""

    price_sheet: str = ""
    #: --instance: the instance this machine was mapped to; None = a vCPU share of local_default_instance
    instance: str | None = None
    node_instances: dict[str, str] = field(default_factory=dict)
    local_default_instance: str = ""
    threads_used: int | None = None
    amortise_over_recs: int = 0
    energy_usd_per_kwh: float = 0.0
    energy_source: str = ""
    energy_date: str = ""
    #: the sheet's hardware and hosted entries, as recorded
    hardware: dict[str, Any] = field(default_factory=dict)
    hosted: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Derived:
    """Everything the analysis step (bench.analysis.derive) computed from the cells, once, at the end of a run."""

    pricing: Pricing | None = None
    #: per measured cell (by name); a cell with nothing derived is absent
    cells: dict[str, CellDerived] = field(default_factory=dict)
    hosted: list[HostedLine] = field(default_factory=list)
    size_fits: list[SizeFitGroup] = field(default_factory=list)
    #: how each cost grows with the catalogue (bench.growth.GrowthFit records), for runs over several catalogue
    #: sizes; None in a file from before schema 2, whose fits a reader makes from its cells
    growth: list[dict[str, Any]] | None = None


@dataclass
class RunResult:
    run_id: str
    scenario: dict[str, Any]
    provenance: dict[str, Any]
    cells: list[CellResult] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    created_at: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    derived: Derived = field(default_factory=Derived)

    def cell(self, name: str) -> CellResult | None:
        return next((c for c in self.cells if c.cell == name), None)

    def machine_of(self, cell: CellResult) -> dict[str, Any]:
        """The machine record (hardware, measured peaks) of the node that ran `cell`: `machine.nodes[node]`
        where the run has per-node records, else the run-wide `machine` (results written before executors)."""
        nodes = (self.machine or {}).get("nodes")
        node = (cell.provenance or {}).get("node") if isinstance(cell.provenance, dict) else None
        if isinstance(nodes, dict) and isinstance(nodes.get(node), dict):
            return nodes[node]
        return self.machine or {}


# ---------------------------------------------------------------- serialisation


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every reader can parse the file."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _clean(obj.item())
    return obj


def to_dict(run: RunResult) -> dict[str, Any]:
    return _clean(asdict(run))


#: schema versions this recbench reads (an older one would be upgraded here, field by field)
KNOWN_SCHEMA_VERSIONS = (1, 2)

_JSON_TYPES = {"str": (str,), "float": (int, float), "int": (int,), "bool": (bool,), "None": (type(None),)}


def _accepted(annotation: str) -> tuple[type, ...] | None:
    """JSON types a dataclass field's annotation allows ("str | None" -> str or null); None = anything."""
    out: tuple[type, ...] = ()
    for part in (p.strip() for p in annotation.split("|")):
        base = part.split("[", 1)[0]
        if base in ("dict", "list", "tuple"):
            out += (dict,) if base == "dict" else (list,)
        elif base == "float":
            out += _JSON_TYPES["float"] + _JSON_TYPES["None"]  # NaN and infinities are written as null
        elif base in _JSON_TYPES:
            out += _JSON_TYPES[base]
        else:
            return None  # Any, or a type this reader does not know: not checked here
    return out


def _schema_of(cls: type) -> dict[str, tuple[type, ...] | None]:
    """Field -> accepted JSON types, read off the dataclass itself, so a field added there is known here."""
    return {f.name: _accepted(str(f.type)) for f in fields(cls)}


_REQUIRED = {
    "run": ("run_id", "cells"),
    "cell": ("cell", "dataset", "split", "recommender", "variant", "device"),
    "metric": ("metric", "value"),
    "derived": (),
    "pricing": (),
    "cell_derived": (),
    "hosted": ("name", "dataset", "split", "entry"),
    "size_fit": ("name", "dataset", "split", "recommender", "variant", "device"),
}
_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    dict: "an object",
    list: "a list",
    bool: "a boolean",
    type(None): "null",
}


def _check_fields(obj: Any, spec: dict[str, tuple[type, ...] | None], kind: str, at: str, where: str) -> None:
    if not isinstance(obj, dict):
        raise BenchError(f"{where}: {at} is {_json_name(obj)}, not an object; {_FIX}")
    for name in _REQUIRED[kind]:
        if name not in obj:
            raise BenchError(f"{where}: {at} has no {name!r}; {_FIX}")
    for name, value in obj.items():
        if name not in spec:
            raise BenchError(f"{where}: {at} has an unknown field {name!r}; {_FIX}")
        allowed = spec[name]
        if allowed is None:
            continue
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):  # true is no number
            expected = " or ".join(
                dict.fromkeys(_JSON_NAMES[t] for t in allowed if not (t is int and float in allowed))
            )
            raise BenchError(f"{where}: {at}.{name} is {_json_name(value)}, expected {expected}; {_FIX}")


def _json_name(value: Any) -> str:
    return "a boolean" if isinstance(value, bool) else _JSON_NAMES.get(type(value), type(value).__name__)


_FIX = "malformed results file: re-run `recbench run` to produce a valid one"


def validate(data: Any, where: str = "results") -> None:
    """Every field of a results dict has the type the schema gives it; one-line BenchError naming the first that
    does not. Run before any reader touches the data, so a malformed file never reaches the analysis."""
    if not isinstance(data, dict):
        raise BenchError(
            f"{where}: not a recbench results file (a JSON object is expected); pass a results.json from `recbench run`"
        )
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise BenchError(
            f"{where}: not a recbench results file (no integer schema_version); pass a results.json from `recbench run`"
        )
    if version > SCHEMA_VERSION:
        raise BenchError(
            f"{where}: results schema {version} is newer than this recbench understands "
            f"({SCHEMA_VERSION}); upgrade recbench"
        )
    if version not in KNOWN_SCHEMA_VERSIONS:
        raise BenchError(
            f"{where}: results schema {version} is not one recbench ever wrote (known: "
            f"{', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}); pass a results.json from `recbench run`"
        )
    run_spec = _schema_of(RunResult)
    if version == 1:
        run_spec = {k: v for k, v in run_spec.items() if k != "derived"}  # schema 1 had no derived section
    _check_fields(data, run_spec, "run", "the file", where)
    for i, cell in enumerate(data["cells"]):
        _check_fields(cell, _schema_of(CellResult), "cell", f"cells[{i}]", where)
        if cell.get("status", "ok") not in STATUSES:
            raise BenchError(
                f"{where}: cells[{i}].status is {cell['status']!r}, expected one of {', '.join(STATUSES)}; {_FIX}"
            )
        _check_rows(cell.get("metrics", []), f"cells[{i}].metrics", where)
        for j, timing in enumerate(cell.get("timings", [])):
            if not isinstance(timing, dict):
                raise BenchError(f"{where}: cells[{i}].timings[{j}] is {_json_name(timing)}, not an object; {_FIX}")
            samples = timing.get("samples_ms")
            if samples is not None and (
                not isinstance(samples, list)
                or any(isinstance(x, bool) or not isinstance(x, (int, float, type(None))) for x in samples)
            ):
                raise BenchError(f"{where}: cells[{i}].timings[{j}].samples_ms is not a list of numbers; {_FIX}")
    if "derived" in data:
        _validate_derived(data["derived"], where)


def _check_rows(rows: Any, at: str, where: str) -> None:
    if not isinstance(rows, list):
        raise BenchError(f"{where}: {at} is {_json_name(rows)}, not a list; {_FIX}")
    for j, row in enumerate(rows):
        _check_fields(row, _schema_of(MetricRow), "metric", f"{at}[{j}]", where)


def _validate_derived(derived: Any, where: str) -> None:
    _check_fields(derived, _schema_of(Derived), "derived", "derived", where)
    if derived.get("pricing") is not None:
        _check_fields(derived["pricing"], _schema_of(Pricing), "pricing", "derived.pricing", where)
    cells = derived.get("cells", {})
    if not isinstance(cells, dict):
        raise BenchError(f"{where}: derived.cells is {_json_name(cells)}, not an object; {_FIX}")
    for name, entry in cells.items():
        _check_fields(entry, _schema_of(CellDerived), "cell_derived", f"derived.cells[{name!r}]", where)
        _check_rows(entry.get("metrics", []), f"derived.cells[{name!r}].metrics", where)
    for key, cls, kind in (("hosted", HostedLine, "hosted"), ("size_fits", SizeFitGroup, "size_fit")):
        entries = derived.get(key, [])
        if not isinstance(entries, list):
            raise BenchError(f"{where}: derived.{key} is {_json_name(entries)}, not a list; {_FIX}")
        for i, entry in enumerate(entries):
            _check_fields(entry, _schema_of(cls), kind, f"derived.{key}[{i}]", where)
            _check_rows(entry.get("metrics", []), f"derived.{key}[{i}].metrics", where)


def from_dict(data: dict[str, Any], where: str = "results") -> RunResult:
    """A RunResult from a results dict of any known schema (schema 1 is upgraded to 2 first; see the module doc)."""
    validate(data, where)
    if data["schema_version"] == 1:
        data = upgrade_1_to_2(data)
        validate(data, where)
    try:
        cells = []
        for c in data["cells"]:
            c = dict(c)
            c["metrics"] = [MetricRow(**m) for m in c.get("metrics", [])]
            cells.append(CellResult(**c))
        return RunResult(
            run_id=data["run_id"],
            scenario=data.get("scenario", {}),
            provenance=data.get("provenance", {}),
            cells=cells,
            schema_version=SCHEMA_VERSION,
            created_at=data.get("created_at", ""),
            machine=data.get("machine", {}),
            derived=_derived_from_dict(data.get("derived") or {}),
        )
    except (KeyError, TypeError) as exc:
        raise BenchError(
            f"{where}: malformed results file ({exc}); re-run `recbench run` to produce a valid one"
        ) from None


def _rows(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "metrics": [MetricRow(**m) for m in entry.get("metrics", [])]}


def _derived_from_dict(d: dict[str, Any]) -> Derived:
    return Derived(
        pricing=Pricing(**d["pricing"]) if d.get("pricing") is not None else None,
        cells={name: CellDerived(**_rows(e)) for name, e in (d.get("cells") or {}).items()},
        hosted=[HostedLine(**_rows(e)) for e in d.get("hosted", [])],
        size_fits=[SizeFitGroup(**_rows(e)) for e in d.get("size_fits", [])],
        growth=d.get("growth"),
    )


# ---------------------------------------------------------------- schema 1 -> 2

#: the families recbench's registries gave each recommender when schema 1 was current (schema 1 did not record
#: them); a name not listed reads as "other"
SCHEMA1_FAMILIES = {
    **dict.fromkeys(
        (
            "pop",
            "itemknn",
            "userknn",
            "biasedmf",
            "ease",
            "ials",
            "stale",
            "refit",
            "ials-foldin",
            "itemknn-incremental",
            "ease-periodic",
        ),
        "classic",
    ),
    **dict.fromkeys(
        (
            "llm-two-tower",
            "llm-pairwise",
            "llm-rerank",
            "llm-hybrid",
            "llm-explain",
            "llm-generative",
            "llm-decoder-rank",
            "two-tower-incremental",
            "two-tower-finetune",
        ),
        "llm",
    ),
    **dict.fromkeys(("noop", "failing", "sleeping"), "test"),
}


def upgrade_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 results dict as schema 2 (a new dict; the input is not changed): pseudo-cells become derived
    entries, derived rows and records leave the cells for `derived.cells`, a gated status moves there too,
    provenance["cost"] becomes derived.pricing, and each cell gets its family."""
    cells, hosted, size_fits = [], [], []
    per_cell: dict[str, dict[str, Any]] = {}
    for raw in data["cells"]:
        cell = dict(raw)
        extras = dict(cell.get("extras") or {})
        if cell["recommender"] == HOSTED_RECOMMENDER:
            hosted.append(
                {
                    "name": cell["cell"],
                    "dataset": cell["dataset"],
                    "split": cell["split"],
                    "entry": cell["variant"],
                    "label": cell.get("label", "estimated"),
                    "metrics": cell.get("metrics", []),
                    "workload": extras.get("hosted", {}),
                    "cost": extras.get("cost", {}),
                }
            )
            continue
        if cell["recommender"] == SIZE_FIT_RECOMMENDER:
            params, fit = cell.get("params") or {}, extras.get("size_fit") or {}
            size_fits.append(
                {
                    "name": cell["cell"],
                    "dataset": cell["dataset"],
                    "split": cell["split"],
                    "recommender": params.get("fitted_recommender", ""),
                    "family": params.get("family", ""),
                    "variant": cell["variant"],
                    "device": cell["device"],
                    "label": cell.get("label", "projected"),
                    "metrics": cell.get("metrics", []),
                    "model": fit.get("model", ""),
                    "assumptions": fit.get("assumptions", ""),
                    "fits": fit.get("fits", []),
                }
            )
            continue
        measured: list[dict[str, Any]] = []
        derived_rows: list[dict[str, Any]] = []
        for row in cell.get("metrics", []):
            is_derived = metrics_catalogue.is_derived(row["metric"], row.get("load", ""))
            (derived_rows if is_derived else measured).append(row)
        entry: dict[str, Any] = {"metrics": derived_rows}
        for key in DERIVED_RECORDS:
            if key in extras:
                entry[key] = extras.pop(key)
        if cell.get("status") == "gated":
            entry["status"], entry["error"] = "gated", cell.get("error")
            cell["status"], cell["error"] = "ok", None
        if derived_rows or len(entry) > 1:
            per_cell[cell["cell"]] = entry
        cell["metrics"], cell["extras"] = measured, extras
        cell.setdefault("family", SCHEMA1_FAMILIES.get(str(cell["recommender"]).split("[")[0], "other"))
        cells.append(cell)
    provenance = dict(data.get("provenance") or {})
    pricing = provenance.pop("cost", None)
    return {
        **data,
        "schema_version": 2,
        "provenance": provenance,
        "cells": cells,
        "derived": {"pricing": pricing, "cells": per_cell, "hosted": hosted, "size_fits": size_fits},
    }


def pricing_record(run: RunResult) -> dict[str, Any]:
    """The run's pricing as a plain record ({} when no cost was computed), for tables that print its fields."""
    return asdict(run.derived.pricing) if run.derived.pricing is not None else {}


def best_throughput(cell: CellResult) -> MetricRow | None:
    """The offline load's best `throughput_users_per_s` row (the batch-sweep maximum): what cost, utilisation and
    the roofline are computed from, and what reports show as a cell's throughput."""
    rows = [
        m
        for m in cell.metrics
        if m.metric == metrics_catalogue.THROUGHPUT
        and m.load in (OFFLINE, "")
        and m.value is not None
        and math.isfinite(m.value)
        and m.value > 0
    ]
    return max(rows, key=lambda m: m.value) if rows else None


# ---------------------------------------------------------------- cells with their derived figures


def with_derived(run: RunResult) -> RunResult:
    """The run as readers show it: each cell (a copy) carries its derived rows after its measured ones, the gate's
    status, and the records explaining them in `extras` (cost, roofline, quality_gate, ...); `derived.cells` is
    then empty, the rest of `derived` (pricing, hosted lines, size fits) kept. Idempotent; `run` is not changed."""
    if not run.derived.cells:
        return run
    cells = []
    for cell in run.cells:
        d = run.derived.cells.get(cell.cell)
        if d is None:
            cells.append(cell)
            continue
        # rows of a derived kind already on the cell (left by an analysis function run on it in place) give way
        # to the derived section's, so merging never shows a figure twice
        measured = [m for m in cell.metrics if not metrics_catalogue.is_derived(m.metric, m.load)]
        extras = {**cell.extras, **{k: getattr(d, k) for k in DERIVED_RECORDS if getattr(d, k) is not None}}
        cells.append(
            replace(
                cell,
                metrics=[*measured, *d.metrics],
                extras=extras,
                status=d.status or cell.status,
                error=d.error if d.status else cell.error,
            )
        )
    return replace(run, cells=cells, derived=replace(run.derived, cells={}))


def split_derived(cells: list[CellResult]) -> tuple[list[CellResult], dict[str, CellDerived]]:
    """The inverse of with_derived for cells that carry derived rows and records (as the analysis functions leave
    them): copies holding measurements only, and each cell's derived part."""
    measured_cells, per_cell = [], {}
    for cell in cells:
        keep = [m for m in cell.metrics if not metrics_catalogue.is_derived(m.metric, m.load)]
        rows = [m for m in cell.metrics if metrics_catalogue.is_derived(m.metric, m.load)]
        records = {k: cell.extras[k] for k in DERIVED_RECORDS if k in cell.extras}
        gated = cell.status == "gated"
        if rows or records or gated:
            per_cell[cell.cell] = CellDerived(
                metrics=rows, status="gated" if gated else None, error=cell.error if gated else None, **records
            )
        measured_cells.append(
            replace(
                cell,
                metrics=keep,
                extras={k: v for k, v in cell.extras.items() if k not in DERIVED_RECORDS},
                status="ok" if gated else cell.status,
                error=None if gated else cell.error,
            )
        )
    return measured_cells, per_cell


def code_version(code: dict[str, Any] | None) -> str:
    """A code version as rows print it: the commit's first 12 hex digits, "-dirty" for uncommitted changes."""
    code = code or {}
    return str(code.get("commit") or "unknown")[:12] + ("-dirty" if code.get("dirty") else "")


def _machine_text(machine: dict[str, Any]) -> str:
    return (
        f"{machine.get('cpu_model', 'unknown')} x{machine.get('usable_cores', '?')} "
        f"[{machine.get('machine_fingerprint', '')}]"
    )


def _run_provenance(run: RunResult) -> dict[str, str]:
    prov = run.provenance or {}
    packages = prov.get("packages") or {}
    return {
        "code_version": code_version(prov.get("code")),
        "machine": _machine_text(prov.get("machine") or {}),
        "packages": ";".join(f"{k}={v}" for k, v in packages.items() if v),
    }


def _cell_provenance(run: RunResult, cell: CellResult) -> dict[str, str]:
    prov = cell.provenance or {}
    threads = prov.get("threads")
    if isinstance(threads, dict):
        threads = threads.get("threads")
    executor: dict[str, Any] = prov["executor"] if isinstance(prov.get("executor"), dict) else {}
    out = {
        "seed": "" if prov.get("seed") is None else str(prov["seed"]),
        "threads": "" if threads is None else str(threads),
        "data_checksum": str(prov.get("data_checksum") or ""),
        "executor": str(executor.get("name") or ""),
        "node": str(prov.get("node") or ""),
        "cells_per_node": str(executor.get("cells_per_node") or ""),
    }
    node_machine = run.machine_of(cell).get("machine")
    if isinstance(node_machine, dict):  # the node that ran this cell, which on a cluster is not the driver's
        out["machine"] = _machine_text(node_machine)
    return out


#: a text cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP's list, plus
#: a line feed, which a spreadsheet may strip like the carriage return)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
#: columns written by _fmt or as integers: numbers, never formulas (a leading "-" there is a minus sign)
NUMERIC_COLUMNS = frozenset({"value", "n", "ci95_low", "ci95_high"})


def neutralise_formula(text: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading single quote (shown as text).

    A carriage return inside a field also becomes a line feed: the writer quotes fields holding its own line
    terminator ("\n") but not a lone "\r", which readers take for the end of the row.
    """
    if not isinstance(text, str):
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_rows(run: RunResult) -> list[dict[str, Any]]:
    """results.csv's rows. Text columns are neutralised (neutralise_formula): a dataset file named
    `=cmd|...csv` must not become a formula in the user's spreadsheet."""
    return [{k: v if k in NUMERIC_COLUMNS else neutralise_formula(v) for k, v in row.items()} for row in _csv_rows(run)]


def _csv_rows(run: RunResult) -> list[dict[str, Any]]:
    """Measured cells with their derived rows, then hosted-API lines, then size fits: the rows and the order
    schema 1's files had (its pseudo-cells' rows keep their cell, recommender, variant and device columns)."""
    rows = []
    run_prov = _run_provenance(run)
    no_cell_prov = {"seed": "", "threads": "", "data_checksum": "", "executor": "", "node": "", "cells_per_node": ""}
    for c in with_derived(run).cells:
        base = dict(
            run_id=run.run_id,
            cell=c.cell,
            dataset=c.dataset,
            split=c.split,
            recommender=c.recommender,
            variant=c.variant,
            device=c.device,
            **{**run_prov, **_cell_provenance(run, c)},
        )
        if c.status == "failed" and not c.metrics:
            rows.append(
                {
                    **base,
                    "load": "",
                    "metric": "status",
                    "value": "",
                    "unit": "",
                    "label": c.label,
                    "status": "failed",
                    "n": "",
                    "ci95_low": "",
                    "ci95_high": "",
                    "flag": c.error or "",
                }
            )
        rows += [_csv_row(base, m, c.status) for m in c.metrics]
    entries: list[tuple[HostedLine | SizeFitGroup, str, str]] = [
        *((h, HOSTED_RECOMMENDER, HOSTED_DEVICE) for h in run.derived.hosted),
        *((f, SIZE_FIT_RECOMMENDER, f.device) for f in run.derived.size_fits),
    ]
    for entry, recommender, device in entries:
        variant = entry.entry if isinstance(entry, HostedLine) else entry.variant
        base = dict(
            run_id=run.run_id,
            cell=entry.name,
            dataset=entry.dataset,
            split=entry.split,
            recommender=recommender,
            variant=variant,
            device=device,
            **{**run_prov, **no_cell_prov},
        )
        rows += [_csv_row(base, m, "ok") for m in entry.metrics]
    return rows


def _csv_row(base: dict[str, Any], m: MetricRow, status: str) -> dict[str, Any]:
    return {
        **base,
        "load": m.load,
        "metric": m.metric,
        "value": _fmt(m.value),
        "unit": m.unit,
        "label": m.label,
        "status": status,
        "n": "" if m.n is None else m.n,
        "ci95_low": _fmt(m.ci95_low),
        "ci95_high": _fmt(m.ci95_high),
        "flag": m.flag,
    }


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v))


def write_json(run: RunResult, path: Path) -> Path:
    atomic_write_text(path, json.dumps(to_dict(run), indent=1, sort_keys=False) + "\n")
    return path


def write(run: RunResult, out_dir: Path) -> tuple[Path, Path]:
    """Write results.json and results.csv into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    json_path, csv_path = out_dir / "results.json", out_dir / "results.csv"
    write_json(run, json_path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(run))
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path


def load(path: Path) -> RunResult:
    """Read a results.json (or a run directory holding one). Bad files raise one-line BenchErrors."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise BenchError(f"{path}: no such results file; pass the results.json (or run directory) of a `recbench run`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(
            f"{path}: not valid JSON ({exc.__class__.__name__}: {exc}); the file is truncated or "
            "not a results file, re-run `recbench run`"
        ) from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: not a recbench results file; pass a results.json from `recbench run`")
    return from_dict(data, where=str(path))
