"""Where a language model pays off: ML-100K with 20% of items held out (cold-items); quality on cold items against cost."""

from __future__ import annotations

from bench.scenario import CellSpec, Scenario, Settings

DATASET, SPLIT = "ml-100k", "cold-items"
#: collaborative filtering: none of these has ever seen a cold item, so none can recommend one
CLASSIC = ("pop", "itemknn", "ease", "ials")
LOADS = ("offline", "single-stream")
ZERO_SHOT = {"model": "minilm", "mode": "zero-shot"}


def build() -> Scenario:
    cells = [CellSpec(DATASET, SPLIT, name, loads=LOADS) for name in CLASSIC]
    # content only: the item tower reads every item's text, cold ones included
    cells += [
        CellSpec(DATASET, SPLIT, "llm-two-tower", variant=v, params=dict(ZERO_SHOT), loads=LOADS)
        for v in ("fp32", "onnx-int8")
    ]
    # trained on warm items only (a linear projection over frozen MiniLM, train split only); it applies to
    # cold items' text unchanged. A one-minute budget keeps it cheap.
    cells.append(
        CellSpec(
            DATASET,
            SPLIT,
            "llm-two-tower",
            variant="fp32",
            tag="projection",
            params={"model": "minilm", "mode": "projection", "train_budget_s": 60.0},
            loads=LOADS,
        )
    )
    # CF for warm items, the language model for cold ones: a calibrated per-item mix, and reserved slots
    cells.append(
        CellSpec(
            DATASET,
            SPLIT,
            "llm-hybrid",
            variant="fp32",
            params={"cf": "ease", **ZERO_SHOT, "mix": "quantile"},
            loads=LOADS,
        )
    )
    cells.append(
        CellSpec(
            DATASET,
            SPLIT,
            "llm-hybrid",
            variant="fp32",
            tag="slots",
            params={"cf": "ease", **ZERO_SHOT, "mix": "slots", "cold_share": 0.2},
            loads=LOADS,
        )
    )
    return Scenario(
        name="coldstart",
        description=__doc__,
        cells=tuple(cells),
        settings=Settings(
            seed=0,
            threads=2,
            ks=(10, 20),
            batch_sizes=(1, 32, 256),
            offline_min_s=0.5,
            offline_min_batches=3,
            stream_min_count=50,
            stream_min_s=0.5,
            stream_max_s=3.0,
            cell_timeout_s=900.0,
        ),
    )
