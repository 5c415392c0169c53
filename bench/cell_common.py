"""What a cell and a replay cell share: phase timing, the dataset check, and the run context they build with.

Both bench.cell (the measurement cell) and bench.replay_cell (the online replay) import this module; neither
imports the other's internals, so the two stay free of an import cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.recommenders.context import RunContext
from bench.results import CellResult
from bench.scenario import NO_VARIANT, CellSpec, Settings

Progress = Callable[[str], None]


class Phases:
    """Announces each phase of a cell and records its wall time (so a slow cell says where time went)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.wall_s: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = time.perf_counter()

    def start(self, name: str, message: str | None = None) -> None:
        self.stop()
        self._name, self._t0 = name, time.perf_counter()
        self.progress(message or name)

    def stop(self) -> None:
        if self._name is not None:
            self.wall_s[self._name] = self.wall_s.get(self._name, 0.0) + time.perf_counter() - self._t0
            self._name = None


def check_checksum(spec: CellSpec, dataset: Any, expected_checksum: str | None) -> None:
    """A node whose copy of the dataset differs from the driver's fails the cell before any measurement."""
    if expected_checksum is not None and dataset.checksum != expected_checksum:
        from bench.errors import DataError

        raise DataError(
            f"dataset {spec.dataset} on this node has checksum {dataset.checksum[:16]}, the run's is "
            f"{expected_checksum[:16]}: this node holds other data; re-fetch it here "
            f"(`recbench data fetch`) or point --data-dir at the same files"
        )


def run_context(spec: CellSpec, settings: Settings) -> RunContext:
    """How this cell runs its recommender: the one context every recommender (and strategy) is built with."""
    return RunContext(
        variant=None if spec.variant == NO_VARIANT else spec.variant,
        device=spec.device,
        threads=settings.threads,
        seed=settings.seed,
    )


def new_result(spec: CellSpec) -> CellResult:
    """The cell's result before any measurement: what the spec names, and its parameters as given."""
    return CellResult(
        cell=spec.name,
        dataset=spec.dataset,
        split=spec.split,
        recommender=spec.recommender,
        variant=spec.variant,
        device=spec.device,
        params=dict(spec.params),
    )
