"""A cell records the resolved hyper-parameters of the model it measured (audit defect e), not only the
parameters its scenario spelled out: a default-built ItemKNN says k=50, EASE says its l2."""

from __future__ import annotations

import pytest

from bench.cell import run_cell
from bench.recommenders.registry import REGISTRY, get
from bench.scenario import CellSpec, Settings

DATASET = "synthetic:users=80,items=60,interactions=1500,seed=5"
CLASSIC = sorted(name for name, e in REGISTRY.items() if e.family == "classic")


@pytest.mark.parametrize("name", CLASSIC)
def test_get_params_returns_every_constructor_argument_as_resolved(name):
    rec = get(name).build()
    params = rec.get_params()
    assert set(params) == set(get(name).parameters())
    assert get(name).build(**params).get_params() == params  # the record rebuilds the same model


@pytest.mark.parametrize(
    "name, params, expected",
    [
        ("itemknn", {}, {"k": 50}),
        ("ease", {"l2": 50}, {"l2": 50, "device": "cpu"}),
        (
            "ials",
            {"factors": 8, "iterations": 2},
            {"factors": 8, "iterations": 2, "regularization": 10.0, "alpha": 1.0},
        ),
    ],
)
def test_a_classic_cell_records_its_resolved_hyper_parameters(name, params, expected):
    spec = CellSpec(DATASET, "random-8-1-1", name, params=params, loads=())
    result = run_cell(spec, Settings(seed=0, threads=1))
    for key, value in expected.items():
        assert result.params[key] == value, key


def _every_entry():
    from bench.recommenders.online.registry import STRATEGIES

    return [*REGISTRY.values(), *STRATEGIES.values()]


@pytest.mark.parametrize("entry", _every_entry(), ids=lambda e: e.name)
def test_each_class_declares_exactly_the_run_context_fields_its_constructor_takes(entry):
    from bench.recommenders.context import CONTEXT_FIELDS

    declared = set(entry.cls().run_context_params)
    assert declared == set(entry.parameters()) & set(CONTEXT_FIELDS)


def test_the_run_context_fills_declared_fields_and_a_scenario_value_wins():
    from bench.recommenders.context import RunContext

    context = RunContext(variant=None, device="cpu", threads=3, seed=7)
    assert get("ials").build_in(context, {"factors": 4}).seed == 7
    assert get("ials").build_in(context, {"factors": 4, "seed": 1}).seed == 1
    assert get("pop").build_in(context, {}).get_params() == {}  # takes none of them: none is passed
