"""The report's decoder section: decoder LLMs ranking a retriever's candidates (llm-decoder-rank, cost-only).

Shown only when the run has such cells. Four charts, each from rows the run already holds:
- cost per 1k recommendations against parameters: measured points filled, the fitted power law, projections as
  hollow diamonds labelled projected (bench.report.sizes.size_chart over the decoder fits);
- where a request's time goes: p50 of the prefill and of what follows it (the suffix pass over the cached
  prefix, or the generated tokens);
- pointwise (naive) against shared-prefix on the same pairs: their request times, the ratio and the score
  agreement;
- local against hosted: each cell's measured $ per 1k beside the same request priced at each hosted API.
Then a table of every figure per cell, and the comparison table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from bench.metrics import HOSTED_SAME_PROMPT_PREFIX as HOSTED_PREFIX
from bench.metrics import suffix
from bench.report.charts import INSTANCE_COLOURS, INSTANCE_MARKERS, Chart, _figure, _rows_height, _save
from bench.report.html import Footnotes, _label, _table, esc
from bench.report.sections import Section
from bench.report.sizes import FIT_HEAD, NOT_PROJECTED_NOTE, _fit_rows, projection_html, projection_md, size_chart
from bench.report.view import CellView, mib, num, ratio, sig, usd
from bench.results import MetricRow, RunResult
from bench.sizes import DECODER_RANK as RECOMMENDER
from bench.sizes import fits_from_run, parameters_of, size_label

__all__ = ["section"]

PHASES = {
    "shared-prefix": ("prefix prefill (once)", "suffix pass over the cached prefix", "suffix_pass"),
    "listwise": ("prompt prefill (to the first token)", "decode (the generated list)", "decode"),
    "pointwise": ("prefill of every full prompt", "", ""),
}
PHASE_COLOURS = ("#3182bd", "#e6550d")


def _cells(views: list[CellView]) -> list[CellView]:
    return [v for v in views if v.recommender == RECOMMENDER and v.ok]


def _p(v: CellView, name: str, load: str = "") -> MetricRow | None:
    return v.cell.metric(name, load) if load else v.cell.metric(name)


def _short(v: CellView) -> str:
    """model mode n=N variant, the cell's distinguishing facts."""
    c = v.cell
    model = Path(str(c.params.get("model", "?"))).name
    return f"{model} {c.params.get('mode', '?')} N={c.params.get('n_candidates', '?')} {c.variant}"


def _fmt_ms(row: MetricRow | None) -> str:
    if row is None:
        return "–"
    ci = (
        f" [{sig(row.ci95_low)}–{sig(row.ci95_high)}]" if row.ci95_low is not None and row.ci95_high is not None else ""
    )
    return f"{sig(row.value)}{ci}" + ("*" if row.flag else "")


# ------------------------------------------------------------------------------------------------ charts


def phase_chart(cells: list[CellView], out_dir: Path) -> Chart:
    chart = Chart(
        "decoder_phases",
        "Where a decoder request's time goes: prefill and what follows",
        "How the median (p50) milliseconds of each phase share a request, one request at a time: the prefill "
        "(shared-prefix: the user's history once; listwise: the whole prompt, up to the first token; "
        "pointwise: every full prompt, which is all its work) and the phase after it (the suffixes over "
        "the cached prefix, or the generated tokens); the label gives both medians. Cost-only models.",
    )
    rows = [v for v in cells if _p(v, "prefill_p50_ms") is not None]
    if not rows:
        return _skip(chart, "No decoder cell timed its phases: chart skipped.")
    fig, ax = _canvas(len(rows))
    for j, v in enumerate(rows):
        second = PHASES.get(v.cell.params.get("mode", ""), ("", "", ""))[2]
        pre = v.cell.value("prefill_p50_ms")
        after = _p(v, f"{second}_p50_ms") if second else None
        rest = after.value if after is not None else 0.0
        share = pre / (pre + rest)  # drawn as shares of the two medians; the label gives the milliseconds
        ax.barh(j, 100 * share, color=PHASE_COLOURS[0], height=0.6)
        ax.barh(j, 100 * (1 - share), left=100 * share, color=PHASE_COLOURS[1], height=0.6)
        ax.text(
            101.5,
            j,
            f"{sig(pre)} + {sig(rest)} ms" if after is not None else f"{sig(pre)} ms (all prefill)",
            va="center",
            fontsize=8,
        )
    ax.set_xticks(range(0, 101, 20))
    return _finish(
        chart,
        fig,
        ax,
        rows,
        out_dir,
        "share of the request's decoder time, % (p50 of each phase)",
        [
            Line2D([], [], color=PHASE_COLOURS[0], lw=8, label="prefill"),
            Line2D([], [], color=PHASE_COLOURS[1], lw=8, label="suffix pass / decode"),
        ],
        xlim=(0, 125),
        log=False,
        legend={"loc": "upper center", "bbox_to_anchor": (0.5, -0.12), "ncol": 2, "fontsize": 8.5, "frameon": False},
    )


