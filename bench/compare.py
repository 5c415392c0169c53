"""`recbench compare BASE HEAD`: a regression verdict between two results files, for CI.

Cells are matched by name. Two kinds of gate:

* hard gates on deterministic figures, which a code change alone moves:
  quality (ndcg@K, recall@K, hit@K, mrr@K, precision@K, coverage@K, quality_retained_vs_fp32; higher is better)
  within an absolute tolerance, per-user figures compared on the users both runs evaluated, paired, where both
  files keep them (a drop is a regression only when its bootstrap 95% interval lies below zero); rating error
  (rmse, mae; lower is better) within an absolute tolerance;
  footprint bytes, FLOPs and bytes per recommendation, and token counts (lower is better) within a relative
  tolerance; a cell that was ok and is now failed or gated.
* timing gates on the raw samples of both files (every timing with `samples_ms`): one-sided Mann-Whitney U
  (head slower than base) with p < alpha AND a median ratio of at least `timing_min_ratio` — significance alone
  flags trivial shifts on big samples, effect size alone flags noise. Soft by default (a warning), hard with
  strict_timing. Timing across different machines is compared only for what it is worth: the verdict says so.

Everything else (throughput and latency summaries, memory peaks, dollars) is shown as information.
A measured cell of base that is missing from head is a regression (its figures can no longer be checked). Each
cell is compared with its derived rows (cost, quality retained, ...) and the gate's status; the run's hosted-API
lines and size fits are compared like cells, under the names results.csv gives them, but never count as measured
cells in common. Files of any known schema compare alike (schema 1 is upgraded on read).
Exit codes: 0 no regression, 1 regression, 2 bad input (unreadable / malformed / newer-schema file, no measured
cell in common).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import metrics
from bench.errors import BenchError
from bench.results import CellResult, HostedLine, MetricRow, RunResult, SizeFitGroup, with_derived

#: a cell, or a derived entry compared like one (the same figures: status, label, metrics, timings)
Unit = CellResult | HostedLine | SizeFitGroup

HIGHER_BETTER_EXTRA = {metrics.QUALITY_RETAINED}
RATING_METRICS = {"rmse", "mae"}
DETERMINISTIC_METRICS = {
    metrics.FOOTPRINT,
    metrics.FLOPS_PER_REC,
    "flops_per_user",
    "flops_per_request",
    metrics.BYTES_PER_REC,
    "bytes_per_user",
    "bytes_per_request",
}


@dataclass(frozen=True)
class Tolerances:
    quality_abs: float = 0.005  # NDCG/Recall/... may drop by at most this much
    rating_abs: float = 0.005  # RMSE/MAE may rise by at most this much
    deterministic_rel: float = 0.01  # footprint / FLOPs / token counts may grow by at most 1%
    timing_alpha: float = 0.01  # one-sided Mann-Whitney U significance
    timing_min_ratio: float = 1.10  # and the median must be at least 10% slower
    timing_min_samples: int = 8  # fewer samples on either side: not tested


@dataclass
class Finding:
    cell: str
    metric: str
    base: float | None
    head: float | None
    kind: str  # quality | rating | deterministic | timing | status | cell | info
    verdict: str  # ok | regression | warning | improved | changed | info
    detail: str = ""
    n: int | None = None  # users a quality figure's comparison rests on (paired: those both runs evaluated)

    @property
    def delta(self) -> float | None:
        if self.base is None or self.head is None:
            return None
        return self.head - self.base


@dataclass
class Verdict:
    base_run: str
    head_run: str
    strict_timing: bool
    tolerances: Tolerances
    cells_compared: int
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == "regression"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == "warning"]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0

    def headline(self) -> str:
        gated = sum(f.kind != "info" for f in self.findings)
        if self.regressions:
            names = "; ".join(f"{f.cell} {f.metric}" for f in self.regressions[:5])
            more = f" (+{len(self.regressions) - 5} more)" if len(self.regressions) > 5 else ""
            return f"REGRESSION: {len(self.regressions)} figure(s) regressed: {names}{more}"
        tail = f", {len(self.warnings)} timing warning(s)" if self.warnings else ""
        return f"OK: {gated} gated figure(s) across {self.cells_compared} cell(s) within tolerance{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_run": self.base_run,
            "head_run": self.head_run,
            "strict_timing": self.strict_timing,
            "tolerances": asdict(self.tolerances),
            "cells_compared": self.cells_compared,
            "exit_code": self.exit_code,
            "headline": self.headline(),
            "notes": self.notes,
            "findings": [{**asdict(f), "delta": f.delta} for f in self.findings],
        }

    def markdown(self, all_rows: bool = False) -> str:
        rows = [f for f in _ordered(self.findings) if all_rows or f.verdict not in ("ok", "info")]
        from bench.report.markdown import md_text  # names and errors come from the files: never raw HTML

        lines = [
            f"## recbench compare: {md_text(self.base_run)} -> {md_text(self.head_run)}",
            "",
            f"**{md_text(self.headline())}**",
            "",
        ]
        lines += [f"- {md_text(n)}" for n in self.notes] + ([""] if self.notes else [])
        if rows:
            lines += ["| cell | figure | base | head | delta | verdict | detail |", "|---|---|---:|---:|---:|---|---|"]
            for f in rows:
                lines.append(
                    "| "
                    + " | ".join(
                        md_text(s)
                        for s in (f.cell, f.metric, _fmt(f.base), _fmt(f.head), _fmt_delta(f), f.verdict, f.detail)
                    )
                    + " |"
                )
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- comparison


def _kind(metric: str) -> str:
    if metrics.is_quality(metric) or metric in HIGHER_BETTER_EXTRA:
        return "quality"
    if metric in RATING_METRICS:
        return "rating"
    if metric in DETERMINISTIC_METRICS or "tokens" in metric:
        return "deterministic"
    return "info"


def _keyed_rows(cell: Unit) -> dict[tuple[str, str, int], MetricRow]:
    """(metric, load, occurrence): a metric may repeat within a load (e.g. one throughput row per batch size)."""
    seen: dict[tuple[str, str], int] = {}
    out = {}
    for m in cell.metrics:
        k = (m.metric, m.load)
        i = seen.get(k, 0)
        seen[k] = i + 1
        out[(m.metric, m.load, i)] = m
    return out


def _keyed_timings(cell: Unit) -> dict[tuple[str, str, int], list[float]]:
    seen: dict[tuple[str, str], int] = {}
    out = {}
    for t in cell.timings:
        if not isinstance(t, dict) or not t.get("samples_ms"):
            continue
        k = (str(t.get("load", "")), str(t.get("name", "")))
        i = seen.get(k, 0)
        seen[k] = i + 1
        out[(k[0], k[1], i)] = t["samples_ms"]
    return out


def _label(metric: str, load: str, occurrence: int) -> str:
    s = metric if not load else f"{metric} [{load}]"
    return s if occurrence == 0 else f"{s} #{occurrence + 1}"


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _gate(cell: str, name: str, kind: str, base: float | None, head: float | None, tol: Tolerances) -> Finding:
    if base is None and head is None:
        return Finding(cell, name, None, None, kind, "info", "no value in either file")
    if head is None:
        return Finding(cell, name, base, None, kind, "regression", "missing in head")
    if base is None:
        return Finding(cell, name, None, head, kind, "changed", "new in head")
    if kind == "quality":
        if head < base - tol.quality_abs:
            return Finding(cell, name, base, head, kind, "regression", f"dropped more than {tol.quality_abs:g}")
        return Finding(
            cell,
            name,
            base,
            head,
            kind,
            "improved" if head > base + tol.quality_abs else "ok",
            f"tolerance -{tol.quality_abs:g}",
        )
    if kind == "rating":
        if head > base + tol.rating_abs:
            return Finding(cell, name, base, head, kind, "regression", f"rose more than {tol.rating_abs:g}")
        return Finding(
            cell,
            name,
            base,
            head,
            kind,
            "improved" if head < base - tol.rating_abs else "ok",
            f"tolerance +{tol.rating_abs:g}",
        )
    # deterministic, lower is better, relative tolerance
    limit = abs(base) * tol.deterministic_rel
    if head > base + limit:
        return Finding(cell, name, base, head, kind, "regression", f"grew more than {tol.deterministic_rel:.0%}")
    return Finding(
        cell,
        name,
        base,
        head,
        kind,
        "improved" if head < base - limit else "ok",
        f"tolerance +{tol.deterministic_rel:.0%}",
    )


def _quality(
    cell: str, name: str, b: CellResult, h: CellResult, b_row: MetricRow, h_row: MetricRow, tol: Tolerances
) -> Finding:
    """A quality figure of the same cell in two runs, on the users both runs evaluated, paired per user where
    both kept per-user figures (bench.analysis.paired): a drop beyond the tolerance is a regression only when
    the interval of the paired difference lies below zero, so a different user sample cannot raise a false
    alarm. Without per-user figures, the means as recorded (the gate as before), said to be unpaired; over
    different users (sample sizes differ) a drop is only a warning, since sampling alone can move a mean."""
    from bench.analysis.paired import compare_cells

    c = compare_cells(h, b, b_row.metric)
    if c is None or not c.paired:
        found = _gate(cell, name, "quality", _finite(b_row.value), _finite(h_row.value), tol)
        if b_row.n != h_row.n:
            found.detail += f"; unpaired means over different users (n={b_row.n} vs {h_row.n})"
            if found.verdict == "regression":
                found.verdict = "warning"
                found.detail += ": cannot tell a drop from sampling without per-user figures"
        elif b_row.n:
            found.n = b_row.n
        return found
    if not c.comparable:
        return Finding(
            cell, name, c.b, c.a, "quality", "warning", "no user in common between the two runs: not compared", n=0
        )
    users = f"{c.n:,} users both runs evaluated" + ("" if c.same_users else f" (base {c.n_b:,}, head {c.n_a:,})")
    if c.identical:
        return Finding(cell, name, c.b, c.a, "quality", "ok", f"identical for each of the {users}", n=c.n)
    assert c.diff_ci95 is not None  # a comparable paired comparison rests on n > 0 users: it has its interval
    low, high = c.diff_ci95
    detail = f"paired over the {users}: 95% interval {low:+.4f} to {high:+.4f}; tolerance -{tol.quality_abs:g}"
    if c.diff < -tol.quality_abs:
        verdict = "regression" if high < 0 else "warning"
        if verdict == "warning":
            detail += ": the drop is not distinguishable from zero over these users"
    else:
        verdict = "improved" if c.diff > tol.quality_abs and low > 0 else "ok"
    return Finding(cell, name, c.b, c.a, "quality", verdict, detail, n=c.n)


def _timing(cell: str, name: str, base: list[float], head: list[float], tol: Tolerances, strict: bool) -> Finding:
    from scipy.stats import mannwhitneyu

    b = np.asarray([x for x in base if x is not None], dtype=np.float64)
    h = np.asarray([x for x in head if x is not None], dtype=np.float64)
    b, h = b[np.isfinite(b)], h[np.isfinite(h)]
    if min(len(b), len(h)) < tol.timing_min_samples:
        return Finding(
            cell,
            name,
            _med(b),
            _med(h),
            "timing",
            "info",
            f"too few samples to test (n={len(b)} vs {len(h)}, need {tol.timing_min_samples})",
        )
    mb, mh = float(np.median(b)), float(np.median(h))
    r = mh / mb if mb > 0 else math.inf
    p_slower = float(mannwhitneyu(h, b, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(h, b, alternative="less").pvalue)
    detail = f"median x{r:.3g}, Mann-Whitney p(slower)={p_slower:.2g}, n={len(b)}/{len(h)}"
    if p_slower < tol.timing_alpha and r >= tol.timing_min_ratio:
        return Finding(cell, name, mb, mh, "timing", "regression" if strict else "warning", detail)
    if p_faster < tol.timing_alpha and r <= 1 / tol.timing_min_ratio:
        return Finding(cell, name, mb, mh, "timing", "improved", f"median x{r:.3g}, p(faster)={p_faster:.2g}")
    return Finding(cell, name, mb, mh, "timing", "ok", detail)


def _med(a: np.ndarray) -> float | None:
    return float(np.median(a)) if len(a) else None


def _machine_id(run: RunResult) -> str | None:
    """The hardware fingerprint the provenance records (else the CPU model), to warn on cross-machine timing."""
    prov = run.provenance or {}
    recorded = prov.get("machine")
    machine: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    for value in (machine.get("machine_fingerprint"), machine.get("cpu_model"), prov.get("cpu_model"), prov.get("cpu")):
        if isinstance(value, str) and value:
            return value
    return None


def compare(
    base: RunResult, head: RunResult, tolerances: Tolerances | None = None, strict_timing: bool = False
) -> Verdict:
    tol = tolerances or Tolerances()
    base_cells, head_cells = _units(base), _units(head)
    common = [name for name in base_cells if name in head_cells]
    # derived entries (hosted-API estimates, size fits) are computed from the measured cells and the price sheet:
    # two runs that share only those share no measurement
    measured = [name for name in common if not _derived(base_cells[name])]
    # sharing only derived cells is still the same scenario: base's measured cells are then all missing (a
    # regression, below); sharing nothing at all, or a base with nothing measured, is nothing to compare
    if not measured and not (common and _count(base.cells)):
        raise BenchError(
            f"no measured cell in common between {base.run_id} ({_count(base.cells)} measured cells) "
            f"and {head.run_id} ({_count(head.cells)}); compare runs of the same scenario"
        )
    verdict = Verdict(base.run_id, head.run_id, strict_timing, tol, len(measured))
    machine_b, machine_h = _machine_id(base), _machine_id(head)
    if machine_b and machine_h and machine_b != machine_h:
        verdict.notes.append(
            f"the runs come from different machines ({machine_b} vs {machine_h}): timing "
            "differences mix code and hardware"
        )
    for name, b in base_cells.items():
        if name in head_cells:
            continue
        if _derived(b) or b.status == "failed":
            why = "derived figures" if _derived(b) else "failed in base"
            verdict.findings.append(Finding(name, "cell", None, None, "cell", "info", f"{why}; missing in head"))
        else:  # every gated figure of a cell that ran is gone: dropped from the scenario, or the run stopped early
            verdict.findings.append(
                Finding(
                    name,
                    "cell",
                    None,
                    None,
                    "cell",
                    "regression",
                    f"{b.status} in base, missing in head: none of its figures can be checked",
                )
            )
    for name in head_cells:
        if name not in base_cells:
            verdict.findings.append(Finding(name, "cell", None, None, "cell", "info", "new in head"))

    for name in common:
        b, h = base_cells[name], head_cells[name]
        if b.status == "ok" and h.status != "ok":
            verdict.findings.append(
                Finding(
                    name,
                    "status",
                    None,
                    None,
                    "status",
                    "regression",
                    f"ok -> {h.status}: {h.error or 'no reason recorded'}",
                )
            )
        elif b.status != "ok" and h.status == "ok":
            verdict.findings.append(Finding(name, "status", None, None, "status", "improved", f"{b.status} -> ok"))
        if h.status == "failed":
            continue  # a failed head cell has no figures to compare: its status says it all
        b_rows, h_rows = _keyed_rows(b), _keyed_rows(h)
        for key in list(b_rows) + [k for k in h_rows if k not in b_rows]:
            metric, load, occ = key
            kind = _kind(metric)
            label = _label(metric, load, occ)
            bv = _finite(b_rows[key].value) if key in b_rows else None
            hv = _finite(h_rows[key].value) if key in h_rows else None
            if kind == "info":
                verdict.findings.append(Finding(name, label, bv, hv, "info", "info"))
            elif b.label == "cost-only" and kind == "quality":
                continue  # never reported for random-weight models
            elif (
                kind == "quality"
                and bv is not None
                and hv is not None
                and load == ""
                and occ == 0
                and isinstance(b, CellResult)
                and isinstance(h, CellResult)
            ):
                verdict.findings.append(_quality(name, label, b, h, b_rows[key], h_rows[key], tol))
            else:
                verdict.findings.append(_gate(name, label, kind, bv, hv, tol))
        b_t, h_t = _keyed_timings(b), _keyed_timings(h)
        for key in b_t:
            if key in h_t:
                load, tname, occ = key
                verdict.findings.append(
                    _timing(name, _label(f"median ms: {tname}", load, occ), b_t[key], h_t[key], tol, strict_timing)
                )
    return verdict


def _units(run: RunResult) -> dict[str, Unit]:
    """Every cell of the run with its derived rows, then its hosted-API lines and size fits, by name."""
    units: dict[str, Unit] = {c.cell: c for c in with_derived(run).cells}
    entries: list[HostedLine | SizeFitGroup] = [*run.derived.hosted, *run.derived.size_fits]
    for entry in entries:
        units[entry.name] = entry
    return units


def _derived(unit: Unit) -> bool:
    """A derived entry computed from other cells (a hosted-API cost estimate, a model-size fit), not measured."""
    return isinstance(unit, (HostedLine, SizeFitGroup))


def _count(cells: list[CellResult]) -> int:
    return len(cells)


# ---------------------------------------------------------------- printing

_ORDER = {"regression": 0, "warning": 1, "improved": 2, "changed": 3, "ok": 4, "info": 5}


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (_ORDER.get(f.verdict, 9), f.cell, f.metric))


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.4g}"
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"


def _fmt_delta(f: Finding) -> str:
    d = f.delta
    if d is None:
        return "–"
    if f.kind in ("deterministic", "timing", "info") and f.base:
        return f"{d:+.4g} ({d / abs(f.base):+.1%})"
    return f"{d:+.4f}"


STYLE = {"regression": "bold red", "warning": "yellow", "improved": "green", "changed": "cyan", "ok": "", "info": "dim"}


def print_verdict(verdict: Verdict, console=None, all_rows: bool = False) -> None:
    from rich.console import Console, JustifyMethod
    from rich.table import Table

    console = console or Console()
    rows = [f for f in _ordered(verdict.findings) if all_rows or f.verdict not in ("ok", "info")]
    table = Table(title=f"recbench compare: {verdict.base_run} -> {verdict.head_run}", show_lines=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("cell", "left"),
        ("figure", "left"),
        ("base", "right"),
        ("head", "right"),
        ("delta", "right"),
        ("verdict", "left"),
        ("detail", "left"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify, overflow="fold", no_wrap=col in ("cell", "base", "head", "delta"))
    for f in rows:
        table.add_row(
            f.cell,
            f.metric,
            _fmt(f.base),
            _fmt(f.head),
            _fmt_delta(f),
            f.verdict,
            f.detail,
            style=STYLE.get(f.verdict, ""),
        )
    if rows:
        console.print(table)
    for note in verdict.notes:
        console.print(f"note: {note}", style="yellow")
    hidden = len(verdict.findings) - len(rows)
    if hidden and not all_rows:
        console.print(
            f"{hidden} figure(s) within tolerance or informational not shown (--all to show them)", style="dim"
        )
    console.print(verdict.headline(), style="bold red" if verdict.regressions else "bold green")


def main_compare(
    base_path: str | Path,
    head_path: str | Path,
    strict_timing: bool = False,
    tolerances: Tolerances | None = None,
    *,
    all_rows: bool = False,
    json_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    console=None,
) -> int:
    """The CLI's `recbench compare`: prints the table and verdict; 0 ok, 1 regression, 2 bad input."""
    from bench import results

    try:
        base = results.load(Path(base_path))
        head = results.load(Path(head_path))
        verdict = compare(base, head, tolerances, strict_timing=strict_timing)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_verdict(verdict, console, all_rows)
    try:
        if json_path:
            results.atomic_write_text(Path(json_path), json.dumps(verdict.to_dict(), indent=1) + "\n")
        if markdown_path:
            with open(markdown_path, "a", encoding="utf-8") as f:  # appends: $GITHUB_STEP_SUMMARY is shared
                f.write(verdict.markdown())
    except OSError as exc:
        print(
            f"error: cannot write the verdict ({exc.strerror}: {exc.filename}); pass a writable path", file=sys.stderr
        )
        return 2
    return verdict.exit_code
