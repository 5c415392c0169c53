"""One self-contained index.html: inline CSS, charts embedded as base64 PNG data URIs, no script, no network."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from bench import metrics
from bench.report.charts import Chart
from bench.report.headlines import Headline
from bench.report.view import QUALITY_LABEL, CellView, mib, num, same_sample_note, sig, usd
from bench.results import RunResult, pricing_record


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def css() -> str:
    return (resources.files("bench.report") / "style.css").read_text(encoding="utf-8")


def data_uri(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def _label(label: str) -> str:
    return f'<span class="label label-{esc(label)}">{esc(label)}</span>'


def _table(
    head: list[str],
    rows: Iterable[tuple[str, list[str]]],
    notes: dict[int, str] | None = None,
    text_cols: Iterable[int] = (),
) -> str:
    """rows: (tr class, already-escaped cell html); the first column is text, the rest numbers.

    `notes` maps a row index to a full-width line shown under that row (e.g. why a cell failed)."""
    text = {0, *text_cols}
    ths = "".join((f'<th class="text">{h}</th>' if i in text else f"<th>{h}</th>") for i, h in enumerate(head))
    out = [f'<div class="scroll"><table><thead><tr>{ths}</tr></thead><tbody>']
    for r, (cls, cells) in enumerate(rows):
        tds = "".join(
            f'<td class="{"text name" if i == 0 else "text" if i in text else "num"}">{c}</td>'
            for i, c in enumerate(cells)
        )
        out.append(f'<tr class="{esc(cls)}">{tds}</tr>')
        if notes and r in notes:
            out.append(f'<tr class="{esc(cls)} reason"><td class="text" colspan="{len(head)}">{notes[r]}</td></tr>')
    out.append("</tbody></table></div>")
    return "".join(out)


class Footnotes:
    """Numbered flags (e.g. unreliable p99) shown as 'value*N' with the text below the table."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def mark(self, flag: str) -> str:
        if not flag:
            return ""
        if flag not in self.notes:
            self.notes.append(flag)
        return f'<sup class="flag">*{self.notes.index(flag) + 1}</sup>'

    def html(self) -> str:
        if not self.notes:
            return ""
        items = "".join(f"<li>*{i + 1}: {esc(n)}</li>" for i, n in enumerate(self.notes))
        return f'<ul class="footnotes">{items}</ul>'


def _status(v: CellView) -> str:
    s = v.cell.status
    text = f'<span class="status-{esc(s)}">{esc(s)}</span>'
    if v.cell.label != "measured":
        text += " " + _label(v.cell.label)
    return text


def summary_table(views: list[CellView], notes: Footnotes) -> str:
    head = [
        "cell",
        "status",
        QUALITY_LABEL,
        "Recall@10",
        "users/s",
        "p50 ms",
        "p99 ms",
        "peak RSS",
        "footprint",
        "$/1k recs offline",
        "$/1k recs at SLO",
        "one-time $ (amortised $/1k)",
    ]
    rows: list[tuple[str, list[str]]] = []
    reasons: dict[int, str] = {}
    for v in views:
        if v.family in ("hosted", "derived"):
            continue
        if v.cost_only:
            q = r = "<small>not reported</small>"
        else:
            q = (
                sig(v.quality.value) + notes.mark(v.quality.flag) + notes.mark(same_sample_note(v, views))
                if v.quality
                else "–"
            )
            r = sig(v.recall.value) + notes.mark(v.recall.flag) if v.recall else "–"
        lat = {p: (sig(row.value) + notes.mark(row.flag)) for p, row in v.latency.items()}
        one = "–"
        if v.one_time_usd is not None and v.one_time_per_1k is not None:
            one = f"{usd(v.one_time_usd.value)} ({usd(v.one_time_per_1k.value)})"
        if v.cell.error:
            reasons[len(rows)] = f"<small>{esc(v.cell.status)}: {esc(v.cell.error)}</small>"
        rows.append(
            (
                v.cell.status,
                [
                    esc(v.name),
                    _status(v),
                    q,
                    r,
                    num(v.throughput.value) if v.throughput else "–",
                    lat.get("p50", "–"),
                    lat.get("p99", "–"),
                    mib(v.peak_rss.value) if v.peak_rss else "–",
                    mib(v.footprint.value) if v.footprint else "–",
                    usd(v.usd.value) if v.usd else "–",
                    usd(v.usd_server.value) if v.usd_server else "–",
                    one,
                ],
            )
        )
    return _table(head, rows, reasons)


