"""How cost grows with the catalogue: synthetic 1k-100k items, classic CF and the zero-shot two-tower (fp32, onnx-int8)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.growth import check_sizes
from bench.scenario import CellSpec, Scenario, Settings

#: catalogue sizes (items); users and interactions grow with them (see dataset_spec)
SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
CLASSIC = ("pop", "itemknn", "ease", "ials")
LM_VARIANTS = ("fp32", "onnx-int8")
#: The two-tower's item tower encodes every item once in fit. Measured on the 2-core development machine
#: (MiniLM-L6, synthetic item texts of ~15 tokens, so max_length 128 or 32 makes no difference): 40-55
#: items/s fp32 and ~80 onnx-int8 with 2 threads while other jobs shared the cores, 160 fp32 and 200
#: onnx-int8 with 1 thread in a quieter spell. 100k items would take 8-40 minutes per variant, 30k 2.5-12:
#: beyond this scenario's ~15-20 minute budget. So the language-model cells run to 10k items, where the
#: whole catalogue is really encoded (no sampling, no shortcut), and the report extends their fitted curves
#: to the larger sizes, labelled projected. On a machine with more cores, raise it (build(lm_max_items=...)).
LM_MAX_ITEMS = 10_000
USERS_PER_ITEM = 0.5
INTERACTIONS_PER_ITEM = 10  # 20 per user
SEED = 0


def dataset_spec(n_items: int, seed: int = SEED) -> str:
    """The synthetic dataset at one catalogue size: users and interactions grow in proportion."""
    n_users = max(100, int(n_items * USERS_PER_ITEM))
    return f"synthetic:users={n_users},items={n_items},interactions={INTERACTIONS_PER_ITEM * n_items},seed={seed}"


def build(
    sizes: Sequence[int] = SIZES,
    lm_max_items: int = LM_MAX_ITEMS,
    classic: Sequence[str] = CLASSIC,
    lm_variants: Sequence[str] = LM_VARIANTS,
) -> Scenario:
    """The scaling matrix; `sizes` must be non-empty and strictly increasing (else one ConfigError line)."""
    sizes = check_sizes(sizes, "scaling catalogue sizes")
    loads = ("offline", "single-stream")  # throughput and latency; the server SLO search adds minutes per cell
    cells = []
    for n in sizes:
        data = dataset_spec(n)
        # EASE's dense item x item fit cannot hold 30k+ items in this machine's memory: its cells still run
        # and fail at once with the figures (bench.memcheck), so the report shows where it stops and why
        cells += [CellSpec(data, "random-8-1-1", name, loads=loads) for name in classic]
        if n <= lm_max_items:
            cells += [
                CellSpec(
                    data,
                    "random-8-1-1",
                    "llm-two-tower",
                    variant=v,
                    params={"model": "minilm", "mode": "zero-shot"},
                    loads=loads,
                )
                for v in lm_variants
            ]
    return Scenario(
        name="scaling",
        description=__doc__ + f" Sizes {', '.join(f'{n:,}' for n in sizes)} items; users = items x "
        f"{USERS_PER_ITEM:g}, interactions = items x {INTERACTIONS_PER_ITEM}; language-model "
        f"cells up to {lm_max_items:,} items.",
        cells=tuple(cells),
        # quality on a seeded sample of test users (flagged as sampled): at 100k items full ranking of every
        # user would cost more than the cost figures this scenario is about
        settings=Settings(
            seed=SEED,
            threads=2,
            ks=(10,),
            quality_users=300,
            batch_sizes=(1, 32),
            offline_min_s=0.5,
            offline_min_batches=3,
            stream_min_count=30,
            stream_min_s=0.5,
            stream_max_s=2.0,
            warmup_count=3,
            cell_timeout_s=900.0,
        ),
    )
