"""bench/scenarios/scaling.py: its matrix, its size validation, and the memory pre-check that fails EASE cleanly."""

from __future__ import annotations

import importlib.util

import pytest

from bench import memcheck
from bench.data.synthetic import parse_spec
from bench.errors import BenchError, ConfigError
from bench.scenario import SCENARIO_DIR, Settings, load


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("scaling_under_test", SCENARIO_DIR / "scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scenario_reaches_100k_items_over_five_sizes_with_users_and_interactions_growing(scaling):
    scenario = load("scaling")
    sizes = sorted({parse_spec(c.dataset).n_items for c in scenario.cells})
    assert len(sizes) >= 5 and sizes[0] == 1_000 and sizes[-1] == 100_000
    configs = sorted({parse_spec(c.dataset) for c in scenario.cells}, key=lambda c: c.n_items)
    assert all(a.n_users < b.n_users and a.n_interactions < b.n_interactions for a, b in zip(configs, configs[1:]))
    for name in ("pop", "itemknn", "ease", "ials"):  # every classic recommender at every size, 100k included
        assert sorted(parse_spec(c.dataset).n_items for c in scenario.cells if c.recommender == name) == sizes
    lm = [c for c in scenario.cells if c.recommender == "llm-two-tower"]
    assert {c.variant for c in lm} == {"fp32", "onnx-int8"}
    assert all(c.params["mode"] == "zero-shot" for c in lm)
    assert max(parse_spec(c.dataset).n_items for c in lm) == scaling.LM_MAX_ITEMS
    scenario.settings.validate()


@pytest.mark.parametrize("sizes", [(), (1000, 1000), (10_000, 1_000)])
def test_bad_size_lists_are_one_line_config_errors(scaling, sizes):
    with pytest.raises(ConfigError) as err:
        scaling.build(sizes)
    assert "\n" not in str(err.value) and "scaling catalogue sizes" in str(err.value)


def test_ease_at_100k_items_cannot_fit_and_says_why_in_one_line():
    with pytest.raises(memcheck.FitMemoryError) as err:
        memcheck.check_fit_memory("ease", 50_000, 100_000, 800_000, available_bytes=24 * 1024**3)
    text = str(err.value)
    assert isinstance(err.value, BenchError) and "\n" not in text
    assert "100,000 items" in text and "298.0 GiB" in text and "24.0 GiB is available" in text
    assert "itemknn" in text  # says what to do


def test_sizes_that_fit_pass_and_models_without_a_bound_are_not_checked():
    need = memcheck.check_fit_memory("ease", 5_000, 10_000, 100_000, available_bytes=24 * 1024**3)
    assert need == int(memcheck.EASE_BYTES_PER_ITEM_PAIR * 10_000**2)
    assert memcheck.check_fit_memory("itemknn", 50_000, 100_000, 800_000, available_bytes=1) is None
    assert memcheck.available_memory_bytes() > 0


def test_in_a_cell_the_size_that_cannot_fit_fails_with_the_reason_and_the_others_complete(monkeypatch):
    from bench.cell import run_cell
    from bench.scenario import CellSpec

    monkeypatch.setattr(memcheck, "available_memory_bytes", lambda: 20 * 1024**2)  # 20 MiB "free"
    settings = Settings(threads=1, quality_users=20)
    small = "synthetic:users=60,items=300,interactions=1500,seed=0"  # EASE needs ~2.7 MiB: fits
    large = "synthetic:users=60,items=1000,interactions=1500,seed=0"  # EASE needs ~30.5 MiB: does not
    done = run_cell(CellSpec(small, "random-8-1-1", "ease", loads=()), settings, pinned={})
    assert done.status == "ok" and done.metric("recall@10") is not None
    assert done.metric("fit_memory_need_bytes").label == "estimated"
    with pytest.raises(memcheck.FitMemoryError, match="cannot fit 1,000 items"):
        run_cell(CellSpec(large, "random-8-1-1", "ease", loads=()), settings, pinned={})
    other = run_cell(CellSpec(large, "random-8-1-1", "pop", loads=()), settings, pinned={})
    assert other.status == "ok" and other.metric("fit_s") is not None