def latency_table(views: list[CellView], notes: Footnotes) -> str:
    head = ["cell", "n", "p50 ms [95% CI]", "p90 ms [95% CI]", "p99 ms [95% CI]"]
    rows = []
    for v in views:
        if not v.latency:
            continue
        n = next((row.n for row in v.latency.values() if row.n), None)
        cells = [esc(v.name), str(n) if n else "–"]
        for p in ("p50", "p90", "p99"):
            row = v.latency.get(p)
            if row is None:
                cells.append("–")
                continue
            ci = (
                f" [{sig(row.ci95_low)}–{sig(row.ci95_high)}]"
                if row.ci95_low is not None and row.ci95_high is not None
                else ""
            )
            name = f"{p}*" if row.flag else p
            cells.append(
                f"{sig(row.value)}{ci}{notes.mark(row.flag)}"
                if not row.flag
                else f'<span title="{esc(row.flag)}">{name}: {sig(row.value)}{ci}</span>{notes.mark(row.flag)}'
            )
        rows.append((v.cell.status, cells))
    return _table(head, rows) if rows else '<p class="note">No single-stream latency figures in this run.</p>'


def cost_table(views: list[CellView]) -> str:
    instances = sorted({i for v in views for i in v.projected})
    head = ["cell", "measured $ / 1k (offline)", "measured $ / 1k (at SLO)", "energy $ / 1k"] + [
        f"projected {esc(i)}" for i in instances
    ]
    rows = []
    for v in views:
        if not v.ok or v.family in ("hosted", "derived"):
            continue
        energy = v.cell.metric(metrics.ENERGY_PER_1K)
        e = f"{usd(energy.value)} {_label(energy.label)}" if energy else "–"
        cells = [esc(v.name), usd(v.usd.value) if v.usd else "–", usd(v.usd_server.value) if v.usd_server else "–", e]
        cells += [usd(v.projected[i].value) if i in v.projected else "–" for i in instances]
        rows.append(("ok", cells))
    if not rows:
        return '<p class="note">No cost figures in this run.</p>'
    return (
        _table(head, rows) + '<p class="footnotes">Measured columns use this run\'s throughput; '
        "projected columns are the roofline model's output for hardware not measured "
        f"{_label('projected')}.</p>"
    )


def hosted_section(views: list[CellView]) -> str:
    hosted = [v for v in views if v.family == "hosted"]
    if not hosted:
        return '<p class="note">No hosted-API estimate in this run (no prompts could be built; see notes).</p>'
    head = [
        "provider entry",
        "input tokens / rec",
        "billed as cached",
        "output tokens / rec",
        "tokenizer",
        "$ / 1k recs",
        "price source, date",
    ]
    rows = []
    for v in hosted:
        price = v.cell.extras.get("cost", {}).get("price", {})
        w = v.cell.extras.get("hosted", {})
        exact = v.cell.extras.get("cost", {}).get("tokenizer_is_providers")
        tin, tc, tout = (v.cell.metric(m) for m in (metrics.HOSTED_INPUT, metrics.HOSTED_CACHED, metrics.HOSTED_OUTPUT))
        rows.append(
            (
                "ok",
                [
                    esc(v.variant),
                    num(tin.value) if tin else "–",
                    num(tc.value) if tc else "–",
                    num(tout.value) if tout else "–",
                    esc(w.get("tokenizer", "")) + ("" if exact else " <small>(estimate for this provider)</small>"),
                    f"{usd(v.hosted_usd.value)} {_label('estimated')}" if v.hosted_usd else "–",
                    esc(f"{price.get('source', '')}, {price.get('date', '')}"),
                ],
            )
        )
    w = hosted[0].cell.extras.get("hosted", {})
    s = w.get("settings", {})
    out = _table(head, rows, text_cols=(4, 6))
    out += (
        f"<p>Prompts built from {esc(s.get('n_prompts'))} users of {esc(w.get('dataset'))}/{esc(w.get('split'))}: "
        f"the instruction, the user's last {esc(s.get('history_len'))} training items and "
        f"{esc(s.get('n_candidates'))} candidates ({esc(s.get('candidate_source'))}); output = the top "
        f"{esc(s.get('k'))} ids and an explanation of {esc(s.get('explanation_words'))} words. "
        f"Tokens counted with {esc(w.get('tokenizer'))} ({esc(w.get('tokenizer_library'))}); "
        f"{esc(s.get('overhead'))}.</p>"
    )
    out += (
        f"<details><summary>Example prompt and answer</summary><pre>{esc(w.get('example_prompt', ''))}</pre>"
        f"<pre>{esc(w.get('example_output', ''))}</pre></details>"
    )
    return out


