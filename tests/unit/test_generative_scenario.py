"""The generative scenario's matrix and the per-cell settings overrides it relies on; the decoder report section."""

from __future__ import annotations

import pytest

from bench.errors import ConfigError
from bench.recommenders import registry
from bench.recommenders.generative.archs import ARCHS
from bench.scenario import CellSpec, Settings, load


@pytest.fixture(scope="module")
def generative():
    return load("generative")


def _decoders(scenario):
    return [c for c in scenario.cells if c.recommender == "llm-decoder-rank"]


def test_every_mode_every_n_and_the_precisions_are_cells(generative):
    cells = _decoders(generative)
    seen = {(c.params["mode"], c.params["n_candidates"], c.variant) for c in cells}
    for n in (20, 50, 100):
        assert ("shared-prefix", n, "fp32") in seen
    assert ("listwise", 20, "fp32") in seen
    assert ("pointwise", 20, "fp32") in seen
    assert {"bf16", "int8"} <= {c.variant for c in cells}
    for c in cells:  # parameters and overrides are valid before any run
        registry.get(c.recommender).check_params(c.params)
        c.settings_for(generative.settings).validate()


def test_the_size_curve_has_four_llama_style_sizes_up_to_1_5b_and_two_gpt2_sizes(generative):
    curve = [
        c
        for c in _decoders(generative)
        if c.params["mode"] == "shared-prefix"
        and c.params["n_candidates"] == 20
        and c.variant == "fp32"
        and c.params["model"] in ARCHS
    ]
    sizes = {ARCHS[c.params["model"]].family: set() for c in curve}
    for c in curve:
        sizes[ARCHS[c.params["model"]].family].add(ARCHS[c.params["model"]].n_parameters())
    measurable = {n for n in sizes["llama-style"] if n < 2e9}
    assert len(measurable) >= 4 and max(measurable) > 1.5e9
    assert len(sizes["gpt2"]) >= 2
    # a 7B cell the memory pre-check refuses, bounded by its own timeout where memory would hold it
    big = [c for c in curve if ARCHS[c.params["model"]].n_parameters() > 7e9]
    assert big and big[0].settings["cell_timeout_s"] <= 120


def test_the_acceptance_cell_compares_all_50_candidates_of_the_half_billion_decoder(generative):
    [cell] = [
        c
        for c in _decoders(generative)
        if c.params["model"] == "qwen2.5-0.5b"
        and c.variant == "fp32"
        and c.params["mode"] == "shared-prefix"
        and c.params["n_candidates"] == 50
    ]
    assert cell.params.get("compare_candidates") in (None, 50) and cell.params.get("compare_users", 1) >= 1


def test_a_cell_override_changes_only_that_cell_and_an_unknown_one_is_a_clear_error():
    base = Settings(offline_min_batches=3)
    cell = CellSpec("ml-100k", "random-8-1-1", "ease", settings={"offline_min_batches": 2})
    assert cell.settings_for(base).offline_min_batches == 2 and base.offline_min_batches == 3
    assert CellSpec("ml-100k", "random-8-1-1", "ease").settings_for(base) is base
    with pytest.raises(ConfigError, match="unknown settings override 'offline_min_batch'"):
        CellSpec("ml-100k", "random-8-1-1", "ease", settings={"offline_min_batch": 2}).settings_for(base)
