"""The report's model-size section: cost against parameters and the decoder's explanation step.

Shown only when the run has them: size fits (bench.sizes, two or more model sizes of one recommender) or a
generating recommender (cells reporting `new_tokens_per_rec`). The chart is log-log: measured points filled and
named, the fitted power law solid over the measured range and dotted beyond it, projections as hollow diamonds
labelled `projected`, and the sizes whose fp32 weights would not fit this machine's memory shaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullFormatter

from bench.measure.load_registry import OFFLINE, SINGLE_STREAM
from bench.metrics import USD_PER_1K
from bench.report.charts import INSTANCE_COLOURS, Chart, _figure, _save
from bench.report.html import Footnotes, _label, _table, esc
from bench.report.sections import Section
from bench.report.view import CellView, mib, num, sig, usd
from bench.results import RunResult
from bench.sizes import (
    BYTES_PER_PARAMETER,
    DECODER_RANK,
    GENERATED_TOKENS,
    MIN_SIZES_TO_PROJECT,
    OUTPUT_TOKENS_PER_S,
    PROJECT_TO,
    SizeFit,
    fits_from_run,
    parameters_of,
    size_label,
)
from bench.variants.registry import FP32

#: what the chart draws, in panel order: (metric, axis label, value formatter)
PANELS = (
    (USD_PER_1K, "US$ per 1,000 recommendations (offline, log)", usd),
    (
        "latency_p50_ms",
        "single-user p50 latency, ms (log)",
        lambda x: f"{sig(x / 1e3)} s" if x >= 1e4 else f"{sig(x)} ms",
    ),
)
METRIC_TITLES = {
    USD_PER_1K: "$ / 1k recs (offline)",
    "latency_p50_ms": "p50 latency (single-stream)",
    "encode_items_s": "item encoding (one-time)",
    "footprint_bytes": "static footprint",
}
MODEL_NAMES = {
    "minilm-cost-only": "MiniLM-L6",
    "bert-base-cost-only": "BERT-base",
    "bert-large-cost-only": "BERT-large",
    "gpt2-small-cost-only": "GPT-2 small",
    "minilm": "MiniLM-L6",
}
__all__ = ["section", "size_chart"]


def _fmt(metric: str, value: float) -> str:
    if metric.startswith("usd"):
        return usd(value)
    if metric.endswith("_bytes"):
        return mib(value)
    if metric.endswith("_ms"):
        return f"{sig(value / 1e3)} s" if value >= 1e4 else f"{sig(value)} ms"
    if metric.endswith("_s"):
        return f"{sig(value)} s"
    return sig(value)


def _group_name(f: SizeFit) -> str:
    family = f" {f.family}" if getattr(f, "family", "") else ""
    return f"{f.recommender}{family} {f.variant}" + (f" ({f.device})" if f.device != "cpu" else "")


def _short_model(model: str) -> str:
    return MODEL_NAMES.get(model, Path(model).name or model)


def size_chart(fits: list[SizeFit], out_dir: Path, memory_total_bytes: int | None, name: str = "size_fit") -> Chart:
    chart = Chart(
        name,
        "Cost against model size: measured, fitted, projected",
        "Log-log. Filled points: measured on this machine (cost-only models: random weights, real cost). "
        "Solid line: the fitted power law y = a (N/1e8)^b over the measured sizes; dotted: the same law "
        "extrapolated. Hollow diamonds: projected at 1B and 7B parameters (label projected, never measured). "
        "Shaded: sizes whose fp32 weights alone exceed this machine's memory. A fit over fewer than "
        f"{MIN_SIZES_TO_PROJECT} sizes is drawn over its measured sizes only.",
    )
    panels = [(m, label, fmt) for m, label, fmt in PANELS if any(f.metric == m for f in fits)]
    if not panels:
        chart.note = "No cost or latency fit against model size in this run: chart skipped."
        return chart
    fig = _figure(max(9.0, 6.2 * len(panels)), 5.8)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.24, wspace=0.28)
    groups = sorted({_group_name(f) for f in fits})
    colours = {g: INSTANCE_COLOURS[i % len(INSTANCE_COLOURS)] for i, g in enumerate(groups)}
    top = max(PROJECT_TO.values()) * 1.6
    for j, (metric, ylabel, fmt) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        mine = [f for f in fits if f.metric == metric]
        lo = min(p.parameters for f in mine for p in f.points) / 1.8
        ax.set_xlim(lo, top)
        if memory_total_bytes:
            limit = memory_total_bytes / BYTES_PER_PARAMETER[FP32]
            if limit < top:
                ax.axvspan(max(limit, lo), top, color="0.88", zorder=0)
                ax.text(
                    max(limit, lo) * 1.08,
                    0.04,
                    f"{FP32} weights exceed memory",
                    rotation=90,
                    transform=ax.get_xaxis_transform(),
                    fontsize=7.5,
                    color="0.35",
                    va="bottom",
                    ha="left",
                )
        for gi, f in enumerate(mine):
            c = colours[_group_name(f)]
            xs = np.array([p.parameters for p in f.points], dtype=float)
            ys = np.array([p.value for p in f.points], dtype=float)
            ax.scatter(xs, ys, s=46, color=c, zorder=4, edgecolor="white", linewidth=0.7)
            inside = np.geomspace(f.fit.min_parameters, f.fit.max_parameters, 40)
            ax.plot(inside, f.fit.predict(inside), color=c, lw=1.6, zorder=3)
            if f.projections:  # a fit over too few sizes is drawn over its measured range only
                beyond = np.geomspace(f.fit.max_parameters, max(PROJECT_TO.values()), 40)
                ax.plot(beyond, f.fit.predict(beyond), color=c, lw=1.3, ls=":", zorder=3)
            for label, value in f.projections.items():
                size = PROJECT_TO[label]
                ax.scatter([size], [value], s=70, marker="D", facecolor="white", edgecolor=c, linewidth=1.6, zorder=5)
                # the largest size sits at the right edge: its label goes left of the diamond, the others right
                right_edge = size == max(PROJECT_TO.values())
                ax.annotate(
                    f"projected {label}: {fmt(value)}",
                    (size, value),
                    xytext=(-8 if right_edge else 8, 7 if gi % 2 == 0 else -13),
                    textcoords="offset points",
                    ha="right" if right_edge else "left",
                    fontsize=7.5,
                    color=c,
                    zorder=6,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85),
                )
            if f is mine[0]:  # every group has the same sizes: name them once
                for p in f.points:
                    ax.annotate(
                        _short_model(p.model),
                        (p.parameters, p.value),
                        xytext=(5, -11),
                        textcoords="offset points",
                        fontsize=7.5,
                        color="0.25",
                    )
        values = [p.value for f in mine for p in f.points] + [v for f in mine for v in f.projections.values()]
        ax.set_ylim(min(values) / 2.5, max(values) * 3.0)  # room for the labels above the highest diamond
        ticks = [t for t in (1e7, 3e7, 1e8, 3e8, 1e9, 3e9, 1e10) if lo <= t <= top]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(ticks, [size_label(t) for t in ticks])
        ax.set_xlabel("transformer parameters N (log)")
        ax.set_ylabel(ylabel)
        ax.set_title(METRIC_TITLES.get(metric, metric), fontsize=10.5)
        ax.grid(True, which="major", alpha=0.3)
    handles: list[Artist] = [Line2D([], [], color=colours[g], lw=1.6, marker="o", label=g) for g in groups]
    handles += [
        Line2D([], [], color="0.3", ls=":", label="fit extrapolated"),
        Line2D([], [], color="0.3", marker="D", markerfacecolor="white", ls="", label="projected (not measured)"),
    ]
    if memory_total_bytes:
        handles.append(Patch(color="0.88", label=f"{FP32} weights exceed memory"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    fig.suptitle(chart.title, fontsize=12)
    chart.path = _save(fig, out_dir, f"{name}.png")
    chart.shown = [p.cell for f in fits for p in f.points]
    return chart


#: a fit table's projection cell for a fit over too few sizes to project from
NOT_PROJECTED = "–"
NOT_PROJECTED_NOTE = (
    f"A fit over fewer than {MIN_SIZES_TO_PROJECT} sizes projects nothing ({NOT_PROJECTED}): any "
    "line fits two points, so its exponent is shown, flagged as rough, and never extended."
)


def projection_html(text: str, flag: str, notes: Footnotes) -> str:
    """A fit table's projection cell in HTML: labelled projected, with its flag as a footnote."""
    return esc(text) if text == NOT_PROJECTED else f"{esc(text)} {_label('projected')}{notes.mark(flag)}"


