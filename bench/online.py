"""Figures derived from replay cells after the run: what keeping a model fresh costs, and the comparisons the
`online` scenario exists for. Pure functions of the results and the price sheet (called by bench.cost.add_costs,
so a report re-priced with another sheet re-derives them); idempotent: this module's rows are replaced.

Cost (label measured: this run's wall time at the mapped price, as every measured cost in the suite):
    update_usd             per step (load step=NN): update_wall_s x the hourly price of the cell's machine share
    update_usd_cumulative  per step: the initial fit's cost plus every update so far (step 0: the fit alone)
    update_usd_total       updates only; replay_usd_total adds the initial fit
    update_usd_per_day     estimated: the mean update's cost x updates a day at EVENTS_PER_S events a second,
                           one update per window-sized batch of events (the replay's mean window)
Comparisons (load replay), each on the cell compared and paired over the same (step, user) pairs, update steps
only; 95% intervals by bootstrap over those pairs (BOOTSTRAP_RESAMPLES, seeded):
    ndcg@10_diff_vs_full_update, recall@10_diff_vs_full_update   this cell minus the strategy of the same model
                           that rebuilds it from all history (refit; two-tower-finetune for the two-tower)
    ndcg@10_diff_vs_full_update_early / _late                    the same over the first / second half of the steps
                           (stale vs refit: how quality decays without updates)
    update_usd_ratio_vs_full_update                              this cell's update cost over the reference's
    fresh_recall@10_diff_vs_best_cf                              language-model cells: recall on items first seen
                           in the window before, minus the classic cell best on it, over users who have such items
Frontier (extras["online_frontier"]): a strategy is on the cost-quality frontier when every cheaper one (initial fit +
updates) is clearly worse on NDCG@10: the interval of the paired difference above 0 (bench.analysis.paired's rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.results import CellResult, MetricRow, RunResult

#: the event rate $ per day is stated at (events a second, all users together)
EVENTS_PER_S = 10.0
BOOTSTRAP_RESAMPLES = 2000
SEED = 0
K = 10
REPLAY_LOAD = "replay"
NDCG, RECALL, FRESH = f"ndcg@{K}", f"recall@{K}", f"fresh_recall@{K}"
DIFF = "_diff_vs_full_update"
COST_ROWS = ("update_usd", "update_usd_cumulative", "update_usd_total", "replay_usd_total", "update_usd_per_day")
COMPARISON_ROWS = (
    NDCG + DIFF,
    RECALL + DIFF,
    NDCG + DIFF + "_early",
    NDCG + DIFF + "_late",
    "update_usd_ratio_vs_full_update",
    FRESH + "_diff_vs_best_cf",
)


def is_replay_cell(cell: CellResult) -> bool:
    return "replay_strategy" in cell.extras


def replay_cells(run: RunResult) -> list[CellResult]:
    return [c for c in run.cells if is_replay_cell(c) and c.status == "ok"]


def add_online_figures(run: RunResult, hourly_usd_of) -> None:
    """`hourly_usd_of(cell) -> float | None`: the price per hour of the machine share a cell ran on."""
    cells = replay_cells(run)
    for cell in cells:
        cell.metrics[:] = [m for m in cell.metrics if m.metric not in COST_ROWS]
        hourly = hourly_usd_of(cell)
        if hourly is not None:
            _costs(cell, hourly)
    add_online_comparisons(run)


def add_online_comparisons(run: RunResult) -> None:
    """The paired comparisons and the frontier, from the cells' per-user figures and cost rows (replaced, so that
    re-pricing a run derives them again)."""
    cells = replay_cells(run)
    for cell in cells:
        cell.metrics[:] = [m for m in cell.metrics if m.metric not in COMPARISON_ROWS]
        cell.extras.pop("online_comparisons", None)
        cell.extras.pop("online_frontier", None)
    _comparisons(cells)
    _frontier(cells)


def _costs(cell: CellResult, hourly: float) -> None:
    steps = cell.extras.get("replay_steps", [])
    updates = [s for s in steps if s["step"] > 0]
    if not steps or not updates:
        return
    per_s = hourly / 3600.0
    fit_usd = steps[0]["wall_s"] * per_s
    how = f"wall time x ${hourly:.4g}/h (the cell's machine share)"
    total = fit_usd
    cell.add("update_usd_cumulative", total, "usd", load="step=00", flag="the initial fit")
    for s in updates:
        usd = s["wall_s"] * per_s
        total += usd
        cell.add("update_usd", usd, "usd", load=f"step={s['step']:02d}", n=1, flag=how)
        cell.add(
            "update_usd_cumulative",
            total,
            "usd",
            load=f"step={s['step']:02d}",
            flag="initial fit plus every update so far",
        )
    updates_usd = total - fit_usd
    cell.add("update_usd_total", updates_usd, "usd", load=REPLAY_LOAD, n=len(updates), flag=how)
    cell.add("replay_usd_total", total, "usd", load=REPLAY_LOAD, n=len(updates) + 1, flag="initial fit + updates")
    events = float(np.mean([s["window_events"] for s in updates]))
    if events > 0:
        per_day = EVENTS_PER_S * 86_400 / events
        cell.add(
            "update_usd_per_day",
            updates_usd / len(updates) * per_day,
            "usd",
            load=REPLAY_LOAD,
            label="estimated",
            flag=f"at {EVENTS_PER_S:g} events/s: {per_day:,.0f} updates a day of "
            f"{events:,.0f} events each (this replay's mean window)",
        )


# ------------------------------------------------------------------------------------------- comparisons


def paired(
    cell: CellResult, other: CellResult, metric: str, steps: tuple[int, int] | None = None, users_key: str = "users"
) -> np.ndarray | None:
    """cell's per-user `metric` minus other's, over the update steps (or steps lo..hi), matched by (step, user)."""
    mine, theirs = _per_user(cell, metric, users_key), _per_user(other, metric, users_key)
    if mine is None or theirs is None:
        return None
    diffs = []
    for step, (users, values) in mine.items():
        if step == 0 or (steps is not None and not steps[0] <= step <= steps[1]) or step not in theirs:
            continue
        other_users, other_values = theirs[step]
        if not np.array_equal(users, other_users):
            return None  # not the same users: no paired comparison
        diffs.append(values - other_values)
    return np.concatenate(diffs) if diffs else None


def _per_user(cell: CellResult, metric: str, users_key: str) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
    rows = cell.extras.get("replay_users")
    if not rows:
        return None
    return {
        int(r["step"]): (np.asarray(r[users_key], dtype=np.int64), np.asarray(r[metric], dtype=np.float64))
        for r in rows
        if metric in r
    }


def bootstrap_mean_ci(
    values: np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling the values with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _add_diff(cell: CellResult, name: str, diffs: np.ndarray | None, flag: str) -> MetricRow | None:
    if diffs is None or diffs.size == 0:
        return None
    lo, hi = bootstrap_mean_ci(diffs)
    return cell.add(
        name,
        float(diffs.mean()),
        "",
        load=REPLAY_LOAD,
        n=int(diffs.size),
        ci95_low=lo,
        ci95_high=hi,
        label="measured",
        flag=flag,
    )


def _comparisons(cells: list[CellResult]) -> None:
    fingerprints = {c.extras.get("replay", {}).get("users_fingerprint") for c in cells}
    if len(fingerprints) > 1:  # different replays: nothing is paired
        return
    refs = {c.extras["replay_strategy"]["model"]: c for c in cells if c.extras["replay_strategy"].get("full_update")}
    for cell in cells:
        ref = refs.get(cell.extras["replay_strategy"]["model"])
        if ref is None or ref is cell:
            continue
        n_steps = max(int(r["step"]) for r in cell.extras["replay_users"])
        half = max(1, n_steps // 2)
        flag = f"minus {ref.cell}, paired by (step, user), update steps"
        notes: dict[str, Any] = {"reference": ref.cell}
        for metric in (NDCG, RECALL):
            _add_diff(cell, metric + DIFF, paired(cell, ref, metric), flag)
        _add_diff(cell, NDCG + DIFF + "_early", paired(cell, ref, NDCG, (1, half)), flag + f" 1-{half}")
        _add_diff(
            cell, NDCG + DIFF + "_late", paired(cell, ref, NDCG, (half + 1, n_steps)), flag + f" {half + 1}-{n_steps}"
        )
        mine, theirs = cell.metric("update_usd_total"), ref.metric("update_usd_total")
        if mine is not None and theirs is not None and theirs.value > 0:
            cell.add(
                "update_usd_ratio_vs_full_update",
                mine.value / theirs.value,
                "ratio",
                load=REPLAY_LOAD,
                flag=f"update cost over {ref.cell}'s",
            )
        cell.extras["online_comparisons"] = notes
    classic = [c for c in cells if c.extras["replay_strategy"].get("family") == "classic" and c.metric(FRESH)]
    if not classic:
        return
    best_cf = max(classic, key=lambda c: c.value(FRESH))
    for cell in cells:
        if cell.extras["replay_strategy"].get("family") != "llm":
            continue
        diffs = paired(cell, best_cf, FRESH, users_key="fresh_users")
        if _add_diff(
            cell,
            FRESH + "_diff_vs_best_cf",
            diffs,
            f"minus {best_cf.cell} (the classic cell best on fresh items), paired by (step, user)",
        ):
            cell.extras.setdefault("online_comparisons", {})["best_cf_on_fresh_items"] = best_cf.cell


def _frontier(cells: list[CellResult]) -> None:
    priced = [c for c in cells if c.metric("replay_usd_total") is not None and c.metric(NDCG, REPLAY_LOAD)]
    order = sorted(priced, key=lambda c: (c.value("replay_usd_total"), -c.value(NDCG, REPLAY_LOAD)))
    for pos, cell in enumerate(order):
        beaten_by = None
        for cheaper in order[:pos]:
            diffs = paired(cell, cheaper, NDCG)
            if diffs is None or diffs.size == 0 or bootstrap_mean_ci(diffs)[0] <= 0:
                beaten_by = cheaper.cell  # not clearly better than a cheaper strategy
                break
        cell.extras["online_frontier"] = {
            "on": beaten_by is None,
            "beaten_by": beaten_by,
            "rule": "every cheaper strategy clearly worse: paired NDCG@10 interval > 0",
        }
