"""The report's PNG charts, drawn with matplotlib's object API on the Agg canvas (no pyplot, no display).

Each chart function returns a Chart: its file (None when the run lacks the data) and a note saying what is
left out and why. Cost axes are logarithmic; every axis names its unit.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox

from bench.analysis.paired import compare_cells, frontier
from bench.report.view import QUALITY, QUALITY_LABEL, CellView, fp32_sibling, mib, num, reference_classic, sig, usd
from bench.results import atomic_write_bytes

DPI = 110
FAMILY_COLOURS = {"classic": "#2c7fb8", "llm": "#e6550d", "hosted": "#756bb1", "test": "#969696", "other": "#636363"}
INSTANCE_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
INSTANCE_MARKERS = ["o", "s", "D", "^", "v", "P", "X", "h"]
SERIES_MARKERS = ["o", "s", "D", "^", "v", "P", "X", "h", "*", "<", ">", "p"]

HOSTED_STYLES = [":", "-.", "--", (0, (1, 3))]
FAMILY_LABELS = {"classic": "classic CF", "llm": "language-model", "test": "harness test", "other": "other"}
# distinct hues within each family's colour range, so that CDF lines stay tellable apart
CLASSIC_SHADES = ["#08519c", "#17becf", "#6baed6", "#2ca02c", "#3f007d", "#9ecae1"]
LLM_SHADES = ["#e6550d", "#a63603", "#fdae6b", "#cb181d", "#e377c2", "#7f2704"]


def family_styles(series: list[tuple[str, bool]]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per series, given (key, is_classic) in drawing order: classic series in blues/greens,
    language-model series in oranges/reds, each with its own marker, so a legend identifies every point."""
    out, counts = {}, {True: 0, False: 0}
    for j, (key, classic) in enumerate(series):
        shades = CLASSIC_SHADES if classic else LLM_SHADES
        out[key] = (shades[counts[classic] % len(shades)], SERIES_MARKERS[j % len(SERIES_MARKERS)])
        counts[classic] += 1
    return out


@dataclass
class Chart:
    key: str
    title: str
    caption: str
    path: Path | None = None
    note: str = ""
    #: names of the cells drawn (for checks that no cell went missing)
    shown: list[str] = field(default_factory=list)


def _figure(width: float, height: float, layout: Literal["constrained", "compressed", "tight"] | None = None) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_dir: Path, name: str) -> Path:
    """Rendered in memory, then written atomically: a kill or a full disk never leaves a truncated PNG."""
    path = Path(out_dir) / name
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _rows_height(n: float) -> float:
    return max(3.2, 0.42 * n + 1.8)


def _log_limits(values: list[float], pad: float = 2.5) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    return lo / pad, hi * pad


def place_labels(fig: Figure, ax, xs, ys, labels, fontsize: float = 8.5, colours=None) -> None:
    """Greedy label placement: try offsets around each point, growing outwards, and keep the first spot that
    stays inside the axes and overlaps no marker and no label already placed (leader lines when moved far)."""
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):  # _figure gives every figure an Agg canvas; any other gets one
        canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    axbox = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    r = 6.0
    taken = [Bbox.from_extents(px - r, py - r, px + r, py + r) for px, py in pts]
    directions = [
        (1, 0.6, "left", "bottom"),
        (1, -0.6, "left", "top"),
        (-1, 0.6, "right", "bottom"),
        (-1, -0.6, "right", "top"),
        (0, 1, "center", "bottom"),
        (0, -1, "center", "top"),
    ]
    order = np.argsort(-np.asarray(ys))  # top points first: they have least room
    for i in order:
        placed = None
        for step in (7, 16, 28, 42, 60):
            for dx, dy, ha, va in directions:
                ann = ax.annotate(
                    labels[i],
                    (xs[i], ys[i]),
                    xytext=(dx * step, dy * step),
                    textcoords="offset points",
                    ha=ha,
                    va=va,
                    fontsize=fontsize,
                    color=(colours[i] if colours else "black"),
                    arrowprops=(dict(arrowstyle="-", lw=0.6, color="0.55") if step > 7 else None),
                    zorder=5,
                )
                box = ann.get_window_extent(renderer).padded(2)
                inside = box.x0 >= axbox.x0 and box.x1 <= axbox.x1 and box.y0 >= axbox.y0 and box.y1 <= axbox.y1
                if inside and not any(box.overlaps(t) for t in taken):
                    placed = box
                    break
                ann.remove()
            if placed is not None:
                break
        if placed is None:  # crowded: put it at the first spot anyway rather than drop a label
            ann = ax.annotate(
                labels[i],
                (xs[i], ys[i]),
                xytext=(7, 4),
                textcoords="offset points",
                fontsize=fontsize,
                color=(colours[i] if colours else "black"),
                zorder=5,
            )
            placed = ann.get_window_extent(renderer)
        taken.append(placed)


