"""The results contract: a versioned JSON per run and a long-form results.csv, written atomically.

JSON holds everything (config, per-cell metrics, timing summaries with raw samples, memory, provenance);
the CSV is one measured figure per row with the stable columns DESIGN.md fixes, plus columns appended
after them (add, never rename).
"""
from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.errors import BenchError, disk_full

SCHEMA_VERSION = 1
CSV_COLUMNS = ["run_id", "cell", "dataset", "split", "recommender", "variant", "device", "load",
               "metric", "value", "unit",
               # appended columns (stable from schema 1 on)
               "label", "status", "n", "ci95_low", "ci95_high", "flag",
               # provenance on every row, so a row quoted alone still says where it came from
               "code_version", "seed", "threads", "data_checksum", "machine", "packages",
               # where the cell ran: the executor, the node (machine) it ran on, and how many timed cells that
               # node was allowed at once (1 unless --cells-per-node)
               "executor", "node", "cells_per_node"]
LABELS = ("measured", "estimated", "projected", "cost-only")
STATUSES = ("ok", "failed", "gated")


@dataclass
class MetricRow:
    """One figure. `label` says how it was obtained: measured, estimated, projected or cost-only.

    `flag` is non-empty when the figure must not be trusted as is (e.g. "n<100: p99 unreliable").
    """

    metric: str
    value: float
    unit: str = ""
    load: str = ""
    n: int | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    flag: str = ""
    label: str = "measured"


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


@dataclass
class RunResult:
    run_id: str
    scenario: dict[str, Any]
    provenance: dict[str, Any]
    cells: list[CellResult] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    created_at: str = ""
    machine: dict[str, Any] = field(default_factory=dict)

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
KNOWN_SCHEMA_VERSIONS = (1,)

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


_REQUIRED = {"run": ("run_id", "cells"), "cell": ("cell", "dataset", "split", "recommender", "variant", "device"),
             "metric": ("metric", "value")}
_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list",
               bool: "a boolean", type(None): "null"}


def _check_fields(obj: Any, spec: dict[str, tuple], kind: str, at: str, where: str) -> None:
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
            expected = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in allowed if not (t is int and float in allowed)))
            raise BenchError(f"{where}: {at}.{name} is {_json_name(value)}, expected {expected}; {_FIX}")


def _json_name(value: Any) -> str:
    return "a boolean" if isinstance(value, bool) else _JSON_NAMES.get(type(value), type(value).__name__)


_FIX = "malformed results file: re-run `recbench run` to produce a valid one"


def validate(data: Any, where: str = "results") -> None:
    """Every field of a results dict has the type the schema gives it; one-line BenchError naming the first that
    does not. Run before any reader touches the data, so a malformed file never reaches the analysis."""
    if not isinstance(data, dict):
        raise BenchError(f"{where}: not a recbench results file (a JSON object is expected); pass a results.json "
                         "from `recbench run`")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise BenchError(f"{where}: not a recbench results file (no integer schema_version); pass a results.json "
                         "from `recbench run`")
    if version > SCHEMA_VERSION:
        raise BenchError(f"{where}: results schema {version} is newer than this recbench understands "
                         f"({SCHEMA_VERSION}); upgrade recbench")
    if version not in KNOWN_SCHEMA_VERSIONS:
        raise BenchError(f"{where}: results schema {version} is not one recbench ever wrote (known: "
                         f"{', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}); pass a results.json from `recbench run`")
    _check_fields(data, _schema_of(RunResult), "run", "the file", where)
    for i, cell in enumerate(data["cells"]):
        _check_fields(cell, _schema_of(CellResult), "cell", f"cells[{i}]", where)
        if cell.get("status", "ok") not in STATUSES:
            raise BenchError(f"{where}: cells[{i}].status is {cell['status']!r}, expected one of "
                             f"{', '.join(STATUSES)}; {_FIX}")
        for j, row in enumerate(cell.get("metrics", [])):
            _check_fields(row, _schema_of(MetricRow), "metric", f"cells[{i}].metrics[{j}]", where)
        for j, timing in enumerate(cell.get("timings", [])):
            if not isinstance(timing, dict):
                raise BenchError(f"{where}: cells[{i}].timings[{j}] is {_json_name(timing)}, not an object; {_FIX}")
            samples = timing.get("samples_ms")
            if samples is not None and (not isinstance(samples, list) or any(
                    isinstance(x, bool) or not isinstance(x, (int, float, type(None))) for x in samples)):
                raise BenchError(f"{where}: cells[{i}].timings[{j}].samples_ms is not a list of numbers; {_FIX}")


