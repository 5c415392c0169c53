"""What keeping recommendations fresh costs: ML-100K replayed week by week, every update strategy, CF vs a language model."""

from __future__ import annotations

from bench.scenario import CellSpec, Scenario, Settings

DATASET = "ml-100k"
#: the first half of ML-100K's timeline (1997-09-20 .. 1998-01-05) fits the models; the second half arrives in
#: 16 weekly windows: 15 updates, each followed by ranking the next week's users
REPLAY = "replay:start=0.5,window_days=7"
#: windows between EASE item refits, and between two-tower fine-tunes
EASE_REFIT_EVERY = 4
FINETUNE_EVERY = 7


def build() -> Scenario:
    cf = [CellSpec(DATASET, REPLAY, "stale", params={"model": "ease"}, tag="ease", loads=())]
    cf += [
        CellSpec(DATASET, REPLAY, "refit", params={"model": m}, tag=m, loads=()) for m in ("ease", "ials", "itemknn")
    ]
    cf += [
        CellSpec(DATASET, REPLAY, "ials-foldin", loads=()),
        CellSpec(DATASET, REPLAY, "itemknn-incremental", loads=()),
        CellSpec(
            DATASET,
            REPLAY,
            "ease-periodic",
            params={"refit_every": EASE_REFIT_EVERY},
            tag=f"K={EASE_REFIT_EVERY}",
            loads=(),
        ),
    ]
    lm = [
        CellSpec(DATASET, REPLAY, "two-tower-incremental", variant="fp32", loads=()),
        CellSpec(
            DATASET,
            REPLAY,
            "two-tower-finetune",
            variant="fp32",
            params={"retrain_every": FINETUNE_EVERY},
            tag=f"K={FINETUNE_EVERY}",
            loads=(),
        ),
    ]
    return Scenario(
        name="online",
        description=__doc__,
        cells=tuple(cf + lm),
        settings=Settings(seed=0, threads=2, k=10, ks=(10,), cell_timeout_s=1800.0),
    )
