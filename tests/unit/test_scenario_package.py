"""The packaged scenarios live inside the `bench` package (so a wheel carries them), are listed and found by name,
and `--resume` finds a packaged scenario by its name wherever the run recorded its file."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench
from bench import results as results_mod
from bench.results import RunResult
from bench.resume import scenario_of
from bench.scenario import SCENARIO_DIR, Scenario, SkipScenario, available, load

PACKAGED = ("ci", "coldstart", "full", "generative", "gpu", "llm_sizes", "online", "quick", "scaling")


def test_scenario_directory_is_a_subpackage_of_bench_so_the_wheel_ships_it() -> None:
    package_dir = Path(bench.__file__).resolve().parent
    assert package_dir / "scenarios" == SCENARIO_DIR
    # an __init__.py makes setuptools' package discovery (include = ["bench*"]) take the folder into the wheel
    assert (SCENARIO_DIR / "__init__.py").is_file()


def test_available_lists_every_packaged_scenario_with_its_docstring_and_not_the_package_init() -> None:
    listed = available()
    assert tuple(sorted(listed)) == PACKAGED
    assert "__init__" not in listed
    assert all(listed[name] for name in listed), "each scenario's first docstring line is its description"


@pytest.mark.parametrize("name", PACKAGED)
def test_each_packaged_scenario_loads_by_name_from_inside_the_package(name: str) -> None:
    try:
        scenario = load(name)
    except SkipScenario:  # gpu without CUDA: skipping is its documented behaviour, checked in test_gpu_scenario
        pytest.skip(f"{name} skips on this machine")
    assert isinstance(scenario, Scenario) and scenario.name == name
    assert Path(scenario.source).resolve() == SCENARIO_DIR / f"{name}.py"


def _write_run(run_dir: Path, name: str, source: str) -> Path:
    run_dir.mkdir(parents=True)
    run = RunResult(
        run_id=f"{name}-test", scenario={"name": name, "source": source, "settings": {}, "cells": []}, provenance={}
    )
    results_mod.write_json(run, run_dir / "results.json")
    return run_dir


@pytest.mark.parametrize(
    "source",
    [
        str(SCENARIO_DIR / "quick.py"),  # this install's packaged copy
        "/old/checkout/scenarios/quick.py",  # before scenarios moved into the package
        "/another/venv/site-packages/bench/scenarios/quick.py",
    ],
)  # another install
def test_resume_finds_a_packaged_scenario_by_its_name(tmp_path: Path, source: str) -> None:
    assert scenario_of(_write_run(tmp_path / "run", "quick", source)) == "quick"


def test_resume_runs_a_user_scenario_file_by_its_path_while_it_exists(tmp_path: Path) -> None:
    user_file = tmp_path / "mine.py"
    user_file.write_text('"""mine"""\n', encoding="utf-8")
    assert scenario_of(_write_run(tmp_path / "run", "mine", str(user_file))) == str(user_file)
    user_file.unlink()  # gone: the name is all that is left (and is refused later unless it is packaged)
    assert scenario_of(tmp_path / "run") == "mine"
