"""A run measures the int8 peak of the runtime its int8 cells use, and no utilisation figure of an int8 cell
exceeds 100% of it (the audit found 114%: an onnx-int8 cell measured against the fp32 GEMM)."""

from __future__ import annotations

import json

import pytest

from bench import results
from bench.cli import main

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_an_int8_cell_stays_within_the_peak_of_its_own_precision(tmp_path, tiny):
    scenario = tmp_path / "int8.py"
    params = {"model": tiny["model"], "cache_dir": str(tiny["cache_dir"]), "mode": "zero-shot"}
    scenario.write_text(
        '"""int8 roofline"""\n'
        "from bench.scenario import CellSpec, Scenario, Settings\n"
        f"P = {json.dumps(params)}\n"
        'D, S = "synthetic:users=60,items=50,interactions=1200,seed=2", "random-8-1-1"\n'
        "SCENARIO = Scenario(name='int8', description='t', cells=(\n"
        "    CellSpec(D, S, 'llm-two-tower', variant='onnx-int8', params=P, loads=('offline',)),\n"
        "    CellSpec(D, S, 'ease', loads=('offline',))),\n"
        "    settings=Settings(seed=0, threads=1, batch_sizes=(1, 16), offline_min_s=0.05, offline_min_batches=3))\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out), "--no-report"]) == 0
    # each cell with its derived figures (utilisation and roofline live in the results' derived section)
    run = results.with_derived(results.load(next(out.glob("*/results.json")).parent))
    int8 = next(c for c in run.cells if c.variant == "onnx-int8")
    assert run.machine_of(int8)["peak_int8"]["by_runtime"]["onnxruntime"]["gops_max"] > 0
    util = int8.metric("utilisation_pct_of_peak", "offline")
    assert util is not None and "int8 GEMM, onnxruntime" in util.flag
    for c in run.cells:
        for name in ("utilisation_pct_of_peak", "pct_of_bound"):
            row = c.metric(name, "offline")
            assert row is not None, (c.cell, name)
            assert 0 < row.value <= 100.0, (c.cell, name, row.value)
    assert int8.extras["roofline"]["precision"] == "int8"