def projection_md(text: str, mark: str = "") -> str:
    """A fit table's projection cell in Markdown: labelled projected, with a footnote mark when given."""
    return text if text == NOT_PROJECTED else f"{text} (projected){mark}"


def _fit_rows(fits: list[SizeFit]) -> list[tuple[list[str], list[str]]]:
    """Per fit: the row's text cells and, per projection, the flag saying what it assumes."""
    rows = []
    for f in fits:
        ci = f.fit.exponent_ci95
        b = f"{f.fit.exponent:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        r2 = "n/a" if f.fit.r2 is None else f"{f.fit.r2:.3f}"
        sizes = ", ".join(f"{_short_model(p.model)} {size_label(p.parameters)}" for p in f.points)
        rows.append(
            (
                [
                    _group_name(f),
                    METRIC_TITLES.get(f.metric, f.metric),
                    b,
                    r2,
                    sizes,
                    *(
                        _fmt(f.metric, f.projections[label]) if label in f.projections else NOT_PROJECTED
                        for label in PROJECT_TO
                    ),
                ],
                [f.flags.get(label, "") for label in PROJECT_TO],
            )
        )
    return rows


def _explain_cells(views: list[CellView]) -> list[CellView]:
    return [v for v in views if v.ok and v.cell.metric(GENERATED_TOKENS) is not None]


