"""One rule for every quality comparison: on the users both cells evaluated, paired, with an interval and its n.

The cells here are built by hand with per-user figures (one relevant item per user; a hit at rank r gives
NDCG 1/log2(r + 1)), so every expected mean and intersection can be worked out from the arrays.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bench import cost
from bench.analysis.cells import apply_quality_gate
from bench.analysis.paired import compare_arrays, compare_cells, frontier, gate_verdict
from bench.compare import compare
from bench.findings import in_brief
from bench.metrics import HOSTED_USD
from bench.per_user import PerUser
from bench.quality import per_user_metrics
from bench.report.headlines import headlines
from bench.report.view import build_views
from bench.results import CellResult, HostedLine, MetricRow, RunResult

K = 10


def make_cell(
    rec: str,
    variant: str,
    users,
    ranks,
    usd: float | None = None,
    sampled: bool = False,
    per_user: bool = True,
    n_test_users: int = 200,
) -> CellResult:
    """A cell whose user u (users[i]) has its one relevant item at rank ranks[i] (0: not in the top K)."""
    users, ranks = np.asarray(users), np.asarray(ranks)
    hits = np.zeros((users.size, K), dtype=bool)
    hits[np.flatnonzero(ranks), ranks[ranks > 0] - 1] = True
    n_rel = np.ones(users.size, dtype=np.int64)
    c = CellResult(
        cell=f"ml/s/{rec}/{variant}/cpu",
        dataset="ml",
        split="s",
        recommender=rec,
        variant=variant,
        device="cpu",
        provenance={"seed": 0},
        family="llm" if rec.startswith("llm") else "classic",
    )
    flag = f"sampled users: {users.size}" if sampled else ""
    for name, values in per_user_metrics(hits, n_rel, (K,)).items():
        c.add(name, float(values.mean()), n=int(users.size), flag=flag)
    if per_user:
        c.per_user = PerUser(users=users, hits=hits, n_relevant=n_rel).to_dict()
    if usd is not None:
        c.add(cost.USD_PER_1K, usd, "USD", load="offline")
    if rec.startswith("llm-rerank"):
        c.extras["gate_key"] = f"llm-rerank|blend='learned'|retriever='ease'|n={rec}"
    elif rec.startswith("llm"):
        c.extras["gate_key"] = f"{rec}|model"
    return c


RNG = np.random.default_rng(7)
ALL = np.arange(200)
EASE_RANKS = RNG.choice([0, 0, 0, 1, 2, 3, 5, 8], size=200)  # EASE's rank of each user's relevant item


#: the 50 users EASE serves best: a sample a re-ranker that keeps EASE's order would score "above EASE" on
def gains(ranks) -> np.ndarray:
    """Each user's NDCG@10 with one relevant item at `rank` (0: missed)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.divide(1.0, np.log2(ranks + 1), out=np.zeros_like(ranks), where=ranks > 0)


SAMPLE = np.sort(np.argsort(-gains(EASE_RANKS), kind="stable")[:50])


def ndcg(ranks) -> float:
    return float(gains(ranks).mean())


# ---------------------------------------------------------------- the rule itself


def test_comparison_rests_on_the_intersection_and_reports_its_n():
    a = compare_arrays(
        "ndcg@10",
        np.array([1, 2, 3, 4]),
        np.array([1.0, 0.5, 0.0, 1.0]),
        np.array([2, 4, 9]),
        np.array([0.5, 0.0, 1.0]),
    )
    # shared users 2 and 4: A (0.5, 1.0) against B (0.5, 0.0)
    assert (a.n, a.n_a, a.n_b) == (2, 4, 3) and a.paired and not a.same_users
    assert a.a == pytest.approx(0.75) and a.b == pytest.approx(0.25) and a.diff == pytest.approx(0.5)
    assert a.diff_ci95[0] <= 0.5 <= a.diff_ci95[1]
    assert compare_arrays("x", np.array([1]), np.array([1.0]), np.array([2]), np.array([1.0])).comparable is False


def test_a_systematic_gain_is_clearly_better_and_the_interval_is_seeded():
    users = np.arange(300)
    base = np.random.default_rng(1).random(300)
    gain = compare_arrays("ndcg@10", users, base + 0.05, users, base)
    assert gain.verdict == "better" and gain.same_users and gain.diff == pytest.approx(0.05)
    noise = compare_arrays("ndcg@10", users, base + np.random.default_rng(2).normal(0, 0.3, 300), users, base)
    assert noise.verdict == "not distinguishable"
    assert compare_arrays("ndcg@10", users, base + 0.05, users, base) == gain  # the same interval every time
    same = compare_arrays("ndcg@10", users, base, users, base)
    assert same.identical and same.diff_ci95 == (0.0, 0.0) and same.verdict == "not distinguishable"