# ---------------------------------------------------------------- quality vs cost (Pareto)


def quality_vs_cost(views: list[CellView], out_dir: Path, mapping_note: str) -> Chart:
    chart = Chart(
        "quality_vs_cost",
        f"Quality vs cost: {QUALITY_LABEL} against $ per 1k recommendations",
        "Each point is one cell: measured cost on this machine (offline load, best batch) and full-ranking "
        f"{QUALITY_LABEL}. The dashed line joins the Pareto frontier: no cell on it is matched by a cheaper "
        "one on the users they share (by the 95% interval of the paired per-user difference). A cell "
        "evaluated on a sample of users is drawn hollow, with its reference's figure on the same users "
        "(grey bar) beside it. Hosted APIs appear as vertical lines: their cost is estimated, their "
        "quality not measured.",
    )
    pts = [v for v in views if v.ok and v.has_quality and v.usd is not None]
    gated = [
        v
        for v in views
        if v.cell.status == "gated"
        and v.quality is not None
        and v.cell.extras.get("cost", {}).get("would_be_usd_per_1k_recs")
    ]
    hosted = [v for v in views if v.family == "hosted" and v.hosted_usd is not None]
    notes = []
    cost_only = [v.name for v in views if v.ok and v.cost_only]
    if cost_only:
        notes.append("cost-only cells (random weights, quality never reported) are left out: " + ", ".join(cost_only))
    no_cost = [v.name for v in views if v.ok and v.has_quality and v.usd is None]
    if no_cost:
        notes.append(
            "cells with quality but no measured cost (see their cost notes) are left out: " + ", ".join(no_cost)
        )
    if not pts:
        chart.note = "No cell has both quality and a measured cost: chart skipped. " + " ".join(notes)
        return chart
    fig = _figure(10.5, 6.4)
    fig.subplots_adjust(left=0.09, right=0.97, top=0.91, bottom=0.19)
    ax = fig.add_subplot()
    xs = [v.row("usd").value for v in pts] + [v.cell.extras["cost"]["would_be_usd_per_1k_recs"] for v in gated]
    ys = [v.row("quality").value for v in pts] + [v.row("quality").value for v in gated]
    all_x = xs + [v.row("hosted_usd").value for v in hosted]
    ax.set_xscale("log")
    ax.set_xlim(*_log_limits(all_x, 3.0))
    ax.set_ylim(0, max(ys) * 1.22 if max(ys) > 0 else 1)
    ref = reference_classic(pts)
    usual_n = max((v.row("quality").n or 0 for v in pts), default=0)
    sampled = []
    for v in pts:
        colour = FAMILY_COLOURS.get(v.family, "0.3")
        quality, cost = v.row("quality"), v.row("usd").value
        if quality.n and quality.n < usual_n:
            sampled.append(v)
            ax.scatter(cost, quality.value, s=64, facecolor="white", edgecolor=colour, linewidth=1.6, zorder=3)
        else:
            ax.scatter(cost, quality.value, s=64, color=colour, zorder=3, edgecolor="white", linewidth=0.8)
    same_sample = []
    for v in sampled:  # the reference on the sampled cell's own users, where per-user figures allow it
        c = compare_cells(v.cell, ref.cell, QUALITY) if ref is not None and v is not ref else None
        if c is not None and c.paired and c.comparable:
            same_sample.append(v)
            ax.plot([v.row("usd").value / 1.25, v.row("usd").value * 1.25], [c.b, c.b], color="0.45", lw=2.2, zorder=2)
    for v in gated:
        ax.scatter(
            v.cell.extras["cost"]["would_be_usd_per_1k_recs"],
            v.row("quality").value,
            s=60,
            marker="X",
            color="0.55",
            zorder=3,
        )
    front = frontier([v.cell for v in pts], [v.row("usd").value for v in pts], QUALITY).on
    fx, fy = [pts[i].row("usd").value for i in front], [pts[i].row("quality").value for i in front]
    ax.plot(fx, fy, ls="--", lw=1.4, color="0.25", zorder=2)
    ax.scatter(fx, fy, s=190, facecolor="none", edgecolor="0.2", linewidth=1.2, zorder=4)
    for j, v in enumerate(hosted):
        x = v.row("hosted_usd").value
        ax.axvline(x, color=FAMILY_COLOURS["hosted"], ls=HOSTED_STYLES[j % len(HOSTED_STYLES)], lw=1.3, zorder=1)
        ax.text(
            x,
            ax.get_ylim()[1] * 0.98,
            f"{v.variant} ",
            rotation=90,
            ha="right",
            va="top",
            fontsize=7.5,
            color=FAMILY_COLOURS["hosted"],
        )
    labels = [v.name + (f" (n={v.row('quality').n:,})" if v in sampled else "") for v in pts] + [
        f"{v.name} (gated)" for v in gated
    ]
    colours = [FAMILY_COLOURS.get(v.family, "0.3") for v in pts] + ["0.4"] * len(gated)
    place_labels(fig, ax, xs, ys, labels, colours=colours)
    ax.set_xlabel(f"US$ per 1,000 recommendations (log scale) — measured, {mapping_note}")
    ax.set_ylabel(f"{QUALITY_LABEL} (full ranking, higher is better)")
    ax.set_title(chart.title, fontsize=12)
    ax.grid(True, which="major", alpha=0.3)
    families = {v.family for v in pts}
    handles = [
        Line2D([], [], marker="o", ls="", color=FAMILY_COLOURS[f], label=FAMILY_LABELS[f])
        for f in ("classic", "llm", "test", "other")
        if f in families
    ]
    handles.append(
        Line2D(
            [], [], marker="o", ls="--", color="0.25", markerfacecolor="none", markersize=11, label="Pareto frontier"
        )
    )
    if sampled:
        handles.append(
            Line2D(
                [], [], marker="o", ls="", color="0.3", markerfacecolor="white", label="evaluated on a sample of users"
            )
        )
    if same_sample and ref is not None:
        handles.append(Line2D([], [], ls="-", lw=2.2, color="0.45", label=f"{ref.name} on the same sampled users"))
    if gated:
        handles.append(
            Line2D([], [], marker="X", ls="", color="0.55", label="gated (below quality gate; cost not counted)")
        )
    if hosted:
        handles.append(Line2D([], [], ls=":", color=FAMILY_COLOURS["hosted"], label="hosted API (estimated cost)"))
    # at most four entries a row: the sample and hosted entries would otherwise run off the figure
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8.5, frameon=False)
    if len(handles) > 4:
        fig.subplots_adjust(bottom=0.22)
    chart.path = _save(fig, out_dir, "quality_vs_cost.png")
    chart.shown = [v.name for v in pts] + [v.name for v in gated]
    chart.note = " ".join(notes)
    return chart


