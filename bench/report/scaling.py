"""The scaling section: how each cost grows with the catalogue, on log-log axes, with fitted exponents.

Appears only when some (recommender, variant) ran at three or more catalogue sizes (bench.growth). One PNG
per cost (fit time, item encoding, throughput, peak memory, $ per 1k recommendations): measured points,
the fitted line cost = a * n^b over the measured range, its dotted extension to the run's larger sizes
(labelled projected, never measured), and crosses where a size failed. The table lists b, R^2 and the
number of points of every fit, and the projected figure at the largest size where one was not measured.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from bench.growth import GrowthFit, catalogue_sizes, fits_of, has_scaling_dimension
from bench.metrics import USD_PER_1K
from bench.report.charts import Chart, _figure, _save, family_styles
from bench.report.html import _table, esc
from bench.report.sections import Section
from bench.report.view import CellView, mib, num, sig, usd
from bench.results import RunResult

#: metric -> (title, axis label, value transform for the axis, formatter for tables)
PANELS: dict[str, tuple[str, str, float, Callable[[float], str]]] = {
    "fit_s": ("Fit time", "fit time, s (one-time)", 1.0, lambda x: f"{sig(x)} s"),
    "encode_items_s": (
        "Item encoding (two-tower item tower)",
        "item encoding time, s (one-time)",
        1.0,
        lambda x: f"{sig(x)} s",
    ),
    "throughput_users_per_s": (
        "Online throughput",
        "users / s (offline load, best batch)",
        1.0,
        lambda x: f"{num(x)} /s",
    ),
    "peak_rss_bytes": ("Peak memory", "peak RSS above baseline, MiB", 1024**2, lambda x: mib(x)),
    USD_PER_1K: ("Cost per 1,000 recommendations", "US$ per 1k recs (measured)", 1.0, lambda x: usd(x)),
}


def _styles(fits: list[GrowthFit], families: dict[str, str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per curve key, stable across panels: classic curves first, then language models.
    `families`: recommender -> family, as the run's cells record them."""

    def classic(key: str) -> bool:
        return families.get(key.split()[0].split("[")[0]) == "classic"

    keys = sorted({f.points.key for f in fits}, key=lambda k: (not classic(k), k))
    return family_styles([(k, classic(k)) for k in keys])


def _short_n(n: float) -> str:
    return f"{n / 1000:g}k" if n >= 1000 else f"{n:g}"


def _fit_text(f: GrowthFit) -> str:
    if f.fit is None:
        return "one point: no fit"
    r2 = "n/a" if f.fit.r2 is None else f"{f.fit.r2:.3f}"
    return f"b = {f.fit.exponent:.2f}, R² = {r2}, {f.fit.n_points} pts"


#: a fit is extended to unmeasured sizes only when one power law describes its points this well
PROJECT_MIN_R2 = 0.9


def _beyond(f: GrowthFit, sizes: list[int]) -> list[int]:
    """The run's sizes above this curve's last point where it did not run at all (a failed size is a fact,
    shown as a cross, not something to project over). Empty unless the fit has three or more points and
    R^2 >= PROJECT_MIN_R2: a line through scattered points (timing noise) says nothing about larger sizes."""
    if f.fit is None or f.fit.r2 is None or f.fit.r2 < PROJECT_MIN_R2:
        return []
    return [s for s in sizes if s > max(f.points.n_items) and s not in f.missing]