def test_without_per_user_figures_means_compare_only_over_provably_the_same_users():
    full_a = make_cell("ease", "none", ALL, EASE_RANKS, per_user=False)
    full_b = make_cell("pop", "none", ALL, np.roll(EASE_RANKS, 1), per_user=False)
    sample = make_cell("llm-rerank", "fp32", SAMPLE, EASE_RANKS[SAMPLE], sampled=True, per_user=False)
    same = compare_cells(full_a, full_b)
    assert same.comparable and not same.paired and same.n == 200 and same.verdict == "unpaired"
    other = compare_cells(sample, full_a)
    assert not other.comparable and other.verdict == "not comparable" and (other.n_a, other.n_b) == (50, 200)


# ---------------------------------------------------------------- the quality gate


def test_gate_passes_fails_or_cannot_tell_by_the_interval_of_the_paired_ratio():
    users = np.arange(400)
    fp32 = np.random.default_rng(3).random(400)
    keeps = compare_arrays("ndcg@10", users, fp32 * 0.999, users, fp32)
    loses = compare_arrays("ndcg@10", users, fp32 * 0.80, users, fp32)
    noisy = compare_arrays(
        "ndcg@10", users, np.clip(fp32 + np.random.default_rng(4).normal(0, 0.2, 400), 0, 1), users, fp32
    )
    assert gate_verdict(keeps, 0.99) == "passed"
    assert gate_verdict(loses, 0.99) == "failed"
    assert noisy.ratio_ci95[0] < 0.99 < noisy.ratio_ci95[1] and gate_verdict(noisy, 0.99) == "not distinguishable"


def test_gate_says_not_distinguishable_when_fp32_is_not_clear_of_zero():
    fp32_ranks = np.zeros(200, dtype=int)
    fp32_ranks[17] = 1  # one hit among 200 users: its mean's interval reaches 0
    run = RunResult(
        "r",
        {},
        {},
        cells=[
            make_cell("llm-two-tower", "fp32", ALL, fp32_ranks),
            make_cell("llm-two-tower", "int8", ALL, np.zeros(200, dtype=int)),
        ],
    )
    apply_quality_gate(run, 0.99)
    int8 = run.cells[1]
    gate = int8.extras["quality_gate"]
    assert int8.status == "ok" and gate["verdict"] == "not distinguishable" and gate["passed"] is None
    assert gate["reference_ci95"][0] == 0.0
    assert "not clear of zero" in int8.metric("quality_retained_vs_fp32").flag


# ---------------------------------------------------------------- every comparison path, two user sets


@pytest.fixture()
def sampled_run() -> RunResult:
    """EASE on all 200 test users; a re-ranker on a 50-user sample (EASE's best users) that ranks exactly as EASE
    there, at 1000x its cost; its onnx-int8 variant on an overlapping sample of 40; a cheap pop."""
    int8_users = np.sort(np.concatenate([SAMPLE[10:], np.setdiff1d(ALL, SAMPLE)[:10]]))
    int8_ranks = EASE_RANKS[int8_users].copy()
    cells = [
        make_cell("ease", "none", ALL, EASE_RANKS, usd=1e-6),
        make_cell("pop", "none", ALL, np.where(EASE_RANKS > 3, 0, EASE_RANKS), usd=5e-7),
        make_cell("llm-rerank", "fp32", SAMPLE, EASE_RANKS[SAMPLE], usd=1e-3, sampled=True),
        make_cell("llm-rerank", "onnx-int8", int8_users, int8_ranks, usd=7e-4, sampled=True),
    ]
    for c, speed in zip(cells[2:], (1.0, 1.5)):
        c.add("throughput_users_per_s", speed, "users/s", load="offline")
        c.add("blend_ce_spread_share", 0.0001)
        c.add("blend_ce_weight_norm", 0.0002)
        c.add("blend_order_kept_share", 1.0)
    return RunResult("r1", {"name": "t"}, {}, cells=cells)


def test_the_trap_a_sampled_cell_reads_above_its_reference_on_its_own_mean(sampled_run):
    ease, _, rerank, _ = sampled_run.cells
    assert rerank.metric("ndcg@10").value > ease.metric("ndcg@10").value  # what an unpaired report would quote


