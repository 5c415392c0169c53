"""The gpu scenario: a clean one-line skip without CUDA, and a cell matrix that passes every check but the device."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError, ConfigError
from bench.scenario import SCENARIO_DIR, SkipScenario, load
from bench.variants.device import cuda_available

no_cuda = pytest.mark.skipif(cuda_available(), reason="this machine has CUDA: the gpu scenario runs here")


@no_cuda
def test_run_gpu_without_cuda_prints_one_line_exits_0_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "reports"
    code = main(["run", "gpu", "--out", str(out)])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert code == 0
    assert len(lines) == 1 and lines[0].startswith("recbench: skipped: ") and "CUDA" in lines[0]
    assert "gpu_check.sh" in lines[0]  # says where to run it instead
    assert captured.err == ""
    assert not out.exists()


@no_cuda
def test_loading_the_gpu_scenario_raises_skip_scenario_not_a_config_error():
    with pytest.raises(SkipScenario, match="CUDA"):
        load("gpu")


def test_a_skip_raised_while_the_module_loads_is_a_skip_too(tmp_path, capsys):
    path = tmp_path / "needs_thing.py"
    path.write_text(
        textwrap.dedent('''
        """needs a thing this machine lacks"""
        from bench.scenario import SkipScenario
        raise SkipScenario("needs_thing: no thing here; run it where there is one")
    ''')
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == "recbench: skipped: needs_thing: no thing here; run it where there is one"
    # any other exception at load time stays a one-line error with exit 2
    path.write_text("raise RuntimeError('boom')\n")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2


def test_the_gpu_matrix_covers_every_variant_for_both_llm_recommenders_and_ease_on_both_devices():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_scenario", SCENARIO_DIR / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # module level never touches CUDA: only build() checks
    cells = module.cells()
    from bench.recommenders import registry
    from bench.variants import parse_variant

    for rec in ("llm-two-tower", "llm-rerank"):
        assert sorted(c.variant for c in cells if c.recommender == rec) == sorted(["fp32", "fp16", "bf16", "onnx"])
        assert all(c.device == "cuda" for c in cells if c.recommender == rec)
    assert sorted(c.device for c in cells if c.recommender == "ease") == ["cpu", "cuda"]
    assert len({c.name for c in cells}) == len(cells)
    for c in cells:  # what preflight checks, short of the device
        registry.get(c.recommender).check_params(c.params)
        if c.variant != "none":
            parse_variant(c.variant)
    module.SETTINGS.validate()


def test_ease_takes_a_device_and_refuses_unknown_ones():
    from bench.recommenders.classic.ease import EASE

    assert EASE().device == "cpu"
    with pytest.raises(ConfigError, match="device"):
        EASE(device="tpu")


@no_cuda
def test_ease_on_cuda_without_a_gpu_fails_with_one_line():
    from bench.recommenders.classic.ease import EASE
    from tests.support.llm_data import toy_train

    with pytest.raises(BenchError, match="CUDA is not available"):
        EASE(device="cuda").fit(toy_train())


def test_gpu_check_script_is_executable_valid_bash():
    script = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
