"""Scenarios declare a matrix of cells and their settings; the runner executes them.

A scenario is a Python module exposing `SCENARIO: Scenario` or `def build() -> Scenario`: one of the packaged
`bench/scenarios/NAME.py`, run by name (they ship inside the wheel), or any file, run by its path.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bench.errors import BenchError, ConfigError
from bench.measure.load_registry import DEFAULT_LOADS, OFFLINE, SERVER, SINGLE_STREAM
from bench.names import SAFE_NAME, check_name
from bench.variants.registry import NO_VARIANT

#: the packaged scenarios (inside the package, so a non-editable install finds them by name too)
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


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
    #: names of registered loads (bench.measure.load_registry), run in the registry's order
    loads: tuple[str, ...] = DEFAULT_LOADS
    #: rank a seeded sample of this many test users in this cell (overrides Settings.quality_users; the
    #: figures then carry the sample size in their flag). For models too slow for a full pass.
    quality_users: int | None = None
    #: offline batch sizes for this cell (overrides Settings.batch_sizes), e.g. fewer for a slow model
    batch_sizes: tuple[int, ...] | None = None
    #: Settings fields overridden for this cell alone (e.g. fewer timed batches for a 1.5B decoder)
    settings: dict[str, Any] = field(default_factory=dict)

    def settings_for(self, base: Settings) -> Settings:
        """The scenario's Settings with this cell's overrides; an unknown field fails in one line.

        The cell's own `batch_sizes` always sweep exactly those sizes (an adaptive sweep included)."""
        unknown = sorted(set(self.settings) - set(Settings.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"cell {self.name}: unknown settings override {', '.join(map(repr, unknown))}; "
                f"use Settings fields ({', '.join(Settings.__dataclass_fields__)})"
            )
        settings = replace(base, **self.settings) if self.settings else base
        if self.batch_sizes:
            settings = replace(settings, batch_sizes=tuple(self.batch_sizes), offline_sweep="fixed")
        return settings

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
    #: "fixed": sweep `batch_sizes`; "adaptive": grow the batch 1, 2, 4, ... until throughput gains less than
    #: `sweep_min_gain` over the previous size, or max batch / time (per cell) / memory stops it. A cell's own
    #: `batch_sizes` always sweeps those sizes.
    offline_sweep: str = "fixed"
    sweep_min_gain: float = 0.05
    sweep_max_batch: int = 4096
    sweep_time_limit_s: float = 120.0
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
    #: load name -> its config (the load's `config_type`), for any registered load. The packaged loads
    #: (offline, single-stream, server) default to the flat fields above, which existing scenarios set.
    loads: dict[str, Any] = field(default_factory=dict)

    def load_config(self, name: str) -> Any:
        """The config load `name` runs with in this scenario: `loads[name]`, else the load's default (for the
        packaged loads, built from the flat fields above)."""
        from bench.measure import load_registry

        load = load_registry.get(name)
        if name in self.loads:
            return self.loads[name]
        return _packaged_load_config(self, name) or load.config_type()

    def validate(self) -> None:
        for f in fields(self):  # NaN and inf pass every comparison below the wrong way: refuse them first
            if f.name in ("data_dir", "offline_sweep", "loads"):  # text and per-load settings, checked below
                continue
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"{f.name}={value!r} must be a number; fix the option or the scenario's Settings")
                if isinstance(v, float) and not math.isfinite(v):
                    raise ConfigError(
                        f"{f.name}={value!r} must be a finite number; fix the option or the scenario's Settings"
                    )
        checks = [
            (self.seed >= 0, f"seed={self.seed} must be >= 0"),
            (self.k > 0, f"k={self.k} must be a positive integer"),
            (all(k > 0 for k in self.ks), f"ks={self.ks}: every k must be positive"),
            (self.threads > 0, f"threads={self.threads} must be at least 1"),
            (self.cell_timeout_s > 0, f"cell timeout {self.cell_timeout_s}s must be > 0"),
            (0 < self.quality_gate <= 1, f"quality gate {self.quality_gate} must be in (0, 1]"),
            (self.quality_users >= 0, "quality users must be >= 0 (0 = all test users)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message + "; fix the option or the scenario's Settings")
        self._validate_loads()

    def _validate_loads(self) -> None:
        """Each load checks its own config: the flat fields through the packaged loads, `loads` through theirs."""
        from bench.measure import load_registry

        if not isinstance(self.loads, dict):
            raise ConfigError(f"loads={self.loads!r} must map load names to their configs; fix the scenario's Settings")
        for name in self.loads:
            load_registry.get(name)  # an unknown name fails in one line
        for name in load_registry.names():
            load = load_registry.get(name)
            config = self.load_config(name)
            if not isinstance(config, load.config_type):
                raise ConfigError(
                    f"Settings.loads[{name!r}] is a {type(config).__name__}; load {name!r} takes a "
                    f"{load.config_type.__name__}: fix the scenario's Settings"
                )
            load.check(config)


def _packaged_load_config(settings: Settings, name: str) -> Any:
    """The packaged loads' configs from the flat Settings fields (None for any other load)."""
    from bench.measure.builtin_loads import OfflineConfig, ServerConfig, SingleStreamConfig

    if name == OFFLINE:
        return OfflineConfig(
            batch_sizes=tuple(settings.batch_sizes),
            sweep=settings.offline_sweep,
            min_gain=settings.sweep_min_gain,
            max_batch=settings.sweep_max_batch,
            time_limit_s=settings.sweep_time_limit_s,
            min_s=settings.offline_min_s,
            min_batches=settings.offline_min_batches,
        )
    if name == SINGLE_STREAM:
        return SingleStreamConfig(
            min_count=settings.stream_min_count,
            min_s=settings.stream_min_s,
            max_s=settings.stream_max_s,
            warmup_count=settings.warmup_count,
        )
    if name == SERVER:
        return ServerConfig(
            slo_ms=settings.slo_ms, budget_s=settings.server_budget_s, min_trial_requests=settings.server_requests
        )
    return None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    cells: tuple[CellSpec, ...]
    settings: Settings = Settings()
    source: str = ""
    #: modules (names, or paths to .py files) that register the scenario's own recommenders, variants or
    #: loads; imported in the driver and in every cell process (bench.plugins)
    plugins: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "settings": asdict(self.settings),
            "cells": [c.name for c in self.cells],
        }
        if self.plugins:
            described["plugins"] = list(self.plugins)
        return described

    def with_settings(self, **changes: Any) -> Scenario:
        return replace(self, settings=replace(self.settings, **changes))

    def filtered(self, datasets: Sequence[str] | None = None, recommenders: Sequence[str] | None = None) -> Scenario:
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
                cells = cells + tuple(
                    CellSpec(d, s, r) for r in unknown for d, s in sorted({(c.dataset, c.split) for c in cells})
                )
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


def matrix(
    datasets: Sequence[str],
    splits: Sequence[str],
    recommenders: Sequence[str],
    variants: Sequence[str] = (NO_VARIANT,),
    devices: Sequence[str] = ("cpu",),
    **cell_kw: Any,
) -> list[CellSpec]:
    """The cartesian product, one CellSpec each."""
    return [
        CellSpec(d, s, r, v, dev, **cell_kw)
        for d, s, r, v, dev in itertools.product(datasets, splits, recommenders, variants, devices)
    ]


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


#: scenario names become file names (run folders, findings): letters, digits, `.`, `_`, `-`, not starting with `.`
def _locate(name_or_path: str) -> Path:
    """A path ending in .py runs that file; anything else is a packaged scenario's name, never a path."""
    if name_or_path.endswith(".py"):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"scenario file {name_or_path} does not exist; pass an existing .py file or a name from `recbench list`"
            )
        return path
    choices = ", ".join(available()) or "(none found)"
    if not SAFE_NAME.match(name_or_path) or not (SCENARIO_DIR / f"{name_or_path}.py").is_file():
        raise ConfigError(f"unknown scenario {name_or_path!r}: choose one of {choices}, or pass a path to a .py file")
    return SCENARIO_DIR / f"{name_or_path}.py"