# ---------------------------------------------------------------- throughput


def _bars(ax, names, values, colours, errs=None, hatches=None, fmt=lambda x: sig(x)):
    y = np.arange(len(names))
    bars = ax.barh(
        y,
        values,
        color=colours,
        xerr=errs,
        error_kw=dict(lw=0.8, capsize=2, ecolor="0.3"),
        edgecolor="white",
        height=0.7,
    )
    if hatches:
        for bar, hatch in zip(bars, hatches):
            if hatch:
                bar.set_hatch(hatch)
                bar.set_edgecolor("0.25")
    ax.set_yticks(y, names, fontsize=9)
    ax.invert_yaxis()
    for yi, v in zip(y, values):
        ax.text(v * 1.18, yi, fmt(v), va="center", fontsize=8)
    return bars


def throughput(views: list[CellView], out_dir: Path) -> Chart:
    chart = Chart(
        "throughput",
        "Throughput by recommender and variant",
        "Best offline throughput over the batch-size sweep, in users (top-k lists) per second; "
        "error bars are the 95% interval where the run gives one. Hatched: cost-only or gated cells.",
    )
    rows = [v for v in views if v.throughput is not None and v.family != "hosted" and v.cell.status in ("ok", "gated")]
    if not rows:
        chart.note = "No offline throughput in this run: chart skipped."
        return chart
    rows.sort(key=lambda v: (v.family != "classic", -v.row("throughput").value))
    rates = [v.row("throughput") for v in rows]
    vals = [r.value for r in rates]
    lows, highs = [r.ci95_low for r in rates], [r.ci95_high for r in rates]
    errs = None
    if all(x is not None for x in lows + highs):
        errs = np.array(
            [
                [max(0.0, r.value - lo) for r, lo in zip(rates, lows) if lo is not None],
                [max(0.0, hi - r.value) for r, hi in zip(rates, highs) if hi is not None],
            ]
        )
    fig = _figure(10.5, _rows_height(len(rows)))
    ax = fig.add_subplot()
    _bars(
        ax,
        [v.name for v in rows],
        vals,
        [FAMILY_COLOURS.get(v.family, "0.4") for v in rows],
        errs,
        ["//" if (v.cost_only or v.cell.status == "gated") else "" for v in rows],
        fmt=lambda x: f"{num(x)} /s",
    )
    ax.set_xscale("log")
    ax.set_xlim(min(vals) / 2, max(vals) * 6)
    ax.set_xlabel("users per second (log scale, higher is better)")
    ax.set_title(chart.title, fontsize=12)
    ax.grid(True, axis="x", alpha=0.3)
    families = {v.family for v in rows}
    handles = [
        Patch(color=FAMILY_COLOURS[f], label=FAMILY_LABELS[f])
        for f in ("classic", "llm", "test", "other")
        if f in families
    ]
    if any(v.cost_only or v.cell.status == "gated" for v in rows):
        handles.append(Patch(facecolor="white", edgecolor="0.25", hatch="//", label="cost-only / gated"))
    ax.legend(handles=handles, loc="lower right", fontsize=8.5)
    fig.tight_layout()
    chart.path = _save(fig, out_dir, "throughput.png")
    return chart


