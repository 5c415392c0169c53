"""A replay cell: one update strategy over a replay, inside the cell's own process.

Order of work: data -> replay (windows and every evaluation target, built before any timing, from the data
alone: the same users and windows for every strategy) -> initial fit (timed) -> evaluation point 0 -> per window:
update (timed: wall and CPU-seconds, peak RSS sampled) then the next window's evaluation (never timed).

Rows (load "replay" for the summary over the replay, "step=NN" per evaluation point; step 0 is the initial fit):
    fit_s, fit_cpu_s                       the initial fit (priced as one-time cost like any fit_s)
    fit_peak_rss_bytes                     peak RSS during the initial fit, above the RSS when it began
    update_wall_s, update_cpu_s            per step; totals update_wall_s_total, update_cpu_s_total and the mean
                                           update_wall_s_mean (CPU-seconds: every thread of the process)
    update_peak_rss_bytes                  per step: peak RSS during the update, above the RSS when it began
    window_events                          per step: interactions the update absorbed
    ndcg@10, recall@10                     full ranking of the next window (seen items excluded); per step the mean
                                           over its users (n), the summary over every (step, user) pair
    fresh_recall@10                        recall on items first seen in the window before (users who have one)
    freshness_delay_s                      per step: mean time from an event to the model reflecting it (the
                                           event's window end plus the update's wall time) over the events this
                                           update made visible; summary: over every reflected event
    unreflected_event_share                share of replayed events the strategy never reflected
    peak_rss_bytes, footprint_bytes        the whole cell's peak above its start (data loaded); the final model
Per-user figures (for paired comparisons) are kept in extras["replay_users"].
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.cell_common import Phases, Progress, check_checksum, new_result, run_context
from bench.results import CellResult
from bench.scenario import CellSpec, Settings

#: (wall ns, CPU ns of this process, all threads) -- injectable so tests can prove what is timed
Clock = Callable[[], tuple[int, int]]
BATCH_USERS = 256


def default_clock() -> tuple[int, int]:
    return time.perf_counter_ns(), time.process_time_ns()


def run_replay_cell(
    spec: CellSpec,
    settings: Settings,
    progress: Progress,
    pinned: dict[str, Any],
    clock: Clock = default_clock,
    expected_checksum: str | None = None,
) -> CellResult:
    from bench.data import load_dataset
    from bench.data.replay import make_replay
    from bench.measure.memory import RssSampler
    from bench.recommenders.online import registry

    result = new_result(spec)
    phases = Phases(progress)
    phases.start("data", "loading data, cutting the replay")
    dataset = load_dataset(spec.dataset, data_dir=settings.data_dir)
    check_checksum(spec, dataset, expected_checksum)  # a node with other data fails before any measurement
    replay = make_replay(dataset, spec.split)
    targets = [replay.target(n) for n in range(len(replay.windows))]
    k = settings.k
    result.provenance = {
        "threads": pinned,
        "seed": settings.seed,
        "data_checksum": dataset.checksum,
        "data_source": dataset.source,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_interactions": len(dataset.interactions),
    }
    entry = registry.get(spec.recommender)
    result.family = entry.family
    strategy = entry.build_in(run_context(spec, settings), dict(spec.params))
    result.extras["replay"] = {
        **replay.describe(),
        "evaluated_users": [int(t.users.size) for t in targets],
        "users_fingerprint": _fingerprint(targets),
    }
    result.extras["replay_strategy"] = strategy.describe()

    steps: list[dict[str, Any]] = []
    per_user: list[dict[str, Any]] = []
    pending_items = np.zeros(0, np.int64)  # events not reflected yet: their item and time
    pending_t = np.zeros(0, np.int64)
    baseline: int | None = None
    peak_total = 0
    for point in range(len(replay.windows)):
        if point == 0:
            train = replay.initial
            phases.start("fit", f"initial fit on {len(train.interactions):,} interactions")
            with RssSampler() as rss:
                wall, cpu, what = _timed(clock, functools.partial(strategy.start, train))
            what = "initial fit"
        else:
            update = replay.update(point)
            phases.start(
                "update",
                f"update {point}/{len(replay.windows) - 1}: "
                f"{len(update.window.interactions):,} events, {update.window.new_users.size} new "
                f"users, {update.window.new_items.size} new items",
            )
            with RssSampler() as rss:
                wall, cpu, what = _timed(clock, functools.partial(strategy.update, update))
            window = update.window.interactions
            assert window.timestamps is not None  # a replay's windows always carry event times (make_replay checks)
            pending_items = np.concatenate([pending_items, window.items.astype(np.int64)])
            pending_t = np.concatenate([pending_t, window.timestamps.astype(np.int64)])
        mem = rss.report()
        baseline = mem.baseline_rss_bytes if baseline is None else baseline
        peak_total = max(peak_total, mem.peak_rss_total_bytes)
        step = {
            "step": point,
            "what": what,
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_rss_bytes": mem.peak_rss_bytes,
            "window_events": 0 if point == 0 else len(replay.windows[point - 1].interactions),
        }
        if point and strategy.updates_history:
            # an event is reflected once the user's history holds it and its item is in the model's catalogue:
            # at the end of the window that brought it, plus the update's own time
            done = strategy.catalogue[pending_items]
            delays = replay.start_of(point) + wall - pending_t[done]
            step["reflected_events"] = int(done.sum())
            step["freshness_delay_s"] = float(delays.mean()) if delays.size else None
            step["_delays_sum"] = float(delays.sum())
            pending_items, pending_t = pending_items[~done], pending_t[~done]
        phases.start("quality", f"evaluating point {point} ({targets[point].users.size} users)")
        figures = _evaluate(strategy, targets[point], k)  # never inside the timed region
        step.update({key: value for key, value in figures.items() if not key.startswith("_")})
        per_user.append(
            {
                "step": point,
                "users": targets[point].users.tolist(),
                f"ndcg@{k}": figures["_ndcg"].tolist(),
                f"recall@{k}": figures["_recall"].tolist(),
                "fresh_users": figures["_fresh_users"].tolist(),
                f"fresh_recall@{k}": figures["_fresh_recall"].tolist(),
            }
        )
        steps.append(step)
    phases.stop()
    _rows(result, steps, per_user, k, unreflected=int(pending_items.size))
    result.add("footprint_bytes", strategy.footprint(), "bytes")
    result.add(
        "peak_rss_bytes",
        max(0, peak_total - (baseline or 0)),
        "bytes",
        n=len(steps),
        flag="peak over the initial fit and every update, above the RSS once the data was loaded",
    )
    result.extras["replay_steps"] = [{k_: v for k_, v in s.items() if not k_.startswith("_")} for s in steps]
    result.extras["replay_users"] = per_user
    result.extras["phase_wall_s"] = phases.wall_s
    return result


def _timed(clock: Clock, work: Callable[[], Any]) -> tuple[float, float, Any]:
    wall0, cpu0 = clock()
    out = work()
    wall1, cpu1 = clock()
    return (wall1 - wall0) / 1e9, (cpu1 - cpu0) / 1e9, out


def _fingerprint(targets) -> str:
    """A short hash of who is evaluated at each point: equal across cells means the same users and windows."""
    import hashlib

    h = hashlib.sha256()
    for t in targets:
        h.update(t.users.astype(np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def _evaluate(strategy, target, k: int) -> dict[str, Any]:
    """Per-user NDCG@k and Recall@k on the target window, and recall on its fresh items (bench.quality's
    metric functions; full ranking over the strategy's catalogue, the history excluded)."""
    from bench.quality import hit_matrix, ndcg_at_k, recall_at_k

    users = target.users
    fresh = np.zeros(target.relevant.shape[1], dtype=bool)
    fresh[target.fresh_items] = True
    ndcg, recall, fresh_recall, fresh_users = [], [], [], []
    for start in range(0, users.size, BATCH_USERS):
        batch = users[start : start + BATCH_USERS]
        top = strategy.recommend(batch, k, exclude=target.seen)
        rel = target.relevant[batch]
        hits = hit_matrix(top.items, rel)
        n_rel = np.diff(rel.indptr)
        ndcg.append(ndcg_at_k(hits, n_rel))
        recall.append(recall_at_k(hits, n_rel))
        n_fresh = np.asarray(rel[:, fresh].sum(axis=1)).ravel().astype(np.int64)
        has = n_fresh > 0
        if has.any():
            fresh_hits = hits & fresh[np.asarray(top.items, dtype=np.int64)]
            fresh_recall.append(recall_at_k(fresh_hits[has], n_fresh[has]))
            fresh_users.append(batch[has])
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    out: dict[str, Any] = {
        "_ndcg": cat(ndcg),
        "_recall": cat(recall),
        "_fresh_recall": cat(fresh_recall),
        "_fresh_users": cat(fresh_users).astype(np.int64),
        "users": int(users.size),
        "fresh_items": int(target.fresh_items.size),
    }
    out[f"ndcg@{k}"] = float(out["_ndcg"].mean()) if users.size else None
    out[f"recall@{k}"] = float(out["_recall"].mean()) if users.size else None
    out[f"fresh_recall@{k}"] = float(out["_fresh_recall"].mean()) if out["_fresh_recall"].size else None
    out["fresh_users"] = int(out["_fresh_users"].size)
    return out


def _rows(result: CellResult, steps: list[dict], per_user: list[dict], k: int, unreflected: int) -> None:
    """Summary rows (load "replay") first, so a reader asking for a metric by name gets the replay's figure;
    then one block per step (load "step=NN")."""
    updates = [s for s in steps if s["step"] > 0]
    first = steps[0]
    result.add("fit_s", first["wall_s"], "s", n=1)
    result.add("fit_cpu_s", first["cpu_s"], "s", n=1)
    for name in (f"ndcg@{k}", f"recall@{k}"):
        values = np.concatenate([np.asarray(p[name]) for p in per_user[1:]]) if len(per_user) > 1 else np.zeros(0)
        if values.size:
            result.add(
                name,
                float(values.mean()),
                "",
                load="replay",
                n=int(values.size),
                flag="mean over every (update step, evaluated user) pair",
            )
    fresh = (
        np.concatenate([np.asarray(p[f"fresh_recall@{k}"]) for p in per_user[1:]]) if len(per_user) > 1 else np.zeros(0)
    )
    if len(fresh):
        result.add(
            f"fresh_recall@{k}",
            float(np.mean(fresh)),
            "",
            load="replay",
            n=int(len(fresh)),
            flag="users with an item first seen in the window before; mean over (step, user) pairs",
        )
    result.add("update_wall_s_total", sum(s["wall_s"] for s in updates), "s", load="replay", n=len(updates))
    result.add("update_cpu_s_total", sum(s["cpu_s"] for s in updates), "s", load="replay", n=len(updates))
    result.add("update_wall_s_mean", float(np.mean([s["wall_s"] for s in updates])), "s", load="replay", n=len(updates))
    reflected = sum(s.get("reflected_events", 0) for s in updates)
    if reflected:
        delay = sum(s["_delays_sum"] for s in updates if "_delays_sum" in s) / reflected
        result.add(
            "freshness_delay_s",
            delay,
            "s",
            load="replay",
            n=reflected,
            flag="mean over reflected events: window end + update wall time - event time",
        )
    total_events = sum(s["window_events"] for s in updates)
    if total_events:
        result.add("unreflected_event_share", unreflected / total_events, "ratio", load="replay", n=total_events)
    result.add("update_steps", len(updates), "count", load="replay")
    result.add("fit_peak_rss_bytes", first["peak_rss_bytes"], "bytes", flag="above the RSS when the fit began")
    for s in steps:
        load = f"step={s['step']:02d}"
        if s["step"]:  # step 0 is the initial fit: fit_s, fit_cpu_s and fit_peak_rss_bytes above
            result.add("update_wall_s", s["wall_s"], "s", load=load, n=1)
            result.add("update_cpu_s", s["cpu_s"], "s", load=load, n=1)
            result.add(
                "update_peak_rss_bytes",
                s["peak_rss_bytes"],
                "bytes",
                load=load,
                flag="above the RSS when the update began",
            )
            result.add("window_events", s["window_events"], "count", load=load)
        if s.get("freshness_delay_s") is not None:
            result.add("freshness_delay_s", s["freshness_delay_s"], "s", load=load, n=s["reflected_events"])
        for name in (f"ndcg@{k}", f"recall@{k}"):
            if s.get(name) is not None:
                result.add(name, s[name], "", load=load, n=s["users"])
        if s.get(f"fresh_recall@{k}") is not None:
            result.add(f"fresh_recall@{k}", s[f"fresh_recall@{k}"], "", load=load, n=s["fresh_users"])
