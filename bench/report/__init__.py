"""Results -> a self-contained HTML report with PNG charts, and a Markdown summary for CI.

    write_report(run, out_dir, prices=None) -> Path of index.html

Writes into out_dir: index.html (inline CSS, charts as base64 data URIs: opens from disk with no network),
the chart PNGs, and report.md. Costs are (re)computed when a price sheet is given or the run has none yet.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, Sequence

from bench import cost
from bench.errors import BenchError
from bench.report import charts as charts_mod
from bench.report import html as html_mod
from bench.report import markdown as md_mod
from bench.report.headlines import Headline, headlines
from bench.report.view import build_views
from bench.results import RunResult, atomic_write_text

__all__ = ["write_report", "main_report", "Headline", "headlines"]


def _mapping_note(run: RunResult) -> str:
    c = run.provenance.get("cost", {})
    nodes = c.get("node_instances") or {}
    per_node = ("; " + ", ".join(f"node {n} as {i}" for n, i in sorted(nodes.items()))) if nodes else ""
    if c.get("instance"):
        return f"this machine as {c['instance']}" + per_node
    return f"vCPU share of {c.get('local_default_instance', 'the default instance')}" + per_node


def write_report(run: RunResult, out_dir: str | Path, prices: cost.PriceSheet | str | Path | None = None, *,
                 instance: str | None = None, amortise_over_recs: int | None = None,
                 hosted: Sequence[cost.HostedWorkload] | Literal["auto"] | None = "auto") -> Path:
    """Write index.html, the PNGs and report.md into out_dir; returns the index.html path.

    With `prices` (a PriceSheet or a path), or when the run carries no costs yet, costs are computed first
    (`bench.cost.add_costs`, which updates `run` in place); the instance mapping defaults to the one the run was
    priced with.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{out}: cannot create the report directory ({exc.strerror}); pass a writable --out") from None
    previous = run.provenance.get("cost") if isinstance(run.provenance, dict) else None
    if prices is not None or instance is not None or amortise_over_recs is not None or not previous:
        previous = previous or {}
        cost.add_costs(run, prices, instance or previous.get("instance"), previous.get("threads_used"),
                       node_instances=previous.get("node_instances"), hosted=hosted, amortise_over_recs=amortise_over_recs)
    from bench.decoders import add_hosted_same_prompt
    add_hosted_same_prompt(run)  # from the prices just applied
    from bench.sizes import add_size_figures
    add_size_figures(run)  # cost against model size, from the costs just (re)computed; nothing with one size
    from bench.online import add_online_comparisons
    add_online_comparisons(run)  # replay cells: paired comparisons and frontier with the current code
    views = build_views(run)
    note = _mapping_note(run)
    figures = [charts_mod.quality_vs_cost(views, out, note), charts_mod.throughput(views, out),
               charts_mod.batch_sweep(views, out), charts_mod.latency_cdf(views, out), charts_mod.memory(views, out),
               charts_mod.cost_by_instance(views, out, note), charts_mod.variants(views, out)]
    heads = headlines(views)
    from bench.report.sections import build_sections
    extra = build_sections(run, views, out)  # scaling, cold start: each only when the run has that dimension
    index = out / "index.html"
    atomic_write_text(index, html_mod.render(
        run, views, figures, heads,
        sections=[s.html_block() for s in extra]))
    atomic_write_text(out / "report.md", md_mod.render(run, views, heads, index.name,
                                                       sections=[s.markdown_block() for s in extra]))
    for path in (index, out / "report.md"):
        path.chmod(0o644)  # the atomic writer's temporary files are private; a report is meant to be shared
    return index


def main_report(results_path: str | Path, out_dir: str | Path | None = None, prices_path: str | Path | None = None,
                instance: str | None = None, amortise_over_recs: int | None = None) -> int:
    """`recbench report RESULTS [--out DIR] [--prices FILE] [--instance NAME]`: 0 written, 2 bad input."""
    from bench import results
    try:
        run = results.load(Path(results_path))
        src = Path(results_path)
        target = Path(out_dir) if out_dir else (src if src.is_dir() else src.parent)
        sheet = cost.load_prices(prices_path) if prices_path else None
        index = write_report(run, target, sheet, instance=instance, amortise_over_recs=amortise_over_recs)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"report: {index}")
    print(f"summary: {index.parent / 'report.md'}")
    return 0
