"""Name -> online update strategy. A new strategy is one class (bench.recommenders.online.base.Strategy) plus one
line here; the `online` scenario's cells name them as their recommender, on a `replay` split."""

from __future__ import annotations

from bench.errors import ConfigError
from bench.recommenders.registry import Entry

STRATEGIES: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry(
            "stale",
            "bench.recommenders.online.classic:Stale",
            "classic",
            "fitted once before the replay, never updated (the floor); model=ease|ials|itemknn",
        ),
        Entry(
            "refit",
            "bench.recommenders.online.classic:Refit",
            "classic",
            "fitted afresh on the whole history after every window; model=ease|ials|itemknn",
        ),
        Entry(
            "ials-foldin",
            "bench.recommenders.online.classic:IALSFoldIn",
            "classic",
            "iALS: new items, then changed users, folded in by implicit's partial fit",
        ),
        Entry(
            "itemknn-incremental",
            "bench.recommenders.online.classic:ItemKNNIncremental",
            "classic",
            "ItemKNN: co-occurrence updated from the changed users' rows, neighbours re-pruned",
        ),
        Entry(
            "ease-periodic",
            "bench.recommenders.online.classic:EASEPeriodic",
            "classic",
            "EASE: users folded in every window, item weights refit every refit_every windows",
        ),
        Entry(
            "two-tower-incremental",
            "bench.recommenders.online.two_tower:TwoTowerIncremental",
            "llm",
            "two-tower: new items encoded, changed profiles re-encoded, item cache reused",
        ),
        Entry(
            "two-tower-finetune",
            "bench.recommenders.online.two_tower:TwoTowerFinetune",
            "llm",
            "two-tower: as incremental, and fine-tuned afresh every retrain_every windows",
        ),
    ]
}


def get(name: str) -> Entry:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown online strategy {name!r}: choose one of {', '.join(STRATEGIES)} "
            "(cells on a replay split name a strategy as their recommender)"
        ) from None