def _series_figure(n_series: int):
    """A figure for one line per cell, legend below, and a picker of the next distinct shade of a family."""
    fig = _figure(10.5, 5.2 + 0.2 * math.ceil(n_series / 2), layout="constrained")
    used = {"classic": 0, "llm": 0}

    def shade(family: str) -> str:
        shades = CLASSIC_SHADES if family == "classic" else LLM_SHADES
        k = used.get(family, 0)
        used[family] = k + 1
        return shades[k % len(shades)]

    return fig, fig.add_subplot(), shade


def _finish_series(fig: Figure, ax, chart: Chart, xlabel: str, ylabel: str, file: Path, ncol: int) -> None:
    """Labels, title, grid and the legend below the axes; saves the figure as the chart's file."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(chart.title, fontsize=12)
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(fontsize=8 if ncol > 1 else 7.5, loc="outside lower center", ncol=ncol, frameon=False)
    chart.path = _save(fig, file.parent, file.name)


def batch_sweep(views: list[CellView], out_dir: Path) -> Chart:
    """Throughput against batch size for every cell's offline sweep, as recorded (extras.offline_sweep)."""
    chart = Chart(
        "batch_sweep",
        "Offline throughput against batch size",
        "Each line is one cell's offline sweep (users per second at each batch size; both axes log). "
        "The legend says how the sweep ended: fixed sizes, or the gain or limit that stopped an "
        "adaptive sweep.",
    )
    rows = [
        v
        for v in views
        if v.cell.status in ("ok", "gated") and len((v.cell.extras.get("offline_sweep") or {}).get("curve", [])) > 1
    ]
    if not rows:
        chart.note = "No cell swept more than one batch size in this run: chart skipped."
        return chart
    fig, ax, shade = _series_figure(len(rows))
    for i, v in enumerate(rows):
        sweep = v.cell.extras["offline_sweep"]
        xs = [p["batch_size"] for p in sweep["curve"]]
        ys = [p["throughput_per_s"] for p in sweep["curve"]]
        ax.plot(
            xs,
            ys,
            marker=SERIES_MARKERS[i % len(SERIES_MARKERS)],
            lw=1.5,
            color=shade(v.family),
            label=f"{v.name}: best {num(max(ys))} /s at {sweep.get('best_batch_size', '?')} ({sweep.get('stopped_by', '')})",
        )
        chart.shown.append(v.cell.cell)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _finish_series(
        fig,
        ax,
        chart,
        "batch size, users per call (log scale)",
        "users per second (log scale)",
        out_dir / "batch_sweep.png",
        ncol=1,
    )
    return chart