def _skip(chart: Chart, why: str) -> Chart:
    chart.note = why
    return chart


def _canvas(n_rows: float):
    """A one-axes figure tall enough for `n_rows` bars."""
    fig = _figure(10.0, _rows_height(n_rows), layout="constrained")
    return fig, fig.add_subplot(1, 1, 1)


def _finish(
    chart: Chart,
    fig,
    ax,
    rows: list[CellView],
    out_dir: Path,
    xlabel: str,
    handles: list,
    xlim: tuple[float, float] | None = None,
    legend: dict | None = None,
    log: bool = True,
) -> Chart:
    """What every decoder bar chart ends with: one row per cell (top first), the x axis, legend, file."""
    ax.set_yticks(np.arange(len(rows)), [_short(v) for v in rows], fontsize=8.5)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel(xlabel)
    ax.legend(handles=handles, **(legend or {"loc": "lower right", "fontsize": 8.5}))
    ax.grid(True, axis="x", alpha=0.3)
    chart.path = _save(fig, out_dir, f"{chart.key}.png")
    chart.shown = [v.cell.cell for v in rows]
    return chart


def comparison_chart(cells: list[CellView], out_dir: Path) -> Chart:
    chart = Chart(
        "decoder_naive_vs_shared",
        "Pointwise (naive) against shared-prefix, on the same pairs",
        "Median milliseconds to score the same user's candidates both ways, interleaved rounds in one "
        "cell's process. Label: the naive execution's time over the shared-prefix one, and the largest score "
        "difference between the two (fp32 must stay within 1e-4).",
    )
    rows = [v for v in cells if _p(v, "naive_over_shared_prefix_time") is not None]
    if not rows:
        return _skip(chart, "No cell compared the two executions: chart skipped.")
    fig, ax = _canvas(len(rows) * 1.6)
    for j, v in enumerate(rows):
        naive, shared = v.cell.row("pointwise_request_p50_ms"), v.cell.row("shared_prefix_request_p50_ms")
        ax.barh(j - 0.18, naive.value, height=0.34, color="#e6550d")
        ax.barh(j + 0.18, shared.value, height=0.34, color="#3182bd")
        diff = _p(v, "execution_max_abs_diff")
        ax.text(
            naive.value * 1.08,
            j - 0.18,
            f"naive / shared = {ratio(v.cell.value('naive_over_shared_prefix_time'))}"
            + (f"; max |Δ| {diff.value:.1e}" if diff is not None else ""),
            va="center",
            fontsize=8,
        )
    ax.set_xscale("log")
    return _finish(
        chart,
        fig,
        ax,
        rows,
        out_dir,
        "ms to score one user's compared candidates, median (log)",
        [
            Line2D([], [], color="#e6550d", lw=8, label="pointwise: every full prompt"),
            Line2D([], [], color="#3182bd", lw=8, label="shared-prefix: history once, suffixes batched"),
        ],
        xlim=(ax.get_xlim()[0], ax.get_xlim()[1] * 12),
    )


