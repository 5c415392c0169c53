"""The online section: what keeping recommendations fresh costs, strategy by strategy, over one replay.

Appears only when a run has replay cells. Three charts: quality over time (NDCG@10 of the next window after each
update), cumulative cost (initial fit plus updates), and the cost-vs-quality frontier of the update strategies;
a table of every strategy's figures; and the comparisons bench.online derived (paired differences with their
bootstrap intervals, cost ratios), put into words. Renders rows only; computes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from matplotlib.lines import Line2D

from bench.online import DIFF, FRESH, NDCG, RECALL, REPLAY_LOAD, is_replay_cell
from bench.report.charts import Chart, _figure, _log_limits, _save, family_styles
from bench.report.html import _table, esc
from bench.report.sections import Section
from bench.report.view import CellView, mib, ratio, sig, usd
from bench.results import CellResult, MetricRow, RunResult

DAY_S = 86_400.0


def summary_row(cell: CellResult, metric: str, load: str = REPLAY_LOAD) -> MetricRow | None:
    """The cell's figure over the whole replay (load "replay"), or None."""
    row = cell.metric(metric, load)
    return row if row is not None and row.value is not None else None


def _series(cell: CellResult, metric: str) -> tuple[list[int], list[float]]:
    points = sorted(
        (int(m.load.split("=")[1]), m.value)
        for m in cell.metrics
        if m.metric == metric and m.load.startswith("step=") and m.value is not None
    )
    return [p for p, _ in points], [v for _, v in points]


def _styles(rows: list[CellView]) -> dict[str, tuple[str, str]]:
    return family_styles([(v.name, v.family == "classic") for v in rows])


def _legend(fig, rows: list[CellView], styles) -> None:
    handles = [Line2D([], [], color=styles[v.name][0], marker=styles[v.name][1], label=v.name) for v in rows]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8.5, frameon=False)


