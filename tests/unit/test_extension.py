"""Extension points from outside the package: a variant, a load and a recommender registered by a plugin module
(tests/support/extension.py) run in a real cell, spawned by the runner, without any library file naming them;
bad plugins fail in one line before any work; the production registry holds no test double."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import runner
from bench.cli import main
from bench.errors import ConfigError
from bench.measure.load_registry import SINGLE_STREAM
from bench.scenario import CellSpec, Scenario, Settings
from tests.support import extension
from tests.support.extension import LOAD, RECOMMENDER, SCALE, VARIANT, BurstConfig

DATASET = "synthetic:users=60,items=40,interactions=900,seed=2"
N_BURSTS = 5
BURST_SIZE = 4


def test_library_files_never_name_the_plugin():
    bench_dir = Path(__file__).resolve().parents[2] / "bench"
    for path in bench_dir.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in (VARIANT, LOAD, RECOMMENDER):
            assert name not in text, f"{path} names {name}"


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    """One real run through the runner: the plugin's recommender under the plugin's variant, put under the
    plugin's load (with a config from Settings.loads) and under the packaged single-stream load."""
    out = tmp_path_factory.mktemp("ext")
    scenario = Scenario(
        name="ext",
        description="plugin cells",
        cells=(CellSpec(DATASET, "random-8-1-1", RECOMMENDER, variant=VARIANT, loads=(LOAD, SINGLE_STREAM)),),
        settings=Settings(
            threads=1,
            stream_min_count=10,
            stream_min_s=0.05,
            stream_max_s=0.5,
            warmup_count=1,
            loads={LOAD: BurstConfig(n_bursts=N_BURSTS, burst_size=BURST_SIZE)},
        ),
        plugins=(extension.PLUGIN,),
    )
    run, out_dir = runner.run(scenario, runner.RunOptions(out_root=out, report=False, measure_peak=False))
    return run


def test_a_plugin_variant_and_load_run_in_a_spawned_cell_and_produce_their_rows(plugin_run):
    (cell,) = [c for c in plugin_run.cells if c.recommender == RECOMMENDER]
    assert cell.status == "ok", cell.error
    assert cell.variant == VARIANT and cell.params["variant"] == VARIANT  # passed in through the run context
    # the variant's builder ran inside the cell's own process (a fresh spawned one, not this one)
    assert cell.metric("ext_backends_built").value == 1
    assert cell.metric("ext_score_scale").value == SCALE
    assert cell.provenance["cell_pid"] != __import__("os").getpid()
    # the plugin load's rows, under its own name, with the sample count its Settings.loads config asked for
    burst = [r for r in cell.metrics if r.load == LOAD]
    assert {r.metric for r in burst} == {"burst_latency_p50_ms", "burst_latency_mean_ms"}
    assert all(r.n == N_BURSTS and r.value > 0 for r in burst)
    assert cell.extras["ext_burst"] == {"n_bursts": N_BURSTS, "burst_size": BURST_SIZE}
    assert [t["batch_size"] for t in cell.timings if t["load"] == LOAD] == [BURST_SIZE]
    # the packaged load ran beside it, looked up in the same registry
    assert cell.metric("latency_p50_ms", SINGLE_STREAM) is not None
    # quality is measured for the plugin recommender like any other
    assert cell.metric("ndcg@10") is not None


def test_the_variant_registry_answers_for_the_plugin_variant():
    from bench.cost import precision_of
    from bench.variants import registry as variants

    assert variants.precision_of(VARIANT) == precision_of(VARIANT) == variants.FP16
    with pytest.raises(ConfigError, match="runs on cpu only"):
        variants.check_device(VARIANT, "cuda")


def test_an_unimportable_plugin_is_one_line_exit_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "quick", "--plugin", "no_such_recbench_plugin", "--out", str(out), "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no_such_recbench_plugin" in err
    assert not out.exists()


def test_a_scenario_naming_a_missing_plugin_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad_plugin.py"
    path.write_text(
        '"""t"""\nfrom bench.scenario import CellSpec, Scenario\n'
        f'SCENARIO = Scenario("t", "t", (CellSpec({DATASET!r}, "random-8-1-1", "pop"),), '
        'plugins=("missing_ext.py",))\n'
    )
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "missing_ext.py" in err
    assert not (tmp_path / "out").exists()


def test_the_production_registry_holds_the_harness_probe_and_no_test_double():
    listing = subprocess.run(
        [sys.executable, "-c", "from bench.recommenders.registry import REGISTRY; print(' '.join(sorted(REGISTRY)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = set(listing.stdout.split())
    assert "noop" in names  # a measurement probe production scenarios (quick, full) use
    assert not names & {"failing", "sleeping", RECOMMENDER}


def test_run_plugin_on_the_command_line_registers_in_the_driver_and_in_the_cell_process(tmp_path, capsys):
    path = tmp_path / "cli_plugin.py"
    path.write_text(
        '"""t"""\nfrom bench.scenario import CellSpec, Scenario, Settings\n'
        f"SCENARIO = Scenario('cliext', 't', (CellSpec({DATASET!r}, 'random-8-1-1', {RECOMMENDER!r}, "
        f"variant={VARIANT!r}, loads=()),), Settings(threads=1))\n"
    )
    out = tmp_path / "out"
    code = main(["run", str(path), "--plugin", extension.PLUGIN, "--out", str(out), "--no-report"])
    assert code == 0, capsys.readouterr().err
    from bench import results

    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    (cell,) = [c for c in results.load(run_dir / "results.json").cells if c.recommender == RECOMMENDER]
    assert cell.status == "ok" and cell.metric("ext_score_scale").value == SCALE


def test_a_cell_task_carries_a_file_plugins_config_class_to_a_fresh_process(tmp_path):
    """A plugin loaded from a .py path has a module name only this process knows; the task imports the plugins
    in the receiving process before it reads the settings that hold the plugin's classes."""
    import pickle
    import shutil

    from bench import plugins
    from bench.executors.base import CellTask

    copy = tmp_path / "ext_copy.py"
    shutil.copy(extension.PLUGIN, copy)
    (module,) = plugins.load([str(copy)])
    assert module.__name__.startswith("recbench_plugin_")
    settings = Settings(loads={LOAD: module.BurstConfig(n_bursts=7)})
    task = CellTask(0, CellSpec(DATASET, "random-8-1-1", RECOMMENDER), settings, plugins=(str(copy),))
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys; t = pickle.loads(sys.stdin.buffer.read()); "
            f"c = t.settings.loads[{LOAD!r}]; print(type(c).__module__, c.n_bursts)",
        ],
        input=pickle.dumps(task),
        capture_output=True,
        check=True,
    )
    assert child.stdout.decode().split() == [module.__name__, "7"]