def _panel(metric: str, fits: list[GrowthFit], styles, sizes: list[int], out_dir: Path) -> Chart:
    title, ylabel, scale, _ = PANELS[metric]
    chart = Chart(
        f"scaling_{metric}",
        f"{title} vs catalogue size (log-log)",
        f"{title} against the number of items. Markers: measured cells; solid line: cost = a·n^b fitted "
        "by least squares on log-log axes over the measured sizes (legend: exponent b, R², points); "
        "dotted line and hollow markers: that fit extended to larger sizes — projected, not measured; "
        "crosses on the top edge: sizes where the recommender failed, or (cost only) was gated below the quality "
        "gate — reasons in the table.",
    )
    fig = _figure(11.0, 5.6, layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    largest = max(sizes)
    handles, any_projection, any_failure = [], False, False
    ys_all = []
    for f in sorted(fits, key=lambda f: list(styles).index(f.points.key)):
        colour, marker = styles[f.points.key]
        n = np.asarray(f.points.n_items, dtype=np.float64)
        y = np.asarray(f.points.values, dtype=np.float64) / scale
        keep = y > 0
        ax.plot(n[keep], y[keep], ls="", marker=marker, color=colour, markersize=7, zorder=3)
        ys_all += list(y[keep])
        if f.fit is not None:
            grid = np.geomspace(n.min(), n.max(), 50)
            ax.plot(grid, f.fit.predict(grid) / scale, color=colour, lw=1.6, zorder=2)
            if _beyond(f, sizes):
                beyond = np.asarray(_beyond(f, sizes), dtype=np.float64)
                ext = np.geomspace(n.max(), beyond.max(), 30)
                ax.plot(ext, f.fit.predict(ext) / scale, color=colour, lw=1.4, ls=":", zorder=2)
                proj = f.fit.predict(beyond) / scale
                ax.plot(
                    beyond,
                    proj,
                    ls="",
                    marker=marker,
                    markerfacecolor="white",
                    markeredgecolor=colour,
                    markersize=7,
                    zorder=3,
                )
                ys_all += list(proj)
                any_projection = True
        for n_fail in f.missing:
            ax.plot(
                [n_fail],
                [0.965],
                transform=ax.get_xaxis_transform(),
                marker="x",
                color=colour,
                markersize=9,
                mew=2,
                ls="",
                zorder=4,
                clip_on=False,
            )
            any_failure = True
        label = f"{f.points.key}: {_fit_text(f)}"
        for status in ("failed", "gated"):
            at = [_short_n(m) for m, why in sorted(f.missing.items()) if why.startswith(status)]
            if at:
                label += f"; {status} at {', '.join(at)}"
        handles.append(Line2D([], [], color=colour, marker=marker, lw=1.6, label=label))
    if any_projection:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                ls=":",
                marker="o",
                markerfacecolor="white",
                label="projected from the fit (not measured)",
            )
        )
    if any_failure:
        gated = any(why.startswith("gated") for f in fits for why in f.missing.values())
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                ls="",
                marker="x",
                mew=2,
                label="failed" + (" or gated (cost not counted)" if gated else "") + " at this size",
            )
        )
    ax.set_xticks(sizes, [_short_n(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlim(min(sizes) / 1.4, largest * 1.4)
    if ys_all:
        lo, hi = min(ys_all), max(ys_all)
        ax.set_ylim(lo / 3, hi * 4)
    ax.set_xlabel("catalogue size, items (log scale)")
    ax.set_ylabel(f"{ylabel} (log scale)")
    ax.set_title(chart.title, fontsize=12)
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(handles=handles, loc="outside right center", fontsize=8.5, frameon=False)
    chart.path = _save(fig, out_dir, f"scaling_{metric}.png")
    chart.shown = [f.points.key for f in fits]
    return chart


def _rows(fits: list[GrowthFit], sizes: list[int]) -> list[dict]:
    rows = []
    for metric in PANELS:
        for f in sorted((f for f in fits if f.points.metric == metric), key=lambda f: f.points.key):
            fmt = PANELS[metric][3]
            n_max = max(f.points.n_items)
            beyond = _beyond(f, sizes)
            projected = (beyond[-1], float(f.fit.predict(beyond[-1]))) if beyond and f.fit is not None else None
            rows.append(
                {
                    "metric": metric,
                    "curve": f.points.key,
                    "b": None if f.fit is None else f.fit.exponent,
                    "r2": None if f.fit is None else f.fit.r2,
                    "points": len(f.points.n_items),
                    "measured": f"{_short_n(min(f.points.n_items))}–{_short_n(n_max)}",
                    "at_largest": f"{fmt(f.points.values[-1])} at {_short_n(n_max)}",
                    "projected": f"{fmt(projected[1])} at {_short_n(projected[0])}" if projected else "",
                    "failed": ", ".join(f"{_short_n(n)} {why.split(':')[0]}" for n, why in sorted(f.missing.items())),
                }
            )
    return rows


def _reasons(fits: list[GrowthFit]) -> list[str]:
    """Each failed or gated (curve, size) once, with its full reason (the table shows only the status)."""
    seen: dict[tuple[str, int], str] = {}
    for f in fits:
        for n, why in sorted(f.missing.items()):
            seen.setdefault((f.points.key, n), why)
    return [f"{key} at {n:,} items — {why}" for (key, n), why in sorted(seen.items())]


def _html_reasons(reasons: list[str]) -> str:
    if not reasons:
        return ""
    return "<p>Failed or gated sizes:</p><ul>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>"


def _html_table(rows: list[dict]) -> str:
    head = [
        "cost",
        "recommender / variant",
        "exponent b",
        "R²",
        "points",
        "measured sizes",
        "largest measured",
        "projected (label: projected)",
        "failed sizes",
    ]
    body = []
    for r in rows:
        cells = _fit_cells(r)
        body.append(("", [esc(c) for c in cells]))
    return _table(head, body, text_cols=(1, 5, 6, 7, 8))


def _fit_cells(r: dict) -> list[str]:
    """One fit row's table cells, as the HTML and the Markdown tables both show them."""
    return [
        r["metric"],
        r["curve"],
        "–" if r["b"] is None else f"{r['b']:.2f}",
        "–" if r["r2"] is None else f"{r['r2']:.3f}",
        str(r["points"]),
        r["measured"],
        r["at_largest"],
        r["projected"] or "–",
        r["failed"] or "–",
    ]


def _markdown(rows: list[dict], sizes: list[int], reasons: list[str]) -> str:
    lines = [
        f"Catalogue sizes in this run: {', '.join(f'{s:,}' for s in sizes)} items. "
        f"cost = a·n^b fitted on log-log axes; R² needs 3+ points; projected figures extend a fit with R² ≥ "
        f"{PROJECT_MIN_R2:g}, never measured.",
        "",
        "| cost | recommender / variant | b | R² | points | measured sizes | largest measured | projected | failed sizes |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        cells = _fit_cells(r)
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    if reasons:
        lines += ["", "Failed or gated sizes:", ""] + [f"- {r}" for r in reasons]
    return "\n".join(lines)


def section(run: RunResult, views: list[CellView], out_dir: Path) -> Section | None:
    if not has_scaling_dimension(run):
        return None
    sizes = catalogue_sizes(run)
    fits = fits_of(run)
    styles = _styles(fits, {c.recommender: c.family for c in run.cells})
    charts = []
    for metric in PANELS:
        curves = [f for f in fits if f.points.metric == metric]
        if curves:
            charts.append(_panel(metric, curves, styles, sizes, out_dir))
    rows = _rows(fits, sizes)
    intro = (
        f"<p>Catalogue sizes: {esc(', '.join(f'{s:,}' for s in sizes))} items. Each cost is fitted as "
        "<code>cost = a · n<sup>b</sup></code> by least squares on log-log axes, per recommender and variant: "
        "<i>b</i> is the growth exponent (1 linear, 2 quadratic, below 0 falling), R² the share of the "
        "log-variance the line explains (shown from three points on). Dotted extensions are "
        f"<b>projected</b> from the fit, not measured, and drawn only where R² ≥ {PROJECT_MIN_R2:g}.</p>"
    )
    reasons = _reasons(fits)
    return Section(
        "scaling",
        "How cost grows with the catalogue",
        intro,
        charts,
        _html_table(rows) + _html_reasons(reasons),
        _markdown(rows, sizes, reasons),
    )
