"""The cold-start section: quality on items nobody interacted with, against what it costs.

Appears only when cells carry cold-item metrics (a split that holds items out, e.g. `cold-items`). The
chart sets each cell's Recall@10 on cold items (left) and on warm items (right, the valid part) against
its measured $ per 1k recommendations: classic CF sits at zero on the left, however cheap; the
language-model recommenders pay for their place above it. The table adds NDCG, the share of each list
spent on cold items, throughput and the one-time cost.
"""
from __future__ import annotations

import html
from pathlib import Path

from matplotlib.lines import Line2D

from bench.report.charts import FAMILY_COLOURS, FAMILY_LABELS, Chart, _figure, _log_limits, _save, place_labels
from bench.report.sections import Section
from bench.report.view import CellView, num, sig, usd
from bench.results import RunResult

K = 10
COLD, WARM = f"cold_recall@{K}", f"warm_recall@{K}"
COLUMNS = (("cold Recall@10", COLD), ("cold NDCG@10", f"cold_ndcg@{K}"), ("cold share of top 10", f"cold_share@{K}"),
           ("warm Recall@10", WARM), ("warm NDCG@10", f"warm_ndcg@{K}"))


def _esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _value(v: CellView, metric: str) -> float | None:
    row = v.cell.metric(metric)
    return None if row is None or row.value is None else float(row.value)


def _cost(v: CellView) -> tuple[float | None, bool]:
    """(measured $ per 1k recs, gated?): a gated cell's cost does not count; its would-be cost is drawn greyed."""
    if v.usd is not None:
        return v.usd.value, False
    would_be = v.cell.extras.get("cost", {}).get("would_be_usd_per_1k_recs") if v.cell.status == "gated" else None
    return (float(would_be), True) if would_be else (None, False)


def _chart(rows: list[CellView], out_dir: Path) -> Chart:
    chart = Chart("coldstart", "Cold-start: quality on new items vs cost",
                  "Each point is one cell on the cold-items split: its measured US$ per 1,000 recommendations "
                  "(offline load, best batch) against Recall@10 on the held-out cold items (left: items no model "
                  "saw in training) and on warm items (right: the valid part, items with history). Grey crosses: "
                  "gated variants (below the quality gate; their cost does not count).")
    pts = [(v, *_cost(v)) for v in rows]
    pts = [(v, c, g) for v, c, g in pts if c is not None]
    if not pts:
        chart.note = "No cell has both cold-item quality and a measured cost: chart skipped."
        return chart
    fig = _figure(12.5, 6.0)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.86, bottom=0.2, wspace=0.22)
    axes = fig.subplots(1, 2, sharex=True)
    xs_all = [c for _, c, _ in pts]
    for ax, metric, title in ((axes[0], COLD, "cold items (held out of training)"),
                              (axes[1], WARM, "warm items (valid part)")):
        shown = [(v, c, g) for v, c, g in pts if _value(v, metric) is not None]
        xs = [c for _, c, _ in shown]
        ys = [_value(v, metric) for v, _, _ in shown]
        for (v, c, g), y in zip(shown, ys):
            ax.scatter(c, y, s=64, marker="X" if g else "o", color="0.55" if g else FAMILY_COLOURS.get(v.family, "0.3"),
                       edgecolor="white", linewidth=0.8, zorder=3)
        ax.set_xscale("log")
        ax.set_xlim(*_log_limits(xs_all, 3.0))
        top = max(ys) if ys else 0.0
        # room under zero: CF cells all sit at 0 on the cold panel and their labels need space around them
        ax.set_ylim(-0.12 * (top or 1), top * 1.3 if top > 0 else 1)
        ax.axhline(0, color="0.6", lw=0.8)
        if shown:
            labels = [v.name + (" (gated)" if g else "") for v, _, g in shown]
            place_labels(fig, ax, xs, ys, labels, fontsize=8,
                         colours=["0.4" if g else FAMILY_COLOURS.get(v.family, "0.3") for v, _, g in shown])
        ax.set_title(f"Recall@{K} on {title}", fontsize=11)
        ax.set_xlabel("US$ per 1,000 recommendations (log scale, measured)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel(f"Recall@{K} (full ranking, higher is better)")
    fig.suptitle(chart.title, fontsize=12)
    families = sorted({v.family for v, _, _ in pts if v.family in FAMILY_LABELS})
    handles = [Line2D([], [], marker="o", ls="", color=FAMILY_COLOURS[f], label=FAMILY_LABELS[f]) for f in families]
    if any(g for _, _, g in pts):
        handles.append(Line2D([], [], marker="X", ls="", color="0.55", label="gated (cost not counted)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    chart.path = _save(fig, out_dir, "coldstart.png")
    chart.shown = [v.name for v, _, _ in pts]
    return chart


def _table_rows(rows: list[CellView]) -> list[list[str]]:
    out = []
    for v in rows:
        cost, gated = _cost(v)
        cells = [v.name, v.cell.status]
        cells += ["–" if _value(v, m) is None else sig(_value(v, m)) for _, m in COLUMNS]
        cells += [num(v.throughput.value) if v.throughput else "–",
                  ("–" if cost is None else usd(cost) + (" (would be; gated)" if gated else "")),
                  usd(v.one_time_usd.value) if v.one_time_usd else "–"]
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
    intro = ("<p>Items held out of training entirely (the <code>cold-items</code> split): every test interaction is "
             "on one of them. Classic collaborative filtering has never seen them, so it cannot rank them; a model "
             "that reads item text can. <i>cold share</i> is the part of each top-10 list spent on cold items; "
             "<i>warm</i> figures come from the valid part (items with history), so a model's gain on new items "
             f"can be set against what it keeps on the rest.{f' Cold figures average over {n_cold:,} test users.' if n_cold else ''}</p>")
    text_cols = {0, 1}
    body = ['<div class="scroll"><table><thead><tr>' + "".join(
        f'<th class="text">{h}</th>' if i in text_cols else f"<th>{h}</th>" for i, h in enumerate(HEAD))
        + "</tr></thead><tbody>"]
    for r in table:
        body.append("<tr>" + "".join(f'<td class="{"text" if i in text_cols else "num"}">{_esc(c)}</td>'
                                     for i, c in enumerate(r)) + "</tr>")
    body.append("</tbody></table></div>")
    md = ["Recall@10 on items held out of training (cold) and on warm items (valid part), against measured cost.", "",
          "| " + " | ".join(HEAD) + " |", "|---|---|" + "---:|" * (len(HEAD) - 2)]
    md += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in table]
    return Section("coldstart", "Cold start: quality on new items against cost", intro, [chart], "".join(body),
                   "\n".join(md))