def _steps_chart(
    chart: Chart, rows: list[CellView], metric: str, ylabel: str, out_dir: Path, styles, log: bool = False
) -> Chart:
    """One line per strategy: `metric` at each step (rows with load step=NN)."""
    drawn = [v for v in rows if _series(v.cell, metric)[0]]
    if not drawn:
        chart.note = f"No replay cell carries {metric} per step: chart skipped."
        return chart
    fig = _figure(11.5, 5.2 + 0.28 * -(-len(drawn) // 3), layout="constrained")
    ax = fig.subplots()
    for v in drawn:
        xs, ys = _series(v.cell, metric)
        colour, marker = styles[v.name]
        ax.plot(xs, ys, color=colour, marker=marker, markersize=5, lw=1.4)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step (windows absorbed since the initial fit)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(chart.title, fontsize=12)
    _legend(fig, drawn, styles)
    chart.path = _save(fig, out_dir, f"{chart.key}.png")
    chart.shown = [v.name for v in drawn]
    return chart


def _quality_chart(rows: list[CellView], out_dir: Path, styles) -> Chart:
    chart = Chart(
        "online_quality",
        "Quality over time: NDCG@10 of the next window, per strategy",
        "Each line is one update strategy: after absorbing each window it ranks the whole catalogue for the "
        "users active in the next one (their earlier items excluded); step 0 is the initial fit. Every "
        "strategy is judged on the same users and windows.",
    )
    return _steps_chart(chart, rows, NDCG, "NDCG@10 on the next window (full ranking)", out_dir, styles)


def _cost_chart(rows: list[CellView], out_dir: Path, styles) -> Chart:
    chart = Chart(
        "online_cost",
        "Cumulative cost of keeping each model fresh",
        "US$ spent so far (measured: wall time at this machine's mapped price): the initial fit at step 0, "
        "then every update. Log scale; a flat line is a strategy that spends nothing between fits.",
    )
    return _steps_chart(
        chart,
        rows,
        "update_usd_cumulative",
        "cumulative US$ (initial fit + updates, log scale)",
        out_dir,
        styles,
        log=True,
    )


def _frontier_chart(rows: list[CellView], out_dir: Path, styles) -> Chart:
    chart = Chart(
        "online_frontier",
        "Update strategies: total cost against mean quality",
        "Each point is one strategy over the whole replay: US$ for the initial fit and every update (log "
        "scale) against NDCG@10 averaged over every (update step, user) pair. The line joins the "
        "frontier: strategies every cheaper one is clearly worse than (paired NDCG@10 interval above 0).",
    )
    found = [(v, summary_row(v.cell, "replay_usd_total"), summary_row(v.cell, NDCG)) for v in rows]
    pts = [(v, c.value, q.value) for v, c, q in found if c is not None and q is not None and c.value > 0]
    if not pts:
        chart.note = "No replay cell has both a cost and a quality figure: chart skipped."
        return chart
    fig = _figure(11.5, 5.4 + 0.28 * -(-len(pts) // 3), layout="constrained")
    ax = fig.subplots()
    for v, c, q in pts:
        colour, marker = styles[v.name]
        ax.scatter(c, q, s=70, marker=marker, color=colour, zorder=3)
    front = sorted((c, q) for v, c, q in pts if (v.cell.extras.get("online_frontier") or {}).get("on"))
    ax.plot([c for c, _ in front], [q for _, q in front], color="0.5", lw=1, ls="--", zorder=2)
    ax.set_xscale("log")
    ax.set_xlim(*_log_limits([c for _, c, _ in pts], 2.0))
    ax.set_xlabel("US$ over the replay: initial fit + updates (log scale, measured)")
    ax.set_ylabel("mean NDCG@10 over the replay")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(chart.title, fontsize=12)
    _legend(fig, [v for v, _, _ in pts], styles)
    chart.path = _save(fig, out_dir, "online_frontier.png")
    chart.shown = [v.name for v, _, _ in pts]
    return chart


def diff_text(row: MetricRow | None) -> str:
    """A signed difference with its 95% interval: "+0.0005 [-0.0051, +0.0064]"."""
    if row is None:
        return "–"
    text = f"{row.value:+.4f}"
    if row.ci95_low is not None and row.ci95_high is not None:
        text += f" [{row.ci95_low:+.4f}, {row.ci95_high:+.4f}]"
    return text


HEAD = [
    "strategy",
    "NDCG@10",
    "Recall@10",
    "fresh Recall@10",
    "update wall s (total)",
    "update CPU-s (total)",
    "$ updates (total)",
    "$ / day (estimated)",
    "freshness delay (days)",
    "never reflected",
    "peak RSS",
    "Δ NDCG@10 vs full update [95% CI]",
    "update cost vs full update",
]


def _value(cell: CellResult, metric: str, fmt: Callable[[float], str] = sig) -> str:
    row = summary_row(cell, metric)
    return fmt(row.value) if row is not None else "–"


def _table_rows(rows: list[CellView]) -> list[list[str]]:
    out = []
    for v in rows:
        c = v.cell
        delay = summary_row(c, "freshness_delay_s")
        ratio_row = summary_row(c, "update_usd_ratio_vs_full_update")
        out.append(
            [
                v.name,
                _value(c, NDCG),
                _value(c, RECALL),
                _value(c, FRESH),
                _value(c, "update_wall_s_total"),
                _value(c, "update_cpu_s_total"),
                _value(c, "update_usd_total", usd),
                _value(c, "update_usd_per_day", usd),
                "–" if delay is None else sig(delay.value / DAY_S),
                _value(c, "unreflected_event_share", lambda x: f"{x * 100:.1f}%"),
                mib(v.peak_rss.value) if v.peak_rss else "–",
                diff_text(summary_row(c, NDCG + DIFF)),
                ratio(ratio_row.value) if ratio_row is not None else "–",
            ]
        )
    return out


def statements(rows: list[CellView]) -> list[str]:
    """The comparisons bench.online derived, one sentence each, quoting the rows."""
    out = []
    by_name = {v.cell.cell: v for v in rows}
    for v in rows:
        c = v.cell
        diff, ratio_row = summary_row(c, NDCG + DIFF), summary_row(c, "update_usd_ratio_vs_full_update")
        ref = by_name.get((c.extras.get("online_comparisons") or {}).get("reference", ""))
        if diff is None or ref is None:
            continue
        text = (
            f"{v.name} vs {ref.name}: NDCG@10 differs by {diff_text(diff)} (paired over {diff.n:,} (step, user) pairs)"
        )
        if ratio_row is not None:
            text += f" at {ratio(ratio_row.value)} its update cost"
        early, late = summary_row(c, NDCG + DIFF + "_early"), summary_row(c, NDCG + DIFF + "_late")
        if c.extras["replay_strategy"]["name"] == "stale" and early is not None and late is not None:
            text += f"; the gap is {diff_text(early)} over the first half of the steps and {diff_text(late)} over the second"
        out.append(text + ".")
    on = sorted(
        (
            (total.value, v)
            for v in rows
            if (v.cell.extras.get("online_frontier") or {}).get("on")
            and (total := summary_row(v.cell, "replay_usd_total")) is not None
        ),
        key=lambda t: t[0],
    )
    if on:
        out.append(
            "Cost-quality frontier of the update strategies, cheapest first (each clearly better on NDCG@10 "
            "than every cheaper strategy, paired): "
            + ", then ".join(f"{v.name} ({usd(c)}, NDCG@10 {sig(v.cell.value(NDCG, REPLAY_LOAD))})" for c, v in on)
            + "."
        )
    for v in rows:
        fresh = summary_row(v.cell, FRESH + "_diff_vs_best_cf")
        cf = by_name.get((v.cell.extras.get("online_comparisons") or {}).get("best_cf_on_fresh_items", ""))
        mine = summary_row(v.cell, FRESH)
        if fresh is None or cf is None or mine is None:
            continue
        out.append(
            f"On items first seen in the window before, {v.name} reaches Recall@10 {sig(mine.value)} against "
            f"{fresh_cf_text(cf)}: a difference of {diff_text(fresh)} over {fresh.n:,} (step, user) pairs."
        )
    return out


def fresh_cf_text(cf: CellView) -> str:
    """The best classic strategy on fresh items, in words ("0 for every CF strategy" when none recalls any)."""
    theirs = summary_row(cf.cell, FRESH)
    if theirs is None:
        return f"– for {cf.name}"
    if theirs.value == 0:
        return "0 for every CF strategy"
    return f"{sig(theirs.value)} for the best CF strategy there ({cf.name})"


def replay_views(views: list[CellView]) -> list[CellView]:
    rows = [v for v in views if is_replay_cell(v.cell) and v.ok]
    rows.sort(key=lambda v: (v.family != "classic", v.cell.recommender, v.name))
    return rows


def section(run: RunResult, views: list[CellView], out_dir: Path) -> Section | None:
    rows = replay_views(views)
    if not rows:
        return None
    styles = _styles(rows)
    charts = [
        _quality_chart(rows, out_dir, styles),
        _cost_chart(rows, out_dir, styles),
        _frontier_chart(rows, out_dir, styles),
    ]
    replay = rows[0].cell.extras.get("replay", {})
    windows = replay.get("windows", [])
    users = replay.get("evaluated_users", [])
    from bench.online import EVENTS_PER_S

    intro = (
        f"<p>{esc(rows[0].cell.dataset)} replayed in time order: an initial fit on the {replay.get('n_initial', 0):,} "
        f"interactions before T0, then {len(windows)} windows of {replay.get('window_s', 0) / DAY_S:g} days "
        f"({len(windows) - 1} updates). After each update a strategy ranks the whole catalogue it knows for the "
        f"users active in the next window ({min(users, default=0)}–{max(users, default=0)} users a window), "
        "their earlier items excluded. Update timing never includes evaluation. <i>fresh</i> items are those "
        "first seen in the window before; <i>freshness delay</i> is the mean time from an event to the model "
        f"reflecting it. $ per day assumes {EVENTS_PER_S:g} events a second, one update per window-sized batch.</p>"
    )
    said = statements(rows)
    if said:
        intro += "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in said) + "</ul>"
    table = _table_rows(rows)
    body = _table(HEAD, [("", [esc(x) for x in r]) for r in table])
    md = [
        f"{len(windows) - 1} updates over {len(windows)} windows of {replay.get('window_s', 0) / DAY_S:g} days; "
        f"$ per day at {EVENTS_PER_S:g} events/s.",
        "",
    ]
    md += [f"- {s}" for s in said] + ([""] if said else [])
    md += ["| " + " | ".join(HEAD) + " |", "|---|" + "---:|" * (len(HEAD) - 1)]
    md += ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in table]
    return Section("online", "Online updates: what freshness costs", intro, charts, body, "\n".join(md))