def test_headline_sets_a_sampled_cell_against_its_reference_on_the_same_users(sampled_run):
    heads = headlines(build_views(sampled_run))
    versus = next(h for h in heads if h.kind == "llm-vs-classic" and h.text.startswith("llm-rerank fp32"))
    assert versus.figures["n"] == 50 and versus.figures["quality_share"] == pytest.approx(1.0)
    assert versus.figures["ref_quality"] == pytest.approx(ndcg(EASE_RANKS[SAMPLE]))
    assert "on the 50 users both evaluated (identical for each of them)" in versus.text
    assert f"ease on all its 200 users: {ndcg(EASE_RANKS):.3f}"[:30] in versus.text
    blend = next(h for h in heads if h.kind == "blend" and h.text.startswith("llm-rerank fp32"))
    assert "the blend kept the retriever's order" in blend.text and "50 users" in blend.text


def test_frontier_leaves_out_a_dearer_cell_that_only_matches_a_cheaper_one_on_shared_users(sampled_run):
    ease, pop, rerank, int8 = sampled_run.cells
    costs = [c.metric(cost.USD_PER_1K).value for c in sampled_run.cells]
    front = frontier(sampled_run.cells, costs)
    assert [sampled_run.cells[i] for i in front.on] == [pop, ease]
    # each re-ranker is matched by a cheaper cell on exactly the users the two share (identical rankings there)
    users = {id(c): PerUser.from_dict(c.per_user).users for c in sampled_run.cells}
    for i in (2, 3):
        by, c = front.beaten_by[i]
        shared = np.intersect1d(users[id(sampled_run.cells[i])], users[id(sampled_run.cells[by])]).size
        assert costs[by] < costs[i] and c.n == shared and c.identical and c.n < 200
    head = next(h for h in headlines(build_views(sampled_run)) if h.kind == "frontier")
    assert "llm-rerank" not in head.text and "n=200" in head.text  # ease's step over pop rests on all 200 users


def test_findings_in_brief_quotes_the_reference_on_the_same_users(sampled_run):
    brief = " ".join(in_brief(sampled_run))
    assert "on the 50 users both evaluated" in brief and "identical" in brief
    assert "identical for each of the 40 users" in brief  # int8 against fp32: the 40 users they share


def test_gate_compares_a_variant_with_fp32_on_the_users_both_evaluated(sampled_run):
    apply_quality_gate(sampled_run, 0.99)
    int8 = sampled_run.cells[3]
    gate = int8.extras["quality_gate"]
    assert gate["n"] == 40 and gate["paired"] and int8.metric("quality_retained_vs_fp32").n == 40
    assert gate["retained"] == pytest.approx(1.0) and gate["verdict"] == "passed"  # identical on the 40 shared


def test_compare_pairs_the_same_cell_across_runs_and_a_smaller_sample_raises_no_false_alarm(sampled_run):
    base = sampled_run
    head = copy.deepcopy(base)
    head.run_id = "r2"
    ease_b = base.cells[0]
    # head evaluated EASE on a 60-user sample (its worst users): the mean falls far beyond the tolerance ...
    worst = np.sort(np.argsort(gains(EASE_RANKS), kind="stable")[:60])
    head.cells[0] = make_cell("ease", "none", worst, EASE_RANKS[worst], usd=1e-6, sampled=True)
    assert ease_b.metric("ndcg@10").value - head.cells[0].metric("ndcg@10").value > 0.1
    verdict = compare(base, head)
    found = next(f for f in verdict.findings if f.cell == ease_b.cell and f.metric == "ndcg@10")
    # ... but on the 60 users both runs evaluated nothing changed
    assert found.verdict == "ok" and found.n == 60 and "60 users both runs evaluated" in found.detail
    assert not [f for f in verdict.regressions if f.kind == "quality"]


def test_compare_flags_a_real_drop_on_the_shared_users(sampled_run):
    head = copy.deepcopy(sampled_run)
    worse = np.where(EASE_RANKS == 1, 3, EASE_RANKS)  # every first-place hit falls to third
    head.cells[0] = make_cell("ease", "none", ALL, worse, usd=1e-6)
    found = next(
        f for f in compare(sampled_run, head).findings if f.cell == sampled_run.cells[0].cell and f.metric == "ndcg@10"
    )
    assert found.verdict == "regression" and found.n == 200 and "paired" in found.detail


