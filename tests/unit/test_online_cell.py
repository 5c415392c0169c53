"""Replay cells end to end on a tiny timeline: what is timed, the same users for all, the derived comparisons,
the report section and the findings text."""

from __future__ import annotations

import numpy as np
import pytest

from bench.recommenders.online import registry
from bench.recommenders.registry import Entry
from bench.replay_cell import run_replay_cell
from bench.results import RunResult
from bench.scenario import CellSpec, Settings
from tests.support import online_probes
from tests.support.analysed import analysed
from tests.support.timelines import random_timeline, write_csv

REPLAY = "replay:start=0.5,window_days=2"
CF = [
    ("stale", {"model": "ease"}),
    ("refit", {"model": "ease"}),
    ("refit", {"model": "ials"}),
    ("ials-foldin", {}),
    ("itemknn-incremental", {}),
    ("ease-periodic", {"refit_every": 3}),
]


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    """A relative file name (cell names split on "/"), read from a private working directory."""
    where = tmp_path_factory.mktemp("d")
    write_csv(random_timeline(n_users=60, n_items=40, n_events=1200), where / "t.csv")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        yield "t.csv"


def _cell(data_path, name, params, k=10, **kw):
    spec = CellSpec(data_path, REPLAY, name, params=params, tag=params.get("model", ""), loads=())
    return run_replay_cell(
        spec, Settings(threads=1, k=k, ks=(k,)), progress=lambda m: None, pinned={"threads": 1}, **kw
    )


def test_update_timing_excludes_evaluation(data_path, monkeypatch):
    # a strategy registered from outside the package; its fake clock moves 1 s per update, 1000 s per recommend
    monkeypatch.setitem(
        registry.STRATEGIES,
        "clock-probe",
        Entry("clock-probe", "tests.support.online_probes:ClockProbe", "classic", "probe"),
    )
    cell = _cell(data_path, "clock-probe", {}, clock=online_probes.clock)
    walls = [m.value for m in cell.metrics if m.metric == "update_wall_s" and m.load.startswith("step=")]
    cpus = [m.value for m in cell.metrics if m.metric == "update_cpu_s" and m.load.startswith("step=")]
    assert len(walls) == len(cell.extras["replay"]["windows"]) - 1 >= 3
    assert walls == [online_probes.UPDATE_S] * len(walls)  # not one recommend call's 1000 s inside
    assert cpus == walls
    assert cell.metric("fit_s").value == online_probes.FIT_S
    assert cell.metric("update_wall_s_total", "replay").value == online_probes.UPDATE_S * len(walls)


@pytest.fixture(scope="module")
def cf_run(data_path):
    cells = [_cell(data_path, name, params) for name, params in CF]
    run = RunResult(
        run_id="online-test",
        scenario={"name": "online", "settings": {"threads": 1}},
        provenance={},
        cells=cells,
        created_at="2026-11-29T10:00:00+00:00",
    )
    from bench import cost

    cost.add_costs(run, hosted=None)
    return run


def test_every_strategy_is_judged_on_the_same_users_and_windows(cf_run):
    fingerprints = {c.extras["replay"]["users_fingerprint"] for c in cf_run.cells}
    assert len(fingerprints) == 1
    per_step = {tuple(tuple(r["users"]) for r in c.extras["replay_users"]) for c in cf_run.cells}
    assert len(per_step) == 1


def test_stale_reflects_nothing_and_refit_everything(cf_run):
    stale = next(c for c in cf_run.cells if c.recommender == "stale")
    refit = next(c for c in cf_run.cells if c.recommender == "refit" and c.params["model"] == "ease")
    assert stale.metric("unreflected_event_share", "replay").value == 1.0
    assert stale.metric("freshness_delay_s", "replay") is None
    assert refit.metric("unreflected_event_share", "replay").value == 0.0
    # an event is reflected at its window's end at the earliest: the delay is positive and under a window + update
    delay = refit.metric("freshness_delay_s", "replay").value
    assert 0 < delay < 2 * 86_400 + refit.metric("update_wall_s_total", "replay").value


