"""Scenarios declare a matrix of cells and their settings; the runner executes them.

A scenario is a Python module (in `scenarios/` or any path) exposing `SCENARIO: Scenario` or
`def build() -> Scenario`.
"""
from __future__ import annotations

import importlib.util
import itertools
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from bench.errors import BenchError, ConfigError

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
LOADS = ("offline", "single-stream", "server")
#: the variant name for recommenders that run no transformer
NO_VARIANT = "none"


class SkipScenario(BenchError):
    """Raised by a scenario's build() when it cannot run on this machine (e.g. no GPU): not an error.

    `recbench run` prints the message as one line and exits 0; the message says what is missing and where to run it.
    """

    exit_code = 0


@dataclass(frozen=True)
class CellSpec:
    """One (dataset, split, recommender, variant, device) measured in isolation, with its parameters."""

    dataset: str
    split: str
    recommender: str
    variant: str = NO_VARIANT
    device: str = "cpu"
    params: dict[str, Any] = field(default_factory=dict)
    #: a short tag distinguishing cells of the same recommender with different params (e.g. "n=50")
    tag: str = ""
    loads: tuple[str, ...] = LOADS
    #: rank a seeded sample of this many test users in this cell (overrides Settings.quality_users; the
    #: figures then carry the sample size in their flag). For models too slow for a full pass.
    quality_users: int | None = None
    #: offline batch sizes for this cell (overrides Settings.batch_sizes), e.g. fewer for a slow model
    batch_sizes: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        rec = f"{self.recommender}[{self.tag}]" if self.tag else self.recommender
        return f"{self.dataset}/{self.split}/{rec}/{self.variant}/{self.device}"


@dataclass(frozen=True)
class Settings:
    """How every cell of a scenario is measured. Units are in the names."""

    seed: int = 0
    k: int = 10
    ks: tuple[int, ...] = (10, 20)
    threads: int = 2
    cell_timeout_s: float = 600.0
    #: users whose test items are ranked; 0 = every test user (the headline protocol)
    quality_users: int = 0
    batch_sizes: tuple[int, ...] = (1, 32, 256)
    offline_min_s: float = 1.0
    offline_min_batches: int = 3
    stream_min_count: int = 200
    stream_min_s: float = 2.0
    stream_max_s: float = 10.0
    warmup_count: int = 5
    slo_ms: float = 100.0
    server_budget_s: float = 20.0
    server_requests: int = 300
    #: minimum share of the fp32 model's NDCG@10 a variant must keep for its cost to count (MLPerf's idea)
    quality_gate: float = 0.99
    data_dir: str | None = None

    def validate(self) -> None:
        checks = [
            (self.k > 0, f"k={self.k} must be a positive integer"),
            (all(k > 0 for k in self.ks), f"ks={self.ks}: every k must be positive"),
            (self.threads > 0, f"threads={self.threads} must be at least 1"),
            (self.cell_timeout_s > 0, f"cell timeout {self.cell_timeout_s}s must be > 0"),
            (all(b > 0 for b in self.batch_sizes) and self.batch_sizes, "batch sizes must be positive integers"),
            (self.slo_ms > 0, f"SLO {self.slo_ms} ms must be > 0"),
            (self.server_budget_s > 0 and self.server_requests > 0, "server budget and request count must be > 0"),
            (self.stream_min_count > 0 and self.stream_min_s > 0, "single-stream minimum count and duration must be > 0"),
            (self.stream_max_s >= self.stream_min_s, "single-stream max duration must be >= its minimum duration"),
            (0 < self.quality_gate <= 1, f"quality gate {self.quality_gate} must be in (0, 1]"),
            (self.quality_users >= 0, "quality users must be >= 0 (0 = all test users)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message + "; fix the option or the scenario's Settings")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    cells: tuple[CellSpec, ...]
    settings: Settings = Settings()
    source: str = ""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source,
                "settings": asdict(self.settings), "cells": [c.name for c in self.cells]}

    def with_settings(self, **changes: Any) -> "Scenario":
        return replace(self, settings=replace(self.settings, **changes))

    def filtered(self, datasets: Sequence[str] | None = None, recommenders: Sequence[str] | None = None) -> "Scenario":
        cells = self.cells
        if datasets:
            # --dataset swaps the dataset of every cell (same matrix on the user's data)
            cells = tuple(replace(c, dataset=d) for d in datasets for c in _unique_by_rest(cells))
        if recommenders:
            unknown = sorted(set(recommenders) - {c.recommender for c in cells})
            if unknown:
                from bench.recommenders import registry
                for name in unknown:
                    registry.get(name)  # raises a clear error for names that do not exist at all
                cells = cells + tuple(CellSpec(d, s, r) for r in unknown
                                      for d, s in sorted({(c.dataset, c.split) for c in cells}))
            cells = tuple(c for c in cells if c.recommender in recommenders)
        return replace(self, cells=tuple(_dedupe(cells)))


def _unique_by_rest(cells: Iterable[CellSpec]) -> list[CellSpec]:
    seen, out = set(), []
    for c in cells:
        key = (c.split, c.recommender, c.variant, c.device, c.tag)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _dedupe(cells: Iterable[CellSpec]) -> list[CellSpec]:
    seen, out = set(), []
    for c in cells:
        if c.name not in seen:
            seen.add(c.name)
            out.append(c)
    return out


def matrix(datasets: Sequence[str], splits: Sequence[str], recommenders: Sequence[str],
           variants: Sequence[str] = (NO_VARIANT,), devices: Sequence[str] = ("cpu",), **cell_kw: Any) -> list[CellSpec]:
    """The cartesian product, one CellSpec each."""
    return [CellSpec(d, s, r, v, dev, **cell_kw)
            for d, s, r, v, dev in itertools.product(datasets, splits, recommenders, variants, devices)]


def available() -> dict[str, str]:
    """Scenario name -> first docstring line, for `recbench list`."""
    out = {}
    for path in sorted(SCENARIO_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ""
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith('"""'):
            doc = text.lstrip()[3:].split("\n", 1)[0].strip().rstrip('"')
        out[path.stem] = doc
    return out


def load(name_or_path: str) -> Scenario:
    """A scenario by name (scenarios/NAME.py) or by path to a .py file."""
    path = Path(name_or_path)
    if not (path.suffix == ".py" and path.exists()):
        path = SCENARIO_DIR / f"{name_or_path}.py"
        if not path.exists():
            choices = ", ".join(available()) or "(none found)"
            raise ConfigError(f"unknown scenario {name_or_path!r}: choose one of {choices}, or pass a path to a .py file")
    spec = importlib.util.spec_from_file_location(f"recbench_scenario_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    try:
        spec.loader.exec_module(module)
    except SkipScenario:
        raise
    except Exception as exc:  # a broken scenario file is the user's to fix: say where
        raise ConfigError(f"scenario {path} failed to load ({exc.__class__.__name__}: {exc}); fix that file") from None
    scenario = getattr(module, "SCENARIO", None)
    if scenario is None and hasattr(module, "build"):
        scenario = module.build()
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"scenario {path} defines no SCENARIO (a bench.scenario.Scenario) nor build(); add one")
    if not scenario.cells:
        raise ConfigError(f"scenario {path} declares no cells; add at least one CellSpec")
    return replace(scenario, source=str(path))
