"""Terminal output: live progress while a run works, and a summary table at the end (`recbench list`: bench.listing)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from bench import metrics
from bench.measure.load_registry import SERVER, SINGLE_STREAM
from bench.results import CellResult, RunResult, pricing_record, with_derived
from bench.variants.registry import NO_VARIANT

if TYPE_CHECKING:
    from bench.scenario import CellSpec

console = Console(stderr=True, highlight=False)


class RunDisplay:
    """One line per finished cell plus a live status line with the running cell's phase and elapsed time."""

    def __init__(self, total: int, scenario: str) -> None:
        self.total, self.scenario, self.done = total, scenario, 0
        self._status: Status | None = None
        self._cell_started: dict[str, float] = {}  # by cell name: an executor may run several cells at once
        self._run_started = time.monotonic()

    def __enter__(self) -> RunDisplay:
        status = console.status(f"recbench run {self.scenario}: starting")
        status.__enter__()
        self._status = status
        return self

    def __exit__(self, *exc) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
        if exc[0] is None:
            console.print(f"[dim]{self.done}/{self.total} cells in {time.monotonic() - self._run_started:.0f} s[/dim]")

    def listener(self, event: str, spec: CellSpec, message: str) -> None:
        if event == "start":
            self._cell_started[spec.name] = time.monotonic()
            self._update(spec, message or "starting a fresh process")
        elif event == "progress":
            self._update(spec, message)
        elif event == "note":
            if self._status is not None:
                self._status.update(f"recbench run {self.scenario}: {message}")
        elif event == "done":
            self.done += 1
            took = time.monotonic() - self._cell_started.pop(spec.name, time.monotonic())
            style = "green" if message == "ok" else "yellow" if message == "gated" else "red"
            console.print(
                f"[{style}]{'✓' if message == 'ok' else '✗'}[/{style}] {escape(spec.name)} "
                f"[dim]({took:.1f} s)[/dim] {'' if message == 'ok' else escape(message)}"
            )

    def _update(self, spec: CellSpec, phase: str) -> None:
        if self._status is not None:
            elapsed = time.monotonic() - self._cell_started.get(spec.name, time.monotonic())
            self._status.update(
                f"\\[{self.done + 1}/{self.total}] {escape(spec.name)}: {escape(phase)} ({elapsed:.0f} s)"
            )


def _fmt(cell: CellResult, metric: str, load: str | None = None, scale: float = 1.0, digits: int = 4) -> str:
    row = cell.metric(metric, load)
    if row is None:
        return "–"
    text = f"{row.value * scale:.{digits}g}" if abs(row.value * scale) < 1e4 else f"{row.value * scale:,.0f}"
    return text + ("*" if row.flag else "")


def _best(cell: CellResult, metric: str) -> str:
    values = [m.value for m in cell.metrics if m.metric == metric]
    if not values:
        return "–"
    best = max(values)
    return f"{best:,.0f}" if best >= 100 else f"{best:.3g}"


def _short_names(cells: list[CellResult]) -> dict[str, str]:
    """Cell names without the parts every cell shares (dataset, split, device), so the table stays narrow."""
    parts = [c.cell.split("/") for c in cells]
    keep = [i for i in range(5) if len({p[i] for p in parts}) > 1 or i == 2]
    return {c.cell: "/".join(p[i] for i in keep if not (i == 3 and p[i] == NO_VARIANT)) for c, p in zip(cells, parts)}


def print_summary(run: RunResult, out_dir: Path) -> None:
    run = with_derived(run)  # each cell with its derived rows ($/1k recs) and the gate's status
    cells = run.cells
    hosted = run.derived.hosted  # listed below the table
    shared = {tuple(c.cell.split("/")[i] for i in (0, 1, 4)) for c in cells}
    where = " ".join("/".join(s) for s in shared) if len(shared) == 1 else "several datasets/splits"
    out = Console(highlight=False, width=max(140, Console().width))
    table = Table(title=f"recbench {run.run_id}  ({where})", title_justify="left")
    for col in (
        "cell",
        "status",
        "NDCG@10",
        "Recall@10",
        "fit s",
        "users/s best",
        "p50 ms",
        "p99 ms",
        "QPS@SLO",
        "RSS MiB",
        "$/1k recs",
    ):
        table.add_column(
            col,
            justify="left" if col in ("cell", "status") else "right",
            overflow="fold" if col == "cell" else "ellipsis",
        )  # a cell's name is never cut
    names = _short_names(cells)
    for c in cells:
        status = c.status if c.label != "cost-only" else f"{c.status} (cost-only)"
        table.add_row(
            escape(names[c.cell]),
            status,
            _fmt(c, "ndcg@10"),
            _fmt(c, "recall@10"),
            _fmt(c, "fit_s", digits=3),
            _best(c, "throughput_users_per_s"),
            _fmt(c, "latency_p50_ms", SINGLE_STREAM, digits=3),
            _fmt(c, "latency_p99_ms", SINGLE_STREAM, digits=3),
            _fmt(c, "max_qps_at_slo", SERVER, digits=3),
            _fmt(c, "peak_rss_bytes", scale=1 / 2**20, digits=3),
            _fmt(c, metrics.USD_PER_1K, digits=3),
        )
    out.print(table)
    mapping = pricing_record(run)
    out.print(
        "[dim]* a figure flagged as not to be trusted as is (e.g. a p99 from too few samples; see the flag "
        "column of results.csv). $/1k recs: measured throughput x "
        f"{mapping.get('instance') or 'a per-vCPU share of ' + str(mapping.get('local_default_instance'))} "
        "price (see the report for the price source and date).[/dim]"
    )
    for line in hosted:
        usd, tokens = line.metric(metrics.HOSTED_USD), line.metric(metrics.HOSTED_INPUT)
        if usd is not None and tokens is not None:
            out.print(
                f"hosted API {line.entry}: ${usd.value:.4g} per 1k recommendations ({usd.label}; "
                f"{tokens.value:,.0f} input tokens per request, {tokens.label} count)"
            )
    for c in cells:
        if c.status != "ok":
            out.print(f"[yellow]{escape(names[c.cell])}: {c.status}: {escape(str(c.error))}[/yellow]")
    out.print(f"results: {out_dir / 'results.json'}  {out_dir / 'results.csv'}")
    if (out_dir / "index.html").exists():
        out.print(f"report:  {out_dir / 'index.html'}")