def _pct(v: CellView, prefix: str, p: str) -> str:
    row = v.cell.metric(f"{prefix}_{p}_ms")
    if row is None:
        return "–"
    ci = (
        f" [{sig(row.ci95_low)}–{sig(row.ci95_high)}]" if row.ci95_low is not None and row.ci95_high is not None else ""
    )
    return f"{sig(row.value)}{ci}" + ("*" if row.flag else "")


def _explain_rows(views: list[CellView]) -> list[list[str]]:
    rows = []
    for v in _explain_cells(views):
        c = v.cell
        n = c.metric("ttft_p50_ms")
        params = parameters_of(c)
        single = c.metric(OUTPUT_TOKENS_PER_S, load=SINGLE_STREAM)
        offline = c.metric(OUTPUT_TOKENS_PER_S, load=OFFLINE)
        flops = c.metric("flops_per_rec")
        rows.append(
            [
                v.name,
                f"{_short_model(str(c.params.get('model', '')))} {size_label(params) if params else ''}".strip(),
                f"{c.value(GENERATED_TOKENS):g}",
                str(n.n) if n and n.n else "–",
                _pct(v, "ttft", "p50"),
                _pct(v, "ttft", "p90"),
                _pct(v, "ttft", "p99"),
                _pct(v, "time_per_output_token", "p50"),
                num(single.value) if single else "–",
                num(offline.value) if offline else "–",
                usd(v.usd.value) if v.usd else "–",
                f"{flops.value / 1e9:.3g}" if flops else "–",
            ]
        )
    return rows


EXPLAIN_NOTE = (
    "Greedy decoding with a KV cache and a fixed number of new tokens per request (random weights: the "
    "text means nothing, and an end-of-sequence token would come by chance), so each request does the "
    "work of an explanation of that length. TTFT runs from the request (retrieval, prompt building and "
    "tokenisation included) to the first generated token, one request at a time; * marks a percentile "
    "from too few samples. $ per 1k recommendations with explanations is the measured offline "
    "throughput priced like any cell."
)
EXPLAIN_HEAD = [
    "cell",
    "decoder",
    "new tokens / rec",
    "n",
    "TTFT p50 ms [95% CI]",
    "TTFT p90 ms",
    "TTFT p99 ms",
    "time / output token p50 ms",
    "tokens/s (one request at a time)",
    "tokens/s (offline, best batch)",
    "$ / 1k recs with explanations",
    "GFLOP / rec",
]
FIT_HEAD = [
    "recommender, variant",
    "figure",
    "exponent b [95% CI]",
    "R² (log-log)",
    "measured sizes",
    *(f"projected {label}" for label in PROJECT_TO),
]


