"""report.md: a short Markdown summary for CI step summaries ($GITHUB_STEP_SUMMARY) and pull-request comments."""

from __future__ import annotations

import html
from collections.abc import Iterable

from bench.report.headlines import Headline
from bench.report.view import QUALITY_LABEL, CellView, mib, num, same_sample_note, sig, usd
from bench.results import RunResult, pricing_record


def md_text(text: object) -> str:
    """Text from a results file made inert in Markdown: `&`, `<`, `>` become entities (so no HTML tag, comment or
    entity in a cell name, error or flag is ever interpreted), `|` is escaped (table cells) and line breaks
    become spaces. Renders as the original characters."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


_cell = md_text  # table cells


def render(
    run: RunResult,
    views: list[CellView],
    heads: list[Headline],
    html_name: str = "index.html",
    sections: Iterable[str] = (),
) -> str:
    """`sections`: optional Markdown blocks (each with its own heading) placed before the prices."""
    lines = [f"# recbench report: {md_text(run.run_id)}", ""]
    scenario = run.scenario.get("name") if isinstance(run.scenario, dict) else None
    if scenario:
        lines += [
            f"Scenario {md_text(scenario)}, {md_text(run.created_at)}. Full report with charts: `{html_name}`.",
            "",
        ]
    lines += ["## Headlines", ""] + [f"- {md_text(h.text)}" for h in heads] + [""]

    footnotes: list[str] = []

    def mark(flag: str) -> str:
        if not flag:
            return ""
        if flag not in footnotes:
            footnotes.append(flag)
        return f"\\*{footnotes.index(flag) + 1}"

    lines += [
        "## Cells",
        "",
        f"| cell | status | {QUALITY_LABEL} | users/s | p50 ms | p99 ms | peak RSS | $ / 1k recs |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in views:
        if v.family in ("hosted", "derived"):
            continue
        q = (
            "cost-only"
            if v.cost_only
            else (sig(v.quality.value) + mark(same_sample_note(v, views)) if v.quality else "–")
        )
        p50, p99 = v.latency.get("p50"), v.latency.get("p99")
        p99_txt = "–" if p99 is None else f"{sig(p99.value)}{mark(p99.flag)}"
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in [
                    v.name,
                    v.status_text,
                    q,
                    num(v.throughput.value) if v.throughput else "–",
                    f"{sig(p50.value)}{mark(p50.flag)}" if p50 else "–",
                    p99_txt,
                    mib(v.peak_rss.value) if v.peak_rss else "–",
                    usd(v.usd.value) if v.usd else "–",
                ]
            )
            + " |"
        )
    if footnotes:
        lines += [""] + [f"\\*{i + 1}: {md_text(n)}  " for i, n in enumerate(footnotes)]
    hosted = [v for v in views if v.family == "hosted" and v.hosted_usd is not None]
    if hosted:
        lines += ["", "## Hosted APIs (estimated)", "", "| entry | $ / 1k recs | source, date |", "|---|---:|---|"]
        for v in hosted:
            price = v.cell.extras.get("cost", {}).get("price", {})
            lines.append(
                f"| {_cell(v.variant)} | {usd(v.row('hosted_usd').value)} | "
                f"{_cell(price.get('source', ''))}, {_cell(price.get('date', ''))} |"
            )
    for block in sections:
        lines += ["", block.rstrip()]
    c = pricing_record(run)
    if c:
        used = {v.cell.extras.get("cost", {}).get("instance") for v in views}
        lines += ["", "## Prices used", ""]
        for name, hw in sorted(c.get("hardware", {}).items()):
            if name in used:
                lines.append(
                    f"- {md_text(name)}: ${hw['usd_per_hour']:g}/h ({md_text(hw.get('source'))}, "
                    f"{md_text(hw.get('date'))})"
                )
        mapping = (
            f"mapped with --instance {md_text(c['instance'])}"
            if c.get("instance")
            else f"per-vCPU share of {c.get('local_default_instance')}"
        )
        lines.append(f"- this machine: {mapping}; projections to other hardware are labelled projected")
    lines.append("")
    return "\n".join(lines)