def hosted_chart(cells: list[CellView], out_dir: Path) -> Chart:
    chart = Chart(
        "decoder_local_vs_hosted",
        "The same ranking request: this machine's decoder against hosted APIs",
        "US$ per 1,000 recommendations, log scale. Filled bar: the decoder measured here (offline "
        "throughput x this machine's price share; cost-only model). Markers: that cell's very request "
        "(same prompts, same calls, o200k_base token counts) at each hosted API's list prices (estimated).",
    )
    rows = [v for v in cells if v.usd is not None]
    entries = sorted({name for v in rows for m in v.cell.metrics if (name := suffix(m.metric, HOSTED_PREFIX))})
    if not rows:
        return _skip(chart, "No decoder cell has a measured cost: chart skipped.")
    fig, ax = _canvas(len(rows))
    for j, v in enumerate(rows):
        ax.barh(j, v.row("usd").value, height=0.55, color="#bdbdbd", edgecolor="#636363")
        for e, entry in enumerate(entries):
            row = v.cell.metric(HOSTED_PREFIX + entry)
            if row is not None:
                ax.scatter(
                    [row.value],
                    [j],
                    marker=INSTANCE_MARKERS[e % len(INSTANCE_MARKERS)],
                    s=48,
                    zorder=3,
                    color=INSTANCE_COLOURS[e % len(INSTANCE_COLOURS)],
                )
    handles = [Line2D([], [], color="#bdbdbd", lw=8, label="measured here (decoder, cost-only)")]
    handles += [
        Line2D(
            [],
            [],
            ls="",
            marker=INSTANCE_MARKERS[e % len(INSTANCE_MARKERS)],
            color=INSTANCE_COLOURS[e % len(INSTANCE_COLOURS)],
            label=f"{entry}, same request (estimated)",
        )
        for e, entry in enumerate(entries)
    ]
    return _finish(
        chart,
        fig,
        ax,
        rows,
        out_dir,
        "US$ per 1,000 recommendations (log)",
        handles,
        legend={"loc": "upper center", "bbox_to_anchor": (0.5, -0.12), "ncol": 2, "fontsize": 8, "frameon": False},
    )


# ------------------------------------------------------------------------------------------------ tables

HEAD = [
    "cell",
    "parameters",
    "prompt tokens / rec",
    "output tokens / rec",
    "prefill tokens/s",
    "decode tokens/s",
    "TTFT p50 ms [95% CI]",
    "n",
    "time / output token p50 ms",
    "KV cache / rec (analytic)",
    "peak RSS",
    "GFLOP / rec",
    "utilisation % of peak",
    "$ / 1k recs (measured)",
    "one-time $",
    "gpt-4o-mini, same request",
]
COMPARE_HEAD = [
    "cell",
    "pairs",
    "max |Δ| score",
    "naive / shared-prefix time",
    "rounds",
    "naive / shared-prefix tokens (analytic)",
]


def _value(row: MetricRow | None, fmt=sig) -> str:
    return "–" if row is None else fmt(row.value)


def _rows(cells: list[CellView]) -> list[list[str]]:
    out = []
    for v in cells:
        params = parameters_of(v.cell)
        ttft = _p(v, "ttft_p50_ms")
        out.append(
            [
                v.name,
                size_label(params) if params else "–",
                _value(_p(v, "prompt_tokens_per_rec"), num),
                _value(_p(v, "output_tokens_per_rec"), num),
                _value(_p(v, "prefill_tokens_per_s"), num),
                _value(_p(v, "decode_tokens_per_s"), num),
                _fmt_ms(ttft),
                str(ttft.n) if ttft and ttft.n else "–",
                _fmt_ms(_p(v, "time_per_output_token_p50_ms")),
                _value(_p(v, "kv_cache_bytes_per_rec"), mib),
                _value(v.peak_rss, mib),
                _value(_p(v, "flops_per_rec"), lambda x: sig(x / 1e9)),
                _value(_p(v, "utilisation_pct_of_peak")),
                _value(v.usd, usd),
                _value(v.one_time_usd, usd),
                _value(v.cell.metric(HOSTED_PREFIX + "gpt-4o-mini"), usd),
            ]
        )
    return out


def _compare_rows(cells: list[CellView]) -> list[tuple[list[str], str]]:
    out = []
    for v in cells:
        time_ratio = _p(v, "naive_over_shared_prefix_time")
        if time_ratio is None:
            continue
        diff, tokens = _p(v, "execution_max_abs_diff"), _p(v, "naive_over_shared_prefix_tokens")
        out.append(
            (
                [
                    v.name,
                    str(diff.n) if diff and diff.n else "–",
                    f"{diff.value:.1e}" if diff else "–",
                    ratio(time_ratio.value),
                    str(time_ratio.n or "–"),
                    ratio(tokens.value) if tokens else "–",
                ],
                diff.flag if diff is not None else "",
            )
        )
    return out


