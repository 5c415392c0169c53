"""Name -> load: the `Load` protocol every way of putting a cell under load follows, and its registry.

A load takes a `serve(batch)` callable and a pool of request payloads (it knows nothing of recommenders),
its own config (a frozen dataclass) and a `LoadContext` (seed, device sync, progress), and returns a
`LoadOutput`: result rows, timing summaries and extras, which the cell copies into its result as they are.

A new load is one module defining a class with `name`, `config_type`, `describe`, `check` and `run`, plus
one `register(MyLoad())` call in that module; a plugin module (see `bench.plugins`) does that from outside
the package. Scenarios name loads per cell (`CellSpec.loads`) and configure them per scenario
(`Settings.loads[name]`; the packaged loads also read their historical flat `Settings` fields).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.measure.loads import MetricRow
    from bench.measure.timer import ProgressEvent

#: the packaged loads' names (MLPerf LoadGen's words); code refers to them by these constants
OFFLINE = "offline"
SINGLE_STREAM = "single-stream"
SERVER = "server"
#: what a cell runs when its scenario names no loads
DEFAULT_LOADS: tuple[str, ...] = (OFFLINE, SINGLE_STREAM, SERVER)


@dataclass(frozen=True)
class LoadContext:
    """What a load needs from the cell besides `serve` and its config."""

    #: request payloads (e.g. the test users' ids, already in a seeded order)
    pool: np.ndarray
    seed: int = 0
    #: waits for the device to finish queued work (a no-op on CPU); called around timed regions
    sync: Callable[[], None] = field(default=lambda: None)  # CPU: nothing queued to wait for
    #: receives progress events on long work
    progress: Callable[[ProgressEvent], None] | None = None
    device: str = "cpu"


@dataclass
class LoadOutput:
    """What one load produced for a cell: rows for results.csv, timing summaries, and named extras."""

    rows: list[MetricRow] = field(default_factory=list)
    #: each a dict with at least `load`, `batch_size`, `unit_of_work` and a latency summary
    timings: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Load(Protocol):
    """One way of putting a cell under load."""

    @property
    def name(self) -> str:
        """The name scenarios use in `CellSpec.loads` and results carry in each row's `load`."""

    @property
    def config_type(self) -> type:
        """The config dataclass; `config_type()` must give a usable default."""

    def describe(self, config: Any) -> str:
        """One line announced when the load starts (e.g. "server load: highest rate with p99 <= 100 ms")."""

    def check(self, config: Any) -> None:
        """Raise ConfigError (one line, what to change) when the config cannot run."""

    def run(self, serve: Callable[[np.ndarray], Any], config: Any, context: LoadContext) -> LoadOutput:
        """Put `serve` under this load; figures are measured here, never computed from elsewhere."""


_REGISTRY: dict[str, Load] = {}


def register(load: Load) -> Load:
    """Add a load (a plugin module calls this at import); a name already taken by another load fails."""
    if not isinstance(load, Load):
        raise ConfigError(
            f"register() takes an object with the Load protocol (name, config_type, describe, "
            f"check, run), got {type(load).__name__}"
        )
    _builtins()  # so that a plugin can never take a packaged load's name
    known = _REGISTRY.get(load.name)
    if known is not None and type(known).__qualname__ != type(load).__qualname__:  # the same plugin again: no-op
        raise ConfigError(f"load {load.name!r} is already registered; pick another name")
    _REGISTRY[load.name] = load
    return load


#: the packaged loads, as "module:Class" (imported on first use, as the recommender registry does): a new
#: packaged load is one module plus one line here
PACKAGED: tuple[tuple[str, str], ...] = (
    (OFFLINE, "bench.measure.builtin_loads:OfflineLoad"),
    (SINGLE_STREAM, "bench.measure.builtin_loads:SingleStreamLoad"),
    (SERVER, "bench.measure.builtin_loads:ServerLoad"),
)


def _builtins() -> None:
    """Register the packaged loads first (in their run order), once, whoever asks first."""
    if all(name in _REGISTRY for name, _ in PACKAGED):
        return
    packaged = {}
    for name, target in PACKAGED:
        module, cls = target.split(":")
        packaged[name] = getattr(importlib.import_module(module), cls)()
    plugins = {n: load for n, load in _REGISTRY.items() if n not in packaged}
    _REGISTRY.clear()
    _REGISTRY.update({**packaged, **plugins})


def names() -> list[str]:
    _builtins()
    return list(_REGISTRY)


def get(name: str) -> Load:
    _builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown load {name!r}: choose one of {', '.join(_REGISTRY)}") from None


def check_names(loads: Any, where: str) -> None:
    """Every name in `loads` is a registered load; else one line naming the unknown ones and the choices."""
    _builtins()
    if isinstance(loads, str) or not isinstance(loads, (tuple, list)):
        raise ConfigError(f"{where}: loads={loads!r} must be a tuple of load names, e.g. ({OFFLINE!r},)")
    unknown = sorted(set(loads) - set(_REGISTRY))
    if unknown:
        raise ConfigError(f"unknown load(s) {unknown} in {where}: choose from {', '.join(_REGISTRY)}")