# ---------------------------------------------------------------- latency CDFs


def latency_cdf(views: list[CellView], out_dir: Path) -> Chart:
    chart = Chart(
        "latency_cdf",
        "Single-request latency distribution (CDF)",
        "Empirical CDF of every timed single-stream request (raw samples, after warm-up). "
        "Legend: p50 and p99 with the sample count; * marks a percentile flagged as unreliable.",
    )
    rows = [v for v in views if v.latency_samples_ms is not None and v.cell.status in ("ok", "gated")]
    if not rows:
        chart.note = "No single-stream latency samples in this run: chart skipped."
        return chart
    fig, ax, shade = _series_figure(len(rows))
    all_samples = np.concatenate([v.latency_samples_ms for v in rows])
    for v in rows:
        if v.latency_samples_ms is None:  # rows hold only views with samples
            continue
        s = np.sort(v.latency_samples_ms)
        y = np.arange(1, len(s) + 1) / len(s)
        p50, p99 = v.latency.get("p50"), v.latency.get("p99")
        star = "*" if p99 is not None and p99.flag else ""
        p50_txt = sig(p50.value) if p50 else sig(float(np.percentile(s, 50)))
        p99_txt = sig(p99.value) if p99 else sig(float(np.percentile(s, 99)))
        ax.step(
            s,
            y,
            where="post",
            lw=1.6,
            color=shade(v.family),
            ls="-" if v.family == "classic" else "--" if v.cost_only else "-",
            label=f"{v.name}: p50 {p50_txt} ms, p99{star} {p99_txt} ms (n={len(s)})",
        )
    ax.set_xscale("log")
    ax.set_xlim(all_samples.min() / 1.5, all_samples.max() * 1.5)
    ax.set_ylim(0, 1.01)
    for q in (0.5, 0.9, 0.99):
        ax.axhline(q, color="0.7", lw=0.7, ls=":")
        ax.text(ax.get_xlim()[0] * 1.05, q, f" p{q * 100:g}", va="bottom", fontsize=7.5, color="0.4")
    _finish_series(
        fig,
        ax,
        chart,
        "latency per request, ms (log scale)",
        "share of requests at or below",
        out_dir / "latency_cdf.png",
        ncol=2,
    )
    if any(v.latency.get("p99") is not None and v.latency["p99"].flag for v in rows):
        chart.note = "* p99 from too few samples to be trusted (see the latency table for each flag)."
    return chart


# ---------------------------------------------------------------- memory


def memory(views: list[CellView], out_dir: Path) -> Chart:
    chart = Chart(
        "memory",
        "Memory: peak RSS and static footprint",
        "Left: peak resident memory above the cell's own baseline while fitting and serving, sampled "
        "from outside the timed code. Right: static footprint (parameters, index or model file).",
    )
    rows = [v for v in views if (v.peak_rss is not None or v.footprint is not None) and v.family != "hosted"]
    if not rows:
        chart.note = "No memory figures in this run: chart skipped."
        return chart
    rows.sort(key=lambda v: (v.family != "classic", v.name))
    fig = _figure(11.5, _rows_height(len(rows)))
    axes = fig.subplots(1, 2, sharey=True)
    per_mib = 1024**2
    for ax, attr, title in (
        (axes[0], "peak_rss", "peak RSS above baseline"),
        (axes[1], "footprint", "static footprint"),
    ):
        vals = [getattr(v, attr).value / per_mib if getattr(v, attr) is not None else 0.0 for v in rows]
        positive = [x for x in vals if x > 0]
        y = np.arange(len(rows))
        ax.barh(
            y,
            [x if x > 0 else np.nan for x in vals],
            color=[FAMILY_COLOURS.get(v.family, "0.4") for v in rows],
            height=0.7,
        )
        for yi, x in zip(y, vals):
            if x > 0:
                ax.text(x * 1.1, yi, mib(x * 1024**2), va="center", fontsize=8)
            else:
                ax.text(positive and min(positive) / 1.5 or 1, yi, "n/a", va="center", fontsize=8, color="0.5")
        ax.set_xscale("log")
        if positive:
            ax.set_xlim(min(positive) / 2, max(positive) * 8)
        ax.set_xlabel("MiB (log scale, lower is better)")
        ax.set_title(title, fontsize=11)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(np.arange(len(rows)), [v.name for v in rows], fontsize=9)
    axes[0].invert_yaxis()
    fig.suptitle(chart.title, fontsize=12)
    fig.tight_layout()
    chart.path = _save(fig, out_dir, "memory.png")
    return chart


