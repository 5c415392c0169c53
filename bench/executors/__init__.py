"""Where a run's cells execute: a registry of executors, all with the interface of bench.executors.base.Executor.

    local   each cell in a fresh spawned process on this machine, one at a time (the default)
    ray     each cell a Ray task in a fresh worker process, at most one timed cell per node (recbench[ray])

A new executor is one module plus one `register` call: a factory taking the keyword options
`cells_per_node` and `address`, and raising ConfigError (one line, what to do) for options it cannot honour.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from bench.errors import ConfigError
from bench.executors.base import CellTask, Executor, Listener

__all__ = ["CellTask", "Executor", "Listener", "create", "names", "register"]

#: name -> "module:attribute" (imported on use, so `ray` is imported only when asked for) or a factory
_REGISTRY: dict[str, str | Callable[..., Executor]] = {
    "local": "bench.executors.local:LocalExecutor",
    "ray": "bench.executors.ray:RayExecutor",
}


def register(name: str, factory: Callable[..., Executor]) -> None:
    """Make `recbench run --executor NAME` use `factory(**options)`."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    return list(_REGISTRY)


def create(name: str, **options: Any) -> Executor:
    """The executor `name`, built with its options; an unknown name or an option it refuses is a ConfigError."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ConfigError(f"unknown executor {name!r}: choose one of {', '.join(_REGISTRY)}")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry(**options)