NOTE = (
    "Cost-only: every decoder is built from its public config with random weights, so the ranking means "
    "nothing and no quality is reported; the work is the real work. Prompts are real (each user's TRAIN "
    "history titles and the retriever's candidate titles), tokenised with o200k_base; the model reads those ids "
    "modulo its vocabulary. Pointwise and shared-prefix output no tokens: they read one answer token's "
    "log-probability per candidate, so their TTFT is the whole request. KV cache bytes are analytic "
    "(tokens held x 2 x layers x kv heads x head dim x bytes). * marks a percentile from too few samples."
)


FIT_METHOD = (
    "y = a (N / 1e8)^b by least squares on log y against log N, one fit per decoder family (Llama-style "
    "and GPT-2 apart), mode, N and variant; the bracket is the exponent's 95% interval (Student t, n - 2 "
    "degrees of freedom). A projection assumes the same family, hardware, threads and request; beyond the "
    "largest measured size it extrapolates, and a 7B model's fp32 weights alone (28 GB) exceed a 24 GiB "
    f"machine. Projections are never measurements. {NOT_PROJECTED_NOTE}"
)


def section(run: RunResult, views: list[CellView], out_dir: Path) -> Section | None:
    cells = _cells(views)
    if not cells:
        return None
    memory = ((run.provenance or {}).get("machine") or {}).get("memory_total_bytes")
    fits = [f for f in fits_from_run(run) if f.recommender == RECOMMENDER]
    charts = []
    if fits:
        chart = size_chart(fits, Path(out_dir), memory, name="decoder_size_fit")
        chart.key, chart.title = "decoder_size_fit", "Decoder cost against parameters: measured, fitted, projected"
        charts.append(chart)
    charts += [
        phase_chart(cells, Path(out_dir)),
        comparison_chart(cells, Path(out_dir)),
        hosted_chart(cells, Path(out_dir)),
    ]
    rows = _rows(cells)
    compare = _compare_rows(cells)
    notes = Footnotes()
    parts = [
        _table(HEAD, [("ok", [esc(x) for x in r]) for r in rows], text_cols=(1,)),
        f'<p class="note">{esc(NOTE)} {_label("cost-only")}</p>',
    ]
    md = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    md += ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in rows] + ["", NOTE, ""]
    if fits:
        fit_rows = _fit_rows(fits)
        fit_notes = Footnotes()
        parts.append("<h3>Cost against parameters: the fitted power law and its projections</h3>")
        parts.append(
            _table(
                FIT_HEAD,
                [
                    (
                        "ok",
                        [esc(x) for x in cells_[:5]]
                        + [projection_html(x, flag, fit_notes) for x, flag in zip(cells_[5:], flags)],
                    )
                    for cells_, flags in fit_rows
                ],
                text_cols=(1, 4),
            )
        )
        parts.append(fit_notes.html())
        parts.append(f"<p>{esc(FIT_METHOD)}</p>")
        md += [
            "### Cost against parameters (fitted; projections labelled)",
            "",
            "| " + " | ".join(FIT_HEAD) + " |",
            "|" + "---|" * len(FIT_HEAD),
        ]
        md += ["| " + " | ".join(cells_[:5] + [projection_md(x) for x in cells_[5:]]) + " |" for cells_, _ in fit_rows]
        md += ["", FIT_METHOD, ""]
    if compare:
        parts.append("<h3>Pointwise against shared-prefix on the same (user, candidate) pairs</h3>")
        parts.append(
            _table(
                COMPARE_HEAD,
                [
                    ("ok", [esc(x) for x in r[:2]] + [esc(r[2]) + notes.mark(flag)] + [esc(x) for x in r[3:]])
                    for r, flag in compare
                ],
            )
        )
        parts.append(notes.html())
        md += [
            "### Pointwise against shared-prefix, same pairs",
            "",
            "| " + " | ".join(COMPARE_HEAD) + " |",
            "|" + "---|" * len(COMPARE_HEAD),
        ]
        md += ["| " + " | ".join(r) + " |" + (f" {flag}" if flag else "") for r, flag in compare] + [""]
    intro = (
        "<p>Decoder LLMs ranking the retriever's candidates three ways (pointwise: one prompt per candidate; "
        "shared-prefix: the history prefilled once, its KV cache reused for every candidate; listwise: one "
        "prompt, a generated list), at real architectures with random weights.</p>"
    )
    return Section(
        key="decoders",
        title="Decoder LLMs ranking candidates (cost-only)",
        intro_html=intro,
        charts=charts,
        table_html="\n".join(parts),
        markdown="\n".join(md),
    )