def load(name_or_path: str) -> Scenario:
    """A scenario by name (one of the packaged bench/scenarios/NAME.py) or by a path ending in .py."""
    path = _locate(str(name_or_path))
    spec = importlib.util.spec_from_file_location(f"recbench_scenario_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"scenario {path} cannot be imported as a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SkipScenario:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken scenario file is the user's to fix: say where
        raise ConfigError(
            f"scenario {path} failed to load ({exc.__class__.__name__}: {_first_line(exc)}); fix that file"
        ) from None
    scenario = getattr(module, "SCENARIO", None)
    if scenario is None and hasattr(module, "build"):
        try:
            scenario = module.build()
        except SkipScenario:
            raise
        except Exception as exc:  # noqa: BLE001 - as for an import error: the file is the user's to fix
            raise ConfigError(
                f"scenario {path}: build() raised {exc.__class__.__name__}: {_first_line(exc)}; fix that file"
            ) from None
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"scenario {path} defines no SCENARIO (a bench.scenario.Scenario) nor build(); add one")
    if (
        not isinstance(scenario.cells, (tuple, list))
        or not scenario.cells
        or not all(isinstance(c, CellSpec) for c in scenario.cells)
    ):
        raise ConfigError(
            f"scenario {path}: cells must be a non-empty tuple of CellSpec; declare them as cells=(CellSpec(...), ...)"
        )
    check_name(scenario.name, f"scenario {path}: name")
    if isinstance(scenario.plugins, str) or not all(isinstance(p, str) for p in scenario.plugins):
        raise ConfigError(
            f'scenario {path}: plugins must be a tuple of module names or .py paths, e.g. plugins=("my_ext",)'
        )
    from bench import plugins

    # a plugin file named relative to the scenario is found from any working directory (and any node)
    plugin_paths = tuple(
        str((path.parent / p).resolve()) if p.endswith(".py") and not Path(p).is_absolute() else p
        for p in scenario.plugins
    )
    scenario = replace(scenario, plugins=plugin_paths)
    plugins.load(scenario.plugins)  # before anything names what they register
    names = [c.name for c in scenario.cells]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(
            f"scenario {path} declares cell {duplicated[0]} more than once"
            f"{f' (and {len(duplicated) - 1} more)' if len(duplicated) > 1 else ''}: give the "
            "copies different tags (CellSpec(tag=...)) or drop them"
        )
    return replace(scenario, cells=tuple(scenario.cells), source=str(path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "(no message)"