def failed_section(views: list[CellView]) -> str:
    bad = [v for v in views if v.cell.status in ("failed", "gated")]
    if not bad:
        return "<p>Every cell completed and passed the quality gate.</p>"
    items = "".join(
        f'<li><span class="status-{esc(v.cell.status)}">{esc(v.cell.status)}</span> '
        f"<b>{esc(v.name)}</b> — {esc(v.cell.error or 'no reason recorded')}</li>"
        for v in bad
    )
    return f"<ul>{items}</ul>"


def chart_html(chart: Chart) -> str:
    if chart.path is None:
        return f'<h3>{esc(chart.title)}</h3><p class="note">{esc(chart.note)}</p>'
    uri = data_uri(chart.path.read_bytes())
    note = f'<br><span class="note">{esc(chart.note)}</span>' if chart.note else ""
    return (
        f'<figure id="{esc(chart.key)}"><img src="{uri}" alt="{esc(chart.title)}">'
        f"<figcaption>{esc(chart.caption)}{note}</figcaption></figure>"
    )


def method_section(run: RunResult) -> str:
    c = pricing_record(run)
    amortise = c.get("amortise_over_recs")
    return f"""
<p><b>Measured cost</b>: <code>usd_per_1k_recs = hourly_price / (3600 × recs_per_second) × 1000</code>, with this
run's throughput (offline: best batch of the sweep; at SLO: the highest Poisson rate whose p99 met the SLO).
This machine is priced as {esc(_mapping_text(run))}.</p>
<p><b>Projected cost</b> (label <i>projected</i>, never mixed with measured): a roofline calibrated on this run.
Seconds per recommendation at the roofline are <code>max(flops_per_rec / peak_flops, bytes_per_rec / mem_bw)</code>;
the cell's efficiency is that bound on this machine over its measured seconds per recommendation (at most 1); on
another instance the bound with that instance's peak figures (for the cell's precision) is divided by the same
efficiency. Multi-GPU instances assume perfect data-parallel scaling; host overheads, PCIe transfers and
kernel-launch latency are ignored, so GPU projections are optimistic at small batch sizes.</p>
<p><b>Hosted-API cost</b> (label <i>estimated</i>): real prompts for the same recommendation, tokens counted with a
real tokenizer, times list prices per 1M input / cached input / output tokens.</p>
<p><b>One-time costs</b> (fit, item encoding, export/quantisation, distillation) are priced at the same hourly rate
and amortised over {esc(f"{amortise:,}" if isinstance(amortise, int) else amortise)} recommendations.
<b>Energy</b> cost applies ${esc(c.get("energy_usd_per_kwh"))}/kWh ({esc(c.get("energy_source"))}, {esc(c.get("energy_date"))})
to the cell's energy per recommendation, keeping that figure's label.</p>"""


def _mapping_text(run: RunResult) -> str:
    c = pricing_record(run)
    if c.get("instance"):
        return f"{c['instance']} (--instance): its whole hourly price"
    default = c.get("local_default_instance", "the default instance")
    return f"a per-vCPU share of {default} (price × threads used / vCPUs; pass --instance NAME to map it)"


def prices_section(run: RunResult, views: list[CellView]) -> str:
    c = pricing_record(run)
    if not c:
        return '<p class="note">No costs were computed for this run.</p>'
    used_hw = {v.cell.extras.get("cost", {}).get("instance") for v in views} | {i for v in views for i in v.projected}
    used_hw.discard(None)
    rows = []
    for name, hw in sorted(c.get("hardware", {}).items()):
        if name not in used_hw:
            continue
        peaks = ", ".join(f"{k} {sig(v / 1000)} T" for k, v in (hw.get("peak_gflops") or {}).items())
        rows.append(
            (
                "ok",
                [
                    esc(name),
                    f"${hw['usd_per_hour']:g}/h",
                    esc(hw.get("vcpus")),
                    esc(hw.get("gpu") or "–"),
                    esc(f"{hw.get('source')}, {hw.get('date')}"),
                    esc(f"{peaks}(FL)OP/s; {sig(hw['mem_bw_gbs']) if hw.get('mem_bw_gbs') else '–'} GB/s")
                    + f"<br><small>{esc(hw.get('peak_source', ''))}</small>",
                ],
            )
        )
    out = f"<p>Price sheet: <code>{esc(c.get('price_sheet'))}</code>.</p>"
    out += _table(
        ["hardware entry", "price", "vCPUs", "GPU", "source, date", "peak figures (projection only)"],
        rows,
        text_cols=(3, 4, 5),
    )
    hrows = [
        (
            "ok",
            [
                esc(n),
                f"${h['usd_per_1m_input_tokens']:g}",
                f"${h['usd_per_1m_cached_input_tokens']:g}"
                if h.get("usd_per_1m_cached_input_tokens") is not None
                else "–",
                f"${h['usd_per_1m_output_tokens']:g}",
                esc(f"{h.get('source')}, {h.get('date')}"),
            ],
        )
        for n, h in sorted(c.get("hosted", {}).items())
    ]
    if hrows:
        out += _table(
            ["hosted entry", "$ / 1M input", "$ / 1M cached input", "$ / 1M output", "source, date"],
            hrows,
            text_cols=(4,),
        )
    for note in c.get("notes", []):
        out += f'<p class="note">{esc(note)}</p>'
    return out


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """One level of nesting spelled out as `code.commit`; packages as `name version, ...`; deeper as JSON."""
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k == "packages" and isinstance(v, dict):
            out.append((key, ", ".join(f"{n} {ver}" for n, ver in sorted(v.items()))))
        elif isinstance(v, dict) and not prefix:
            out.extend(_flat(v, key + "."))
        elif isinstance(v, (dict, list, tuple)):
            out.append(
                (
                    key,
                    ", ".join(map(str, v))
                    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float)) for x in v)
                    else json.dumps(v, sort_keys=True, default=str),
                )
            )
        else:
            out.append((key, "" if v is None else str(v)))
    return out