# ---------------------------------------------------------------- cost across instances and hosted APIs


def cost_by_instance(views: list[CellView], out_dir: Path, mapping_note: str) -> Chart:
    chart = Chart(
        "cost_by_instance",
        "Cost per 1k recommendations across hardware and hosted APIs",
        "Filled black dot: measured on this machine. Hollow markers: projected onto other instances "
        "through the roofline model (see Method), never measured. Dotted vertical lines: a hosted LLM "
        "doing the same recommendation, from real token counts x list prices (estimated).",
    )
    rows = [v for v in views if v.ok and v.family != "hosted" and (v.usd is not None or v.projected)]
    hosted = [v for v in views if v.family == "hosted" and v.hosted_usd is not None]
    if not rows and not hosted:
        chart.note = "No cost figures in this run: chart skipped."
        return chart
    instances = sorted({i for v in rows for i in v.projected})
    values = (
        [v.usd.value for v in rows if v.usd is not None]
        + [m.value for v in rows for m in v.projected.values()]
        + [v.row("hosted_usd").value for v in hosted]
    )
    n_legend_rows = math.ceil((1 + len(instances) + len(hosted)) / 3)
    fig = _figure(11.5, _rows_height(max(len(rows), 3)) + 0.25 * n_legend_rows, layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    for yi, v in zip(y, rows):
        ax.axhline(float(yi), color="0.92", lw=0.8, zorder=0)
        if v.usd is not None:
            ax.scatter(v.usd.value, yi, s=70, color="black", zorder=4)
        for k, inst in enumerate(instances):
            if inst in v.projected:
                ax.scatter(
                    v.projected[inst].value,
                    yi,
                    s=46,
                    marker=INSTANCE_MARKERS[k % len(INSTANCE_MARKERS)],
                    facecolor="none",
                    edgecolor=INSTANCE_COLOURS[k % len(INSTANCE_COLOURS)],
                    linewidth=1.4,
                    zorder=3,
                )
    ax.set_xscale("log")
    ax.set_xlim(*_log_limits(values, 3.0))
    for j, v in enumerate(hosted):
        ax.axvline(
            v.row("hosted_usd").value,
            color=FAMILY_COLOURS["hosted"],
            ls=HOSTED_STYLES[j % len(HOSTED_STYLES)],
            lw=1.6,
            zorder=2,
        )
        ax.text(
            v.row("hosted_usd").value,
            -0.45,
            f"{v.variant} ",
            rotation=90,
            ha="right",
            va="top",
            fontsize=7.5,
            color=FAMILY_COLOURS["hosted"],
        )
    if rows:
        ax.set_yticks(y, [v.name + (" (cost-only)" if v.cost_only else "") for v in rows], fontsize=9)
        ax.set_ylim(len(rows) - 0.5, -0.5)
    else:
        ax.set_yticks([])
    ax.set_xlabel("US$ per 1,000 recommendations (log scale, lower is better)")
    ax.set_title(chart.title, fontsize=12)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="", color="black", label=f"measured ({mapping_note})")]
    handles += [
        Line2D(
            [],
            [],
            marker=INSTANCE_MARKERS[k % len(INSTANCE_MARKERS)],
            ls="",
            markerfacecolor="none",
            markeredgecolor=INSTANCE_COLOURS[k % len(INSTANCE_COLOURS)],
            markeredgewidth=1.4,
            label=f"projected: {inst}",
        )
        for k, inst in enumerate(instances)
    ]
    handles += [
        Line2D(
            [],
            [],
            ls=HOSTED_STYLES[j % len(HOSTED_STYLES)],
            lw=1.6,
            color=FAMILY_COLOURS["hosted"],
            label=f"hosted {v.variant}: {usd(v.row('hosted_usd').value)} (estimated)",
        )
        for j, v in enumerate(hosted)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    chart.path = _save(fig, out_dir, "cost_by_instance.png")
    missing = [v.name for v in rows if not v.projected]
    if missing:
        chart.note = "No projection for " + ", ".join(missing) + " (no flops_per_rec figure to project from)."
    return chart


# ---------------------------------------------------------------- variants


def variants(views: list[CellView], out_dir: Path) -> Chart:
    chart = Chart(
        "variants",
        "Variants against fp32: speed-up and quality retained",
        "Left: best offline throughput of each variant over its fp32 cell (same recommender, data and "
        f"device). Right: {QUALITY_LABEL} kept, as a share of fp32's on the users both evaluated, with "
        "the 95% interval of the paired ratio where the run kept per-user figures. Grey: gated variants "
        "(below the quality gate; their cost does not count).",
    )
    pairs = [
        (v, ref)
        for v in views
        if v.cell.status in ("ok", "gated") and (ref := fp32_sibling(v, views)) is not None and ref.ok
    ]
    if not pairs:
        chart.note = "No variant with an fp32 reference in this run (e.g. a classic-only run): chart skipped."
        return chart
    names = [v.name + (" (gated)" if v.cell.status == "gated" else "") for v, _ in pairs]
    speed = [
        v.throughput.value / ref.throughput.value if v.throughput and ref.throughput else np.nan for v, ref in pairs
    ]
    compared = [
        compare_cells(v.cell, ref.cell, QUALITY) if v.has_quality and ref.has_quality else None for v, ref in pairs
    ]
    kept = [c.ratio if c is not None and c.comparable and c.b else np.nan for c in compared]
    # the bootstrap interval of the paired ratio, where both cells kept per-user figures
    kept_err = [
        [(c.ratio - c.ratio_ci95[0]) * 100, (c.ratio_ci95[1] - c.ratio) * 100]
        if c is not None and c.ratio_ci95 is not None
        else [0.0, 0.0]
        for c in compared
    ]
    colours = ["0.6" if v.cell.status == "gated" else FAMILY_COLOURS["llm"] for v, _ in pairs]
    fig = _figure(11.5, _rows_height(len(pairs)))
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(pairs))
    axes[0].barh(y, speed, color=colours, height=0.6)
    axes[0].axvline(1.0, color="0.2", lw=1)
    finite_speed = [s for s in speed if math.isfinite(s)]
    axes[0].set_xlim(0, max(finite_speed + [1.0]) * 1.35)
    for yi, s in zip(y, speed):
        axes[0].text(
            (s if math.isfinite(s) else 0) + 0.02 * axes[0].get_xlim()[1],
            yi,
            f"{s:.2f}x" if math.isfinite(s) else "n/a",
            va="center",
            fontsize=8.5,
        )
    axes[0].set_xlabel("throughput / fp32 throughput (x, higher is better)")
    axes[0].set_title("speed-up vs fp32", fontsize=11)
    pct = [k * 100 if math.isfinite(k) else np.nan for k in kept]
    axes[1].barh(
        y, pct, color=colours, height=0.6, xerr=np.array(kept_err).T, error_kw=dict(lw=0.8, capsize=2, ecolor="0.3")
    )
    axes[1].axvline(100, color="0.2", lw=1)
    gate = next(
        (
            v.cell.extras.get("quality_gate", {}).get("required")
            for v, _ in pairs
            if v.cell.extras.get("quality_gate", {}).get("required")
        ),
        None,
    )
    if gate:
        axes[1].axvline(gate * 100, color="#cb181d", lw=1, ls="--")
        axes[1].text(gate * 100, len(pairs) - 0.4, f" gate {gate:.0%}", color="#cb181d", fontsize=8, va="bottom")
    tops = [p + err[1] for p, err in zip(pct, kept_err)]  # labels go past the interval's end
    axes[1].set_xlim(0, max([t for t in tops if math.isfinite(t)] + [100]) * 1.2)
    for yi, p, top, (v, _) in zip(y, pct, tops, pairs):
        text = f"{p:.1f}%" if math.isfinite(p) else ("n/a (cost-only)" if v.cost_only else "n/a")
        axes[1].text((top if math.isfinite(top) else 0) + 2, yi, text, va="center", fontsize=8.5)
    axes[1].set_xlabel(f"{QUALITY_LABEL} / fp32 {QUALITY_LABEL} (%, higher is better)")
    axes[1].set_title("quality retained", fontsize=11)
    axes[0].set_yticks(y, names, fontsize=9)
    axes[0].invert_yaxis()
    for ax in axes:
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(chart.title, fontsize=12)
    fig.tight_layout()
    chart.path = _save(fig, out_dir, "variants.png")
    return chart
