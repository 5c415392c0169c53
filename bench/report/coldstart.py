"""The cold-start section: quality on items nobody interacted with, against what it costs.

Appears only when cells carry cold-item metrics (a split that holds items out, e.g. `cold-items`). The
chart sets each cell's Recall@10 on cold items (left) and on warm items (right, the valid part) against
its measured $ per 1k recommendations: classic CF sits at zero on the left, however cheap; the
language-model recommenders pay for their place above it. The table adds NDCG, the share of each list
spent on cold items, throughput and the one-time cost.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D

from bench.report.charts import Chart, _figure, _log_limits, _save, family_styles
from bench.report.html import _table, esc
from bench.report.sections import Section
from bench.report.view import CellView, num, sig, usd
from bench.results import RunResult

K = 10
COLD, WARM = f"cold_recall@{K}", f"warm_recall@{K}"
COLUMNS = (
    ("cold Recall@10", COLD),
    ("cold NDCG@10", f"cold_ndcg@{K}"),
    ("cold share of top 10", f"cold_share@{K}"),
    ("warm Recall@10", WARM),
    ("warm NDCG@10", f"warm_ndcg@{K}"),
)


def _value(v: CellView, metric: str) -> float | None:
    row = v.cell.metric(metric)
    return None if row is None or row.value is None else float(row.value)


def _cost(v: CellView) -> tuple[float | None, bool]:
    """(measured $ per 1k recs, gated?): a gated cell's cost does not count; its would-be cost is drawn greyed."""
    if v.usd is not None:
        return v.usd.value, False
    would_be = v.cell.extras.get("cost", {}).get("would_be_usd_per_1k_recs") if v.cell.status == "gated" else None
    return (float(would_be), True) if would_be else (None, False)


def _styles(rows: list[CellView]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per cell, so the legend identifies every point without labels that could sit by the
    wrong one."""
    return family_styles([(v.name, v.family == "classic") for v in rows])


def _chart(rows: list[CellView], out_dir: Path) -> Chart:
    chart = Chart(
        "coldstart",
        "Cold-start: quality on new items vs cost",
        "Each point is one cell on the cold-items split: its measured US$ per 1,000 recommendations "
        "(offline load, best batch) against Recall@10 on the held-out cold items (left: items no model "
        "saw in training) and on warm items (right: the valid part, items with history). Hollow markers: "
        "gated variants (below the quality gate; their cost does not count, drawn at what it would be).",
    )
    costs = [(v, *_cost(v)) for v in rows]
    pts = [(v, c, g) for v, c, g in costs if c is not None]
    if not pts:
        chart.note = "No cell has both cold-item quality and a measured cost: chart skipped."
        return chart
    styles = _styles([v for v, _, _ in pts])
    n_legend_rows = -(-len(pts) // 3)
    fig = _figure(12.5, 5.6 + 0.28 * n_legend_rows, layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    xs_all = [c for _, c, _ in pts]
    for ax, metric, title in (
        (axes[0], COLD, "cold items (held out of training)"),
        (axes[1], WARM, "warm items (valid part)"),
    ):
        shown = [(v, c, g, y) for v, c, g in pts if (y := _value(v, metric)) is not None]
        ys = [y for _, _, _, y in shown]
        for v, c, g, y in shown:
            colour, marker = styles[v.name]
            ax.scatter(
                c,
                y,
                s=70,
                marker=marker,
                facecolor="white" if g else colour,
                edgecolor=colour,
                linewidth=1.6 if g else 0.8,
                zorder=3,
            )
        ax.set_xscale("log")
        ax.set_xlim(*_log_limits(xs_all, 3.0))
        top = max(ys) if ys else 0.0
        ax.set_ylim(-0.05 * (top or 1), top * 1.2 if top > 0 else 1)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_title(f"Recall@{K} on {title}", fontsize=11)
        ax.set_xlabel("US$ per 1,000 recommendations (log scale, measured)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel(f"Recall@{K} (full ranking, higher is better)")
    fig.suptitle(chart.title, fontsize=12)
    handles = []
    for v, _, g in pts:
        colour, marker = styles[v.name]
        handles.append(
            Line2D(
                [],
                [],
                marker=marker,
                ls="",
                markersize=8,
                color=colour,
                markerfacecolor="white" if g else colour,
                markeredgewidth=1.6 if g else 0.8,
                label=f"{v.name} ({'language model' if v.family != 'classic' else 'classic CF'})"
                + (" — gated" if g else ""),
            )
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8.5, frameon=False)
    chart.path = _save(fig, out_dir, "coldstart.png")
    chart.shown = [v.name for v, _, _ in pts]
    return chart


def _table_rows(rows: list[CellView]) -> list[list[str]]:
    out = []
    for v in rows:
        cost, gated = _cost(v)
        cells = [v.name, v.cell.status]
        cells += ["–" if (value := _value(v, m)) is None else sig(value) for _, m in COLUMNS]
        cells += [
            num(v.throughput.value) if v.throughput else "–",
            ("–" if cost is None else usd(cost) + (" (would be; gated)" if gated else "")),
            usd(v.one_time_usd.value) if v.one_time_usd else "–",
        ]
        out.append(cells)
    return out


HEAD = ["cell", "status", *(c for c, _ in COLUMNS), "users/s", "$ / 1k recs", "one-time $"]


def section(run: RunResult, views: list[CellView], out_dir: Path) -> Section | None:
    rows = [v for v in views if v.family != "hosted" and v.cell.metric(COLD) is not None]
    if not rows:
        return None
    rows.sort(key=lambda v: (v.family != "classic", -(_value(v, COLD) or 0.0)))
    chart = _chart(rows, out_dir)
    table = _table_rows(rows)
    n_cold = next((m.n for v in rows if (m := v.cell.metric(COLD)) is not None and m.n), None)
    intro = (
        "<p>Items held out of training entirely (the <code>cold-items</code> split): every test interaction is "
        "on one of them. Classic collaborative filtering has never seen them, so it cannot rank them; a model "
        "that reads item text can. <i>cold share</i> is the part of each top-10 list spent on cold items; "
        "<i>warm</i> figures come from the valid part (items with history), so a model's gain on new items "
        f"can be set against what it keeps on the rest.{f' Cold figures average over {n_cold:,} test users.' if n_cold else ''}</p>"
    )
    body = _table(HEAD, [("", [esc(c) for c in r]) for r in table], text_cols=(1,))
    md = [
        "Recall@10 on items held out of training (cold) and on warm items (valid part), against measured cost.",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|---|---|" + "---:|" * (len(HEAD) - 2),
    ]
    md += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in table]
    return Section("coldstart", "Cold start: quality on new items against cost", intro, [chart], body, "\n".join(md))
