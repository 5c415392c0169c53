"""Static int8 against fp32 on the trained two-tower (finetune): quality kept and offline speed-up, one run."""
from bench.scenario import CellSpec, Scenario, Settings

D, S = "ml-100k", "random-8-1-1"
# the same fine-tuned model (seeded) under fp32 and under ONNX Runtime static int8 calibrated on its train texts;
# the quality gate compares the int8 cell with the fp32 one, and the offline sweeps give the speed-up
cells = tuple(CellSpec(D, S, "llm-two-tower", variant=v, params={"mode": "finetune"}, tag="finetune",
                       loads=("offline",), batch_sizes=(1, 32, 256)) for v in ("fp32", "onnx-int8-static"))

SCENARIO = Scenario(
    name="int8_static",
    description=__doc__,
    cells=cells,
    settings=Settings(seed=0, threads=2, offline_min_s=1.0, offline_min_batches=3, cell_timeout_s=1800.0),
)
