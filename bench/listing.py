"""`recbench list`: the scenarios, recommenders, online strategies, datasets, splits and variants this install has."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_listing() -> None:
    from bench import scenario
    from bench.data import DATASETS
    from bench.data.splits import SPLITS
    from bench.recommenders.registry import REGISTRY
    from bench.variants import VARIANTS

    out = Console(highlight=False)
    t = Table(title="scenarios", title_justify="left")
    t.add_column("name")
    t.add_column("what it measures")
    for name, doc in scenario.available().items():
        t.add_row(name, doc)
    out.print(t)
    t = Table(title="recommenders", title_justify="left")
    t.add_column("name")
    t.add_column("family")
    t.add_column("what it is")
    for e in REGISTRY.values():
        if e.family != "test":
            t.add_row(e.name, e.family, e.summary)
    out.print(t)
    from bench.recommenders.online.registry import STRATEGIES

    t = Table(title="online update strategies (cells on a replay split)", title_justify="left")
    t.add_column("name")
    t.add_column("family")
    t.add_column("what it does")
    for e in STRATEGIES.values():
        t.add_row(e.name, e.family, e.summary)
    out.print(t)
    out.print("datasets: " + ", ".join(DATASETS))
    out.print("splits:   " + ", ".join(SPLITS) + ", replay[:start=0.5,window_days=7,windows=0] (online strategies)")
    out.print("variants: " + ", ".join(VARIANTS) + "  (composable with +, e.g. distilled+onnx-int8)")
