"""Cost against model size: the power-law fit, parameter counts, labelled projections, generation rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import cost
from bench.analysis.sizes import add_size_figures
from bench.errors import ConfigError
from bench.results import CellResult, MetricRow, RunResult
from bench.sizes import fit_power_law, fits_from_run, model_parameters, transformer_parameters

GIB = 2**30


# ---------------------------------------------------------------- the fit


def test_fit_recovers_a_known_exponent_and_coefficient_exactly():
    n = np.array([2e7, 1.1e8, 3.4e8, 9e8])
    fit = fit_power_law(n, 3.0 * (n / 1e8) ** 0.8)
    assert fit.exponent == pytest.approx(0.8, abs=1e-12)
    assert fit.coefficient == pytest.approx(3.0, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.predict(7e9) == pytest.approx(3.0 * 70**0.8)


def test_fit_with_noise_has_an_interval_that_holds_the_true_exponent_and_r2_below_one():
    rng = np.random.default_rng(0)
    n = np.geomspace(2e7, 4e8, 8)
    y = 0.02 * (n / 1e8) ** 1.3 * np.exp(rng.normal(0, 0.05, n.size))
    fit = fit_power_law(n, y)
    lo, hi = fit.exponent_ci95
    assert lo < 1.3 < hi and hi - lo < 0.3
    assert 0.9 < fit.r2 < 1.0


def test_two_points_fit_exactly_but_give_no_interval():
    fit = fit_power_law([1e8, 4e8], [1.0, 2.0])
    assert fit.exponent == pytest.approx(0.5) and fit.exponent_ci95 is None


@pytest.mark.parametrize(
    "n, y, words",
    [
        ([1e8], [1.0], "two different model sizes"),
        ([1e8, 1e8], [1.0, 2.0], "two different model sizes"),
        ([1e8, 2e8], [1.0, 0.0], "positive"),
        ([1e8, -2e8], [1.0, 2.0], "positive"),
    ],
)
def test_bad_fit_input_is_one_clear_line(n, y, words):
    with pytest.raises(ConfigError, match=words):
        fit_power_law(n, y)


# ---------------------------------------------------------------- parameter counts


def test_architecture_counts_match_the_saved_checkpoints(tiny_model_dir, tmp_path):
    from bench.models import count_parameters
    from tests.support.models import build_tiny_model

    assert transformer_parameters("bert", 2, 32, 64, 30522, 512) == count_parameters(tiny_model_dir)
    gpt2 = build_tiny_model(tmp_path / "gpt2", kind="gpt2", layers=2, hidden=32, heads=2, intermediate=64)
    assert transformer_parameters("gpt2", 2, 32, 64, 30522, 512) == count_parameters(gpt2)


def test_named_cost_only_sizes_are_the_known_architectures():
    # counted from the safetensors headers of the built cost-only models
    assert model_parameters("minilm-cost-only") == model_parameters("minilm") == 22_713_216
    assert model_parameters("bert-base-cost-only") == 109_482_240
    assert model_parameters("bert-large-cost-only") == 335_141_888
    assert model_parameters("gpt2-small-cost-only") == 124_439_808
    assert model_parameters("/some/local/dir") is None


# ---------------------------------------------------------------- over a run

MODELS = ("minilm-cost-only", "bert-base-cost-only", "bert-large-cost-only")


def _cell(model: str, variant: str, usd: float, p50: float, tag: str = "") -> CellResult:
    c = CellResult(
        cell=f"syn/random-8-1-1/llm-two-tower[{tag or model}]/{variant}/cpu",
        dataset="syn",
        split="random-8-1-1",
        recommender="llm-two-tower",
        variant=variant,
        device="cpu",
        label="cost-only",
        params={"model": model, "mode": "zero-shot"},
    )
    c.add("usd_per_1k_recs", usd, "usd", load="offline")
    # what a re-pricing (bench.cost.add_costs) computes the cost from: proportional to it, same exponent
    c.add("throughput_users_per_s", 1.0 / usd, "users/s", load="offline", n=5)
    c.add("latency_p50_ms", p50, "ms", load="single-stream", n=50)
    c.add("footprint_bytes", 4.0 * model_parameters(model), "bytes")
    return c


def _run(memory_bytes: int = 24 * GIB) -> RunResult:
    run = RunResult(
        run_id="r", scenario={"name": "llm_sizes"}, provenance={"machine": {"memory_total_bytes": memory_bytes}}
    )
    for variant, a, b in (("fp32", 0.01, 1.1), ("onnx-int8", 0.004, 0.9)):
        for m in MODELS:
            n = model_parameters(m)
            run.cells.append(_cell(m, variant, a * (n / 1e8) ** b, 5.0 * (n / 1e8) ** b))
    # a cell with other parameters is its own group: never fitted together with the others
    other = _cell("bert-base-cost-only", "fp32", 1.0, 1.0, tag="long")
    other.params["max_length"] = 512
    run.cells.append(other)
    return run


def test_each_variant_gets_its_own_fit_with_the_exponent_it_was_built_with():
    run = _run()
    fits = add_size_figures(run)
    by = {(f.variant, f.metric): f for f in fits}
    assert by[("fp32", "usd_per_1k_recs")].fit.exponent == pytest.approx(1.1)
    assert by[("onnx-int8", "usd_per_1k_recs")].fit.exponent == pytest.approx(0.9)
    assert by[("fp32", "footprint_bytes")].fit.exponent == pytest.approx(1.0)
    assert all(len(f.points) == 3 for f in fits)  # the max_length=512 cell stayed out
    derived = run.derived.size_fits  # derived entries of the run, not cells
    assert all(m.metric != "size_fit_exponent@usd_per_1k_recs" for c in run.cells for m in c.metrics)
    assert sorted(c.variant for c in derived) == ["fp32", "onnx-int8"]
    fp32 = next(c for c in derived if c.variant == "fp32")
    row = fp32.metric("size_fit_exponent@usd_per_1k_recs")
    assert row.value == pytest.approx(1.1) and row.label == "estimated" and row.n == 3


def test_projections_are_labelled_projected_and_never_named_like_measured_or_hardware_rows():
    run = _run()
    add_size_figures(run)
    fp32 = next(g for g in run.derived.size_fits if g.variant == "fp32")
    for size, n in (("1B", 1e9), ("7B", 7e9)):
        row = fp32.metric(f"size_projected_usd_per_1k_recs@{size}")
        assert row.label == "projected" and row.unit == "usd"
        assert row.value == pytest.approx(0.01 * (n / 1e8) ** 1.1)
    for m in fp32.metrics:
        assert m.metric != "usd_per_1k_recs" and not m.metric.startswith(cost.PROJECTED_PREFIX)
        assert (m.label == "projected") == m.metric.startswith("size_projected_")
    # measured cells gained no projected row
    assert all(m.label != "projected" for c in run.cells for m in c.metrics)


def test_a_7b_fp32_projection_says_it_would_not_fit_this_machines_memory_and_int8_does_not():
    run = _run(memory_bytes=24 * GIB)
    add_size_figures(run)
    cells = {g.variant: g for g in run.derived.size_fits}
    assert "28.0 GB" in cells["fp32"].metric("size_projected_usd_per_1k_recs@7B").flag
    assert "could not run here" in cells["fp32"].metric("size_projected_usd_per_1k_recs@7B").flag
    assert "could not run here" not in cells["fp32"].metric("size_projected_usd_per_1k_recs@1B").flag
    assert "could not run here" not in cells["onnx-int8"].metric("size_projected_usd_per_1k_recs@7B").flag
    assert "20.9x beyond the largest" in cells["fp32"].metric("size_projected_usd_per_1k_recs@7B").flag


def test_adding_twice_or_after_repricing_replaces_instead_of_duplicating():
    run = _run()
    add_size_figures(run)

    def rows() -> list[tuple[str, str, float]]:
        return [(c.cell, m.metric, m.value) for c in run.cells for m in c.metrics] + [
            (g.name, m.metric, m.value) for g in run.derived.size_fits for m in g.metrics
        ]

    first = rows()
    add_size_figures(run)
    assert rows() == first
    assert len(fits_from_run(run)) == 6  # 2 variants x 3 metrics (no encode_items_s rows in this run)
    restored = fits_from_run(run)[0]
    assert restored.fit.predict(1e9) == pytest.approx(restored.projections["1B"])


def test_one_size_per_group_gives_no_fit_cell():
    run = RunResult(run_id="r", scenario={}, provenance={})
    run.cells.append(_cell("bert-base-cost-only", "fp32", 0.1, 10.0))
    assert add_size_figures(run) == [] and len(run.cells) == 1 and run.derived.size_fits == []


def test_a_generating_cell_gets_offline_output_tokens_per_s_from_its_best_throughput():
    run = RunResult(run_id="r", scenario={}, provenance={})
    c = CellResult(
        cell="syn/s/llm-explain/fp32/cpu",
        dataset="syn",
        split="s",
        recommender="llm-explain",
        variant="fp32",
        device="cpu",
        label="cost-only",
        params={"model": "gpt2-small-cost-only"},
    )
    c.add("new_tokens_per_rec", 32, "")
    c.metrics.append(
        MetricRow(
            "throughput_users_per_s",
            2.0,
            "users/s",
            load="offline",
            n=5,
            ci95_low=1.5,
            ci95_high=2.5,
            label="cost-only",
        )
    )
    c.metrics.append(
        MetricRow(
            "throughput_users_per_s",
            3.0,
            "users/s",
            load="offline",
            n=5,
            ci95_low=2.5,
            ci95_high=3.5,
            label="cost-only",
        )
    )
    run.cells.append(c)
    add_size_figures(run)
    add_size_figures(run)
    rows = [m for m in c.metrics if m.metric == "output_tokens_per_s"]
    assert len(rows) == 1
    assert rows[0].value == pytest.approx(96.0) and rows[0].ci95_low == pytest.approx(80.0)
    assert rows[0].label == "cost-only" and rows[0].load == "offline"
    assert math.isclose(rows[0].ci95_high, 112.0)


# ---------------------------------------------------------------- how many sizes a projection needs


def _two_size_run() -> RunResult:
    """GPT-2 small and medium alone: the case that projected $2180 per 1k at 7B from a line through two points."""
    run = RunResult(run_id="r", scenario={}, provenance={"machine": {"memory_total_bytes": 24 * GIB}})
    for m in MODELS[1:]:
        n = model_parameters(m)
        run.cells.append(_cell(m, "fp32", 0.01 * (n / 1e8) ** 3.1, 5.0 * (n / 1e8) ** 3.1))
    return run


def test_a_fit_over_two_sizes_reports_its_exponent_flagged_but_projects_nothing():
    run = _two_size_run()
    fits = add_size_figures(run)
    usd = next(f for f in fits if f.metric == "usd_per_1k_recs")
    assert usd.fit.exponent == pytest.approx(3.1) and usd.projections == {} and usd.flags == {}
    (group,) = run.derived.size_fits
    exponent = group.metric("size_fit_exponent@usd_per_1k_recs")
    assert exponent is not None and "rough exponent" in exponent.flag
    assert not [m for m in group.metrics if m.metric.startswith("size_projected_")]


def test_a_projection_says_whether_it_lies_within_below_or_beyond_the_measured_sizes():
    from bench.analysis.sizes import size_fits

    fits = size_fits(_run(), project_to={"10M": 1e7, "50M": 5e7, "1B": 1e9})
    flags = next(f for f in fits if f.metric == "usd_per_1k_recs").flags
    assert "below the smallest" in flags["10M"] and "interpolated" not in flags["10M"]
    assert "within the measured range (interpolated" in flags["50M"]
    assert "beyond the largest" in flags["1B"]


def test_a_stored_two_size_fit_with_projections_reads_back_without_them():
    # a results file written before the three-size rule holds a projection from two sizes: readers never show it
    from bench.analysis.sizes import _fit_group
    from bench.sizes import SizeFit, SizePoint

    points = [
        SizePoint("c1", "gpt2", 124_439_808, 0.5, "cost-only"),
        SizePoint("c2", "gpt2-medium", 354_823_168, 13.0, "cost-only"),
    ]
    fit = fit_power_law([p.parameters for p in points], [p.value for p in points])
    old = SizeFit(
        "syn",
        "s",
        "llm-decoder-rank",
        "fp32",
        "cpu",
        "usd_per_1k_recs",
        "offline",
        "usd",
        points,
        fit,
        projections={"7B": float(fit.predict(7e9))},
        flags={"7B": "19.7x beyond the largest"},
    )
    run = RunResult(run_id="r", scenario={}, provenance={})
    run.derived.size_fits = [_fit_group([old])]
    (restored,) = fits_from_run(run)
    assert restored.projections == {} and restored.flags == {} and restored.fit.exponent == pytest.approx(fit.exponent)


def test_the_size_chart_draws_no_projection_for_a_two_size_fit(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from bench.report import sizes as report_sizes

    drawn = {}

    def keep(fig, out_dir, name):
        drawn[name] = fig
        return tmp_path / name

    monkeypatch.setattr(report_sizes, "_save", keep)
    for run, name in ((_two_size_run(), "two"), (_run(), "three")):
        add_size_figures(run)
        report_sizes.size_chart(fits_from_run(run), tmp_path, 24 * GIB, name=name)

    def marks(name: str) -> tuple[list[str], list[str]]:
        axes = drawn[f"{name}.png"].axes
        return (
            [t.get_text() for ax in axes for t in ax.texts if t.get_text().startswith("projected")],
            [line.get_linestyle() for ax in axes for line in ax.lines],
        )

    texts, styles = marks("two")
    assert texts == [] and ":" not in styles  # no diamond, no dotted extrapolation
    texts, styles = marks("three")
    assert any("7B" in t for t in texts) and ":" in styles  # the check can see them where they belong
