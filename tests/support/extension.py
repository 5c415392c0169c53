"""A plugin from outside the package: a new variant, a new load and a recommender that runs the variant.

Nothing in bench/ names any of them. Importing this module registers all three (bench.plugins imports it in
the driver and again in every cell process):

- variant `ext-scaled`: a runtime whose "backend" is a score scale, built by the variant registry's builder
  protocol; its precision is declared here (fp16) and must reach whoever asks the registry;
- load `ext-burst`: `n_bursts` back-to-back batches of `burst_size` payloads, timed one burst at a time;
- recommender `ext-pop`: popularity, scaled by whatever backend its run context's variant builds, recording
  how many backends it built and the scale as its own stats.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.measure.load_registry import LoadContext, LoadOutput
from bench.measure.load_registry import register as register_load
from bench.measure.stats import metric_rows, summarize
from bench.plugins import class_target
from bench.recommenders import registry
from bench.recommenders.classic.pop import Pop
from bench.variants import registry as variants
from bench.variants.base import Preparation

PLUGIN = __file__
VARIANT = "ext-scaled"
LOAD = "ext-burst"
RECOMMENDER = "ext-pop"
#: the scale the variant's backend applies to every score (a monotone change: rankings stay those of Pop)
SCALE = 3.0


@dataclass(frozen=True)
class ScaleBackend:
    scale: float


def build_scaled(request: variants.BuildRequest) -> tuple[ScaleBackend, Preparation]:
    t0 = time.perf_counter()
    backend = ScaleBackend(SCALE)
    return backend, Preparation(seconds=time.perf_counter() - t0, notes={"device": request.device})


@dataclass(frozen=True)
class BurstConfig:
    n_bursts: int = 3
    burst_size: int = 8


class BurstLoad:
    name = LOAD
    config_type = BurstConfig

    def describe(self, config: BurstConfig) -> str:
        return f"burst load: {config.n_bursts} bursts of {config.burst_size}"

    def check(self, config: BurstConfig) -> None:
        if config.n_bursts < 1 or config.burst_size < 1:
            raise ConfigError("burst load: n_bursts and burst_size must be >= 1")

    def run(self, serve: Callable[[np.ndarray], Any], config: BurstConfig, context: LoadContext) -> LoadOutput:
        pool = np.asarray(context.pool)
        samples_ns = []
        for b in range(config.n_bursts):
            batch = np.take(pool, np.arange(b * config.burst_size, (b + 1) * config.burst_size) % pool.size)
            t0 = time.perf_counter_ns()
            serve(batch)
            context.sync()
            samples_ns.append(time.perf_counter_ns() - t0)
        summary = summarize(np.asarray(samples_ns), unit="ns", name="burst latency", seed=context.seed)
        rows = metric_rows(summary, prefix="burst_latency", load=self.name, include=("p50", "mean"))
        return LoadOutput(
            rows=rows,
            timings=[
                {"load": self.name, "batch_size": config.burst_size, "unit_of_work": "users", **summary.to_dict()}
            ],
            extras={"ext_burst": {"n_bursts": config.n_bursts, "burst_size": config.burst_size}},
        )


class ExtPop(Pop):
    """Pop whose scores go through the backend its variant builds (looked up in the variant registry)."""

    name = RECOMMENDER
    run_context_params = ("variant", "device")

    def __init__(self, variant: str = VARIANT, device: str = "cpu") -> None:
        super().__init__()
        self.variant = variant
        self.device = device
        self.backend: ScaleBackend | None = None
        self.stats: dict[str, Any] = {}

    def fit(self, train: Any) -> ExtPop:
        super().fit(train)
        _, entry = variants.parse(self.variant)
        self.backend, _ = entry.build(variants.BuildRequest(model=None, device=self.device, threads=1))  # type: ignore[arg-type]
        self.stats = {"ext_backends_built": 1, "ext_score_scale": self.backend.scale}
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        assert self.backend is not None
        return super().score(users) * np.float32(self.backend.scale)


variants.register(
    variants.Variant(
        VARIANT,
        build_scaled,
        precision=variants.FP16,
        devices=("cpu",),
        composable=False,
        summary="test plugin: a score scale",
    )
)
register_load(BurstLoad())
registry.register(registry.Entry(RECOMMENDER, class_target(ExtPop), "classic", "test plugin: Pop through a variant"))