def _kv(d: dict[str, Any]) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in _flat(d))
    return f'<dl class="kv">{items}</dl>'


def provenance_section(run: RunResult) -> str:
    prov = dict(run.provenance or {})
    per_cell: dict[str, set] = {}
    for c in run.cells:
        for key in ("data_checksum", "seed", "threads", "data_source", "node"):
            if isinstance(c.provenance, dict) and key in c.provenance:
                per_cell.setdefault(key, set()).add(json.dumps(c.provenance[key], sort_keys=True, default=str))
    out = f"<h3>Run</h3>{_kv({'run_id': run.run_id, 'created_at': run.created_at, 'schema_version': run.schema_version, **prov})}"
    if run.machine:
        out += f"<h3>Machine</h3>{_kv(run.machine)}"
    if per_cell:
        out += "<h3>Cells</h3>" + _kv({k: ", ".join(sorted(v)) for k, v in per_cell.items()})
    if run.scenario:
        out += f"<h3>Scenario</h3>{_kv({k: v for k, v in run.scenario.items() if k != 'cells'})}"
    return out


def render(
    run: RunResult,
    views: list[CellView],
    charts: list[Chart],
    heads: list[Headline],
    sections: Iterable[tuple[str, str, str]] = (),
) -> str:
    """`sections`: optional (anchor id, title, html) blocks a run's data calls for, shown after the costs."""
    summary_notes, latency_notes = Footnotes(), Footnotes()
    summary = summary_table(views, summary_notes)
    latency = latency_table(views, latency_notes)
    scenario = run.scenario.get("name", "") if isinstance(run.scenario, dict) else ""
    head_items = "".join(f"<li>{esc(h.text)}</li>" for h in heads) or "<li>No comparison possible in this run.</li>"
    excluded = [v.name for v in views if v.ok and v.cost_only]
    excluded_note = (
        (
            '<p class="note">Cost-only cells (random weights) appear in cost, speed and memory charts but '
            f"never in quality charts: {esc(', '.join(excluded))}.</p>"
        )
        if excluded
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>recbench report — {esc(run.run_id)}</title>
<style>{css()}</style></head>
<body>
<h1>recbench report</h1>
<p class="sub">run <b>{esc(run.run_id)}</b>{f" · scenario <b>{esc(scenario)}</b>" if scenario else ""} · {esc(run.created_at)}</p>
<h2 id="headlines">Headlines</h2>
<ul class="headlines">{head_items}</ul>
<h2 id="summary">Every cell</h2>
{summary}
{summary_notes.html()}
<h2 id="charts">Charts</h2>
{excluded_note}
{"".join(chart_html(c) for c in charts)}
<h2 id="costs">Cost detail</h2>
{cost_table(views)}
<h3>Hosted LLM APIs doing the same recommendation</h3>
{hosted_section(views)}
{"".join(f'<h2 id="{esc(key)}">{esc(title)}</h2>{chr(10)}{body}{chr(10)}' for key, title, body in sections)}<h2 id="latency">Latency</h2>
{latency}
{latency_notes.html()}
<h2 id="failed">Failed and gated cells</h2>
{failed_section(views)}
<h2 id="method">Method</h2>
{method_section(run)}
<h2 id="prices">Prices used</h2>
{prices_section(run, views)}
<h2 id="provenance">Provenance</h2>
{provenance_section(run)}
</body></html>
"""
