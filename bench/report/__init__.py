"""Results -> a self-contained HTML report with PNG charts, and a Markdown summary for CI.

    write_report(run, out_dir) -> Path of index.html

Writes into out_dir: index.html (inline CSS, charts as base64 data URIs: opens from disk with no network),
the chart PNGs, and report.md. Renders the run's cells and its derived section as they are: it computes nothing
(re-pricing a run is `recbench report --prices/--instance`, which derives the section again first).
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError
from bench.report import charts as charts_mod
from bench.report import html as html_mod
from bench.report import markdown as md_mod
from bench.report.headlines import Headline, headlines
from bench.report.view import build_views
from bench.results import RunResult, atomic_write_text, with_derived

__all__ = ["write_report", "Headline", "headlines"]


def _mapping_note(run: RunResult) -> str:
    c = run.derived.pricing
    nodes = c.node_instances if c is not None else {}
    per_node = ("; " + ", ".join(f"node {n} as {i}" for n, i in sorted(nodes.items()))) if nodes else ""
    if c is not None and c.instance:
        return f"this machine as {c.instance}" + per_node
    return f"vCPU share of {(c.local_default_instance if c else '') or 'the default instance'}" + per_node


def write_report(run: RunResult, out_dir: str | Path) -> Path:
    """Write index.html, the PNGs and report.md into out_dir; returns the index.html path."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{out}: cannot create the report directory ({exc.strerror}); pass a writable --out") from None
    run = with_derived(run)  # each cell with its derived rows, status and records, as every reader shows it
    views = build_views(run)
    note = _mapping_note(run)
    figures = [
        charts_mod.quality_vs_cost(views, out, note),
        charts_mod.throughput(views, out),
        charts_mod.batch_sweep(views, out),
        charts_mod.latency_cdf(views, out),
        charts_mod.memory(views, out),
        charts_mod.cost_by_instance(views, out, note),
        charts_mod.variants(views, out),
    ]
    heads = headlines(views)
    from bench.report.sections import build_sections

    extra = build_sections(run, views, out)  # scaling, cold start: each only when the run has that dimension
    index = out / "index.html"
    atomic_write_text(index, html_mod.render(run, views, figures, heads, sections=[s.html_block() for s in extra]))
    atomic_write_text(
        out / "report.md", md_mod.render(run, views, heads, index.name, sections=[s.markdown_block() for s in extra])
    )
    for path in (index, out / "report.md"):
        path.chmod(0o644)  # the atomic writer's temporary files are private; a report is meant to be shared
    return index
