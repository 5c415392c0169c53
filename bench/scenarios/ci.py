"""CI's deterministic gate: classic CF on ML-100K, quality, footprint and FLOPs only (no timing)."""

from bench.scenario import CellSpec, Scenario, Settings

# No loads: every figure here is deterministic for a seed, so `recbench compare` can gate it hard
# against reports/baselines/ci/results.json on any machine.
SCENARIO = Scenario(
    name="ci",
    description=__doc__,
    cells=tuple(CellSpec("ml-100k", "random-8-1-1", name, loads=()) for name in ("pop", "itemknn", "ease", "ials")),
    settings=Settings(seed=0, threads=2),
)