def from_dict(data: dict[str, Any], where: str = "results") -> RunResult:
    validate(data, where)
    version = data["schema_version"]
    try:
        cells = []
        for c in data["cells"]:
            c = dict(c)
            c["metrics"] = [MetricRow(**m) for m in c.get("metrics", [])]
            cells.append(CellResult(**c))
        return RunResult(run_id=data["run_id"], scenario=data.get("scenario", {}), provenance=data.get("provenance", {}),
                         cells=cells, schema_version=version, created_at=data.get("created_at", ""),
                         machine=data.get("machine", {}))
    except (KeyError, TypeError) as exc:
        raise BenchError(f"{where}: malformed results file ({exc}); re-run `recbench run` to produce a valid one") from None


def code_version(code: dict[str, Any] | None) -> str:
    """A code version as rows print it: the commit's first 12 hex digits, "-dirty" for uncommitted changes."""
    code = code or {}
    return str(code.get("commit") or "unknown")[:12] + ("-dirty" if code.get("dirty") else "")


def _machine_text(machine: dict[str, Any]) -> str:
    return (f"{machine.get('cpu_model', 'unknown')} x{machine.get('usable_cores', '?')} "
            f"[{machine.get('machine_fingerprint', '')}]")


def _run_provenance(run: RunResult) -> dict[str, str]:
    prov = run.provenance or {}
    packages = prov.get("packages") or {}
    return {"code_version": code_version(prov.get("code")), "machine": _machine_text(prov.get("machine") or {}),
            "packages": ";".join(f"{k}={v}" for k, v in packages.items() if v)}


def _cell_provenance(run: RunResult, cell: CellResult) -> dict[str, str]:
    prov = cell.provenance or {}
    threads = prov.get("threads")
    if isinstance(threads, dict):
        threads = threads.get("threads")
    executor = prov.get("executor") if isinstance(prov.get("executor"), dict) else {}
    out = {"seed": "" if prov.get("seed") is None else str(prov["seed"]),
           "threads": "" if threads is None else str(threads),
           "data_checksum": str(prov.get("data_checksum") or ""),
           "executor": str(executor.get("name") or ""), "node": str(prov.get("node") or ""),
           "cells_per_node": str(executor.get("cells_per_node") or "")}
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
    return [{k: v if k in NUMERIC_COLUMNS else neutralise_formula(v) for k, v in row.items()}
            for row in _csv_rows(run)]


def _csv_rows(run: RunResult) -> list[dict[str, Any]]:
    rows = []
    run_prov = _run_provenance(run)
    for c in run.cells:
        base = dict(run_id=run.run_id, cell=c.cell, dataset=c.dataset, split=c.split, recommender=c.recommender,
                    variant=c.variant, device=c.device, **{**run_prov, **_cell_provenance(run, c)})
        if c.status == "failed" and not c.metrics:
            rows.append({**base, "load": "", "metric": "status", "value": "", "unit": "", "label": c.label,
                         "status": "failed", "n": "", "ci95_low": "", "ci95_high": "", "flag": c.error or ""})
        for m in c.metrics:
            rows.append({**base, "load": m.load, "metric": m.metric, "value": _fmt(m.value), "unit": m.unit,
                         "label": m.label, "status": c.status, "n": "" if m.n is None else m.n,
                         "ci95_low": _fmt(m.ci95_low), "ci95_high": _fmt(m.ci95_high), "flag": m.flag})
    return rows


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v))


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers never see half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """As atomic_write_text, for bytes (chart PNGs). A full disk raises one-line DiskFullError naming the path
    and the space needed; the previous file, if any, is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, len(data)) from None
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared like any written file
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, len(data)) from None
        raise


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
        raise BenchError(f"{path}: not valid JSON ({exc.__class__.__name__}: {exc}); the file is truncated or "
                         "not a results file, re-run `recbench run`") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: not a recbench results file; pass a results.json from `recbench run`")
    return from_dict(data, where=str(path))