def test_compare_without_per_user_figures_keeps_the_mean_gate_and_says_it_is_unpaired():
    base = RunResult("b", {}, {}, cells=[make_cell("ease", "none", ALL, EASE_RANKS, per_user=False)])
    head = RunResult(
        "h", {}, {}, cells=[make_cell("ease", "none", SAMPLE, EASE_RANKS[SAMPLE], per_user=False, sampled=True)]
    )
    found = next(f for f in compare(head, base).findings if f.metric == "ndcg@10")
    assert found.verdict == "warning" and "unpaired means over different users (n=50 vs 200)" in found.detail


def test_reports_and_charts_show_a_sampled_cell_beside_its_reference_on_the_same_users(sampled_run, tmp_path):
    from bench.report import charts
    from bench.report import markdown as md

    views = build_views(sampled_run)
    text = md.render(sampled_run, views, headlines(views))
    assert f"ease on the same 50 users: {ndcg(EASE_RANKS[SAMPLE]):.3f}" in text
    chart = charts.quality_vs_cost(views, tmp_path, "test")
    assert chart.path is not None and chart.path.exists()
    assert "sampled" in chart.caption.lower() or "sample" in chart.caption
    variants = charts.variants(views, tmp_path)
    assert variants.path is not None and variants.path.exists()


def test_a_hosted_api_is_set_against_the_local_cell_doing_the_same_job_and_says_it_compares_cost_only(sampled_run):
    sampled_run.cells[2].add("candidates_per_request", 50.0)  # the fp32 re-ranker re-ranks 50 per request
    sampled_run.cells.append(make_cell("llm-two-tower", "fp32", ALL, EASE_RANKS, usd=1e-4))  # cheaper, other job
    sampled_run.derived.hosted.append(
        HostedLine(
            name="ml/s/hosted-llm/gpt-4o-mini/api",
            dataset="ml",
            split="s",
            entry="gpt-4o-mini",
            workload={"settings": {"n_candidates": 50}},
            metrics=[MetricRow(HOSTED_USD, 0.3, "USD", label="estimated")],
        )
    )
    line = next(h for h in headlines(build_views(sampled_run)) if h.kind == "hosted")
    assert "300x llm-rerank fp32 measured here, which re-ranks the same 50 candidates" in line.text
    assert "quality is not measured" in line.text


def test_blend_words_tell_a_kept_order_from_a_reweighted_retriever():
    from bench.analysis.blend import blend_choice

    def rerank(share: float, kept: float) -> CellResult:
        c = make_cell("llm-rerank", "fp32", ALL, EASE_RANKS)
        c.add("blend_ce_spread_share", share)
        c.add("blend_ce_weight_norm", share)
        c.add("blend_order_kept_share", kept)
        return c

    assert blend_choice(rerank(0.0001, 1.0)).keeps_retriever_order
    reweighted = blend_choice(rerank(0.0001, 0.4))
    assert reweighted.cross_encoder_silent and not reweighted.keeps_retriever_order
    heard = blend_choice(rerank(0.3, 0.2))
    assert not heard.cross_encoder_silent and heard.retriever == "ease"
    assert blend_choice(make_cell("ease", "none", ALL, EASE_RANKS)) is None


def test_without_per_user_figures_the_frontier_is_the_classic_one_over_the_same_users():
    """(cost, mean) points as the old Pareto frontier saw them: on it only if above every cheaper point."""
    points = [(1.0, 0.10), (2.0, 0.30), (3.0, 0.20), (4.0, 0.35), (0.5, 0.05), (2.0, 0.25)]
    cells = []
    for i, (_, mean) in enumerate(points):
        c = CellResult(f"ml/s/r{i}/none/cpu", "ml", "s", f"r{i}", "none", "cpu", provenance={"seed": 0})
        c.add("ndcg@10", mean, n=200)
        cells.append(c)
    front = frontier(cells, [cost_ for cost_, _ in points])
    assert front.on == [4, 0, 1, 3] and not front.left_out
    assert front.beaten_by[2][1].verdict == "unpaired" and front.beaten_by[2][1].n == 200


def test_cells_on_other_data_or_another_split_seed_are_never_compared():
    here = make_cell("ease", "none", ALL, EASE_RANKS)
    there = make_cell("ease", "none", ALL, EASE_RANKS)
    there.dataset = "other"
    assert not compare_cells(here, there).comparable
    reseeded = make_cell("ease", "none", ALL, EASE_RANKS)
    reseeded.provenance["seed"] = 1
    assert not compare_cells(here, reseeded).comparable