def _method(run: RunResult) -> str:
    memory = ((run.provenance or {}).get("machine") or {}).get("memory_total_bytes")
    mem = f"{memory / 2**30:.1f} GiB" if memory else "unknown"
    return (
        "Model: y = a (N / 1e8)^b, fitted by least squares on log y against log N over the sizes measured in "
        "this run (one fit per recommender, variant and device; the bracket is the exponent's 95% interval, "
        "Student t with n - 2 degrees of freedom, so three sizes give a wide one). Assumptions of every "
        "projection: the same architecture family (a BERT-like encoder deepened and widened as from MiniLM-L6 "
        "to BERT-base to BERT-large), the same hardware, runtime, threads and request shape, and memory "
        f"permitting: weights alone take N x 4 bytes in fp32 (7B: 28 GB), 2 in fp16/bf16, 1 in int8 (7B: 7 GB), "
        f"against this machine's {mem}. Beyond the largest measured size the law is an extrapolation: real "
        "1B-7B models change shape and become memory-bandwidth bound, so read projections as an order of "
        f"magnitude, never as measurements. {NOT_PROJECTED_NOTE}"
    )


def section(run: RunResult, views: list[CellView], out_dir: Path) -> Section | None:
    """The section (bench.report.sections); None when the run has neither size fits nor a decoder step."""

    fits = [f for f in fits_from_run(run) if f.recommender != DECODER_RANK]  # the decoder section shows those
    explain = _explain_cells(views)
    if not fits and not explain:
        return None
    memory = ((run.provenance or {}).get("machine") or {}).get("memory_total_bytes")
    charts, html_parts, md = [], [], []
    if fits:
        charts.append(size_chart(fits, Path(out_dir), memory))
        fit_rows = _fit_rows(fits)
        notes = Footnotes()
        html_parts.append(
            _table(
                FIT_HEAD,
                [
                    (
                        "ok",
                        [esc(x) for x in cells[:5]]
                        + [projection_html(x, flag, notes) for x, flag in zip(cells[5:], flags)],
                    )
                    for cells, flags in fit_rows
                ],
                text_cols=(1, 4),
            )
        )
        html_parts.append(notes.html())
        html_parts.append(f"<p>{esc(_method(run))}</p>")
        md_notes: list[str] = []

        def mark(flag: str) -> str:
            if flag not in md_notes:
                md_notes.append(flag)
            return f"\\*{md_notes.index(flag) + 1}"

        md += ["| " + " | ".join(FIT_HEAD) + " |", "|" + "---|" * len(FIT_HEAD)]
        md += [
            "| "
            + " | ".join(
                cells[:5]
                + [projection_md(x, mark(flag) if x != NOT_PROJECTED else "") for x, flag in zip(cells[5:], flags)]
            )
            + " |"
            for cells, flags in fit_rows
        ]
        md += [""] + [f"\\*{i + 1}: {n}  " for i, n in enumerate(md_notes)] + ["", _method(run), ""]
    if explain:
        rows = _explain_rows(views)
        html_parts.append("<h3>Explanation step: a decoder writes a short explanation per list</h3>")
        html_parts.append(_table(EXPLAIN_HEAD, [("ok", [esc(x) for x in r]) for r in rows], text_cols=(1,)))
        html_parts.append(f'<p class="note">{esc(EXPLAIN_NOTE)} {_label("cost-only")}</p>')
        md += [
            "### Explanation step (decoder, cost-only)",
            "",
            "| " + " | ".join(EXPLAIN_HEAD) + " |",
            "|" + "---|" * len(EXPLAIN_HEAD),
        ]
        md += ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in rows] + ["", EXPLAIN_NOTE, ""]
    intro = (
        "<p>How cost grows with the transformer's size (cost-only models: real architectures, random weights), "
        "and what generating an explanation per list costs.</p>"
    )
    return Section(
        key="model-size",
        title="Model size and the explanation step",
        intro_html=intro,
        charts=charts,
        table_html="\n".join(html_parts),
        markdown="\n".join(md),
    )