def test_derived_costs_and_paired_comparisons(cf_run):
    stale = next(c for c in cf_run.cells if c.recommender == "stale")
    fold = next(c for c in cf_run.cells if c.recommender == "ials-foldin")
    refit_ials = next(c for c in cf_run.cells if c.recommender == "refit" and c.params["model"] == "ials")
    steps = [m for m in fold.metrics if m.metric == "update_usd"]
    cumulative = [m.value for m in fold.metrics if m.metric == "update_usd_cumulative"]
    assert len(steps) == len(fold.extras["replay_steps"]) - 1 == len(cumulative) - 1
    assert all(b >= a for a, b in zip(cumulative, cumulative[1:]))
    assert fold.metric("update_usd_total").value == pytest.approx(sum(m.value for m in steps))
    ratio = fold.metric("update_usd_ratio_vs_full_update").value
    assert ratio == pytest.approx(fold.metric("update_usd_total").value / refit_ials.metric("update_usd_total").value)
    diff = fold.metric("ndcg@10_diff_vs_full_update")
    assert diff is None or diff.ci95_low <= diff.value <= diff.ci95_high
    assert refit_ials.metric("update_usd_ratio_vs_full_update") is None  # the reference is not compared with itself
    assert stale.metric("update_usd_total").value < 1e-6 or stale.metric("update_usd_total").value >= 0


def test_paired_difference_matches_the_per_user_figures():
    from bench.online import bootstrap_mean_ci, paired
    from bench.results import CellResult

    def cell(values):
        c = CellResult("c", "d", "replay", "x", "none", "cpu")
        c.extras["replay_users"] = [
            {"step": 0, "users": [1, 2], "ndcg@10": [0.9, 0.9]},
            {"step": 1, "users": [1, 2], "ndcg@10": values[:2]},
            {"step": 2, "users": [3], "ndcg@10": values[2:]},
        ]
        return c

    d = paired(cell([0.5, 0.2, 0.1]), cell([0.3, 0.2, 0.4]), "ndcg@10")
    np.testing.assert_allclose(d, [0.2, 0.0, -0.3])  # step 0 (the shared initial fit) left out
    lo, hi = bootstrap_mean_ci(np.array([1.0, 1.0, 1.0]))
    assert lo == hi == 1.0
    other = cell([0.3, 0.2, 0.4])
    other.extras["replay_users"][1]["users"] = [1, 5]
    assert paired(cell([0.5, 0.2, 0.1]), other, "ndcg@10") is None  # different users: never paired


def test_online_figures_are_idempotent(cf_run):
    from bench import cost

    before = {c.cell: len(c.metrics) for c in cf_run.cells}
    cost.add_costs(cf_run, hosted=None)
    assert {c.cell: len(c.metrics) for c in cf_run.cells} == before


def test_report_section_draws_the_three_charts(cf_run, tmp_path):
    from bench.report import write_report

    write_report(analysed(cf_run), tmp_path)
    for name in ("online_quality.png", "online_cost.png", "online_frontier.png"):
        assert (tmp_path / name).stat().st_size > 1000
    md = (tmp_path / "report.md").read_text()
    assert "Online updates: what freshness costs" in md
    assert "ials-foldin" in md and "vs refit[ials]" in md


def test_findings_say_what_an_online_run_shows(cf_run, tmp_path):
    from bench import findings, results

    results.write(cf_run, tmp_path / "run")
    findings.store([tmp_path / "run"], tmp_path / "store")
    text = findings.render(tmp_path / "store")
    fold = next(c for c in cf_run.cells if c.recommender == "ials-foldin")
    diff = fold.metric("ndcg@10_diff_vs_full_update")
    assert f"iALS folding new users and items in differs from refit[ials] by {diff.value:+.4f}" in text
    assert "never updated, stale[ease] trails refit[ease]" in text
    assert "| strategy | NDCG@10 |" in text  # the online table, not the throughput table
    assert "users/s (best batch)" not in text


@pytest.mark.parametrize(
    "strategy, split, message",
    [
        ("nope", REPLAY, "unknown online strategy 'nope'"),
        ("refit", "replay:window_days=-1", "window_days=-1 must be positive"),
        ("refit", "replay:start=0.5,window_days=400", "fewer than 2 windows"),
    ],
)
def test_bad_replay_cells_fail_before_any_work(data_path, strategy, split, message):
    from bench.errors import ConfigError
    from bench.runner import preflight
    from bench.scenario import Scenario

    scenario = Scenario("x", "", (CellSpec(data_path, split, strategy, loads=()),), Settings(threads=1))
    with pytest.raises(ConfigError, match=message):
        preflight(scenario)


def test_a_replay_needs_timestamps(tmp_path):
    from bench.data import load_dataset
    from bench.data.replay import make_replay
    from bench.errors import ConfigError

    (tmp_path / "n.csv").write_text("user,item\n1,1\n2,2\n")
    with pytest.raises(ConfigError, match="needs timestamps"):
        make_replay(load_dataset(str(tmp_path / "n.csv")), "replay")
