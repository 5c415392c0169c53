"""The load registry: every load by name, its config from the scenario's Settings (one per load), checked
before any work; the packaged loads keep reading the flat Settings fields existing scenarios set."""

from __future__ import annotations

import pytest

from bench.errors import ConfigError
from bench.measure import load_registry
from bench.measure.builtin_loads import OfflineConfig, ServerConfig, SingleStreamConfig
from bench.measure.load_registry import DEFAULT_LOADS, OFFLINE, SERVER, SINGLE_STREAM
from bench.scenario import CellSpec, Settings


def test_the_packaged_loads_are_registered_in_their_run_order():
    assert load_registry.names()[:3] == list(DEFAULT_LOADS) == [OFFLINE, SINGLE_STREAM, SERVER]
    assert CellSpec("d", "s", "pop").loads == DEFAULT_LOADS


def test_flat_settings_fields_still_configure_the_packaged_loads():
    s = Settings(
        batch_sizes=(1, 4),
        offline_min_s=0.3,
        offline_min_batches=2,
        stream_min_count=7,
        stream_min_s=0.2,
        stream_max_s=0.9,
        warmup_count=1,
        slo_ms=50.0,
        server_budget_s=3.0,
        server_requests=11,
    )
    assert s.load_config(OFFLINE) == OfflineConfig(batch_sizes=(1, 4), min_s=0.3, min_batches=2)
    assert s.load_config(SINGLE_STREAM) == SingleStreamConfig(min_count=7, min_s=0.2, max_s=0.9, warmup_count=1)
    assert s.load_config(SERVER) == ServerConfig(slo_ms=50.0, budget_s=3.0, min_trial_requests=11)


def test_a_config_in_settings_loads_wins_over_the_flat_fields():
    s = Settings(slo_ms=50.0, loads={SERVER: ServerConfig(slo_ms=20.0)})
    s.validate()
    assert s.load_config(SERVER).slo_ms == 20.0


def test_a_cells_own_batch_sizes_sweep_exactly_those_even_when_the_scenario_adapts():
    base = Settings(offline_sweep="adaptive")
    config = CellSpec("d", "s", "pop", batch_sizes=(2, 8)).settings_for(base).load_config(OFFLINE)
    assert (config.batch_sizes, config.sweep) == ((2, 8), "fixed")
    assert CellSpec("d", "s", "pop").settings_for(base).load_config(OFFLINE).sweep == "adaptive"


@pytest.mark.parametrize(
    "settings, needle",
    [
        (Settings(loads={"no-such-load": ServerConfig()}), "unknown load 'no-such-load'"),
        (Settings(loads={SERVER: OfflineConfig()}), "takes a ServerConfig"),
        (Settings(loads={SERVER: ServerConfig(slo_ms=0.0)}), "SLO"),
        (Settings(stream_min_s=2.0, stream_max_s=1.0), "single-stream max duration"),
    ],
)
def test_bad_load_configs_fail_in_one_line_naming_the_problem(settings, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        settings.validate()
    assert "\n" not in str(err.value)


def test_an_unknown_load_name_in_a_cell_names_the_choices():
    with pytest.raises(ConfigError, match="unknown load.*choose from offline, single-stream, server"):
        load_registry.check_names(("offline", "bursty"), "cell x")
