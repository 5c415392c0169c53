"""bench.measure.energy: RAPL read with wrap-around, sub-domains ignored, labelled estimates otherwise."""

import pytest

from bench.measure.energy import CPU_WATTS_PER_BUSY_VCPU, EnergyMeter, rapl_delta_uj, rapl_package_zones


def fake_rapl(root, zones):
    for name, (energy, max_range) in zones.items():
        d = root / name
        d.mkdir()
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")


def test_rapl_delta_handles_one_wrap():
    assert rapl_delta_uj(100, 400, 1000) == 300
    assert rapl_delta_uj(900, 50, 1000) == 151  # 900 -> 1000, wraps to 0, -> 50


def test_rapl_meter_sums_package_zones_only_and_labels_measured(tmp_path):
    fake_rapl(
        tmp_path,
        {"intel-rapl:0": (1_000_000, 10**9), "intel-rapl:1": (999_000_000, 10**9), "intel-rapl:0:0": (5, 10**9)},
    )
    assert [z.name for z in rapl_package_zones(str(tmp_path))] == ["intel-rapl:0", "intel-rapl:1"]
    with EnergyMeter(rapl_root=str(tmp_path), gpu=False) as meter:
        (tmp_path / "intel-rapl:0" / "energy_uj").write_text("3000000")  # +2 J
        (tmp_path / "intel-rapl:1" / "energy_uj").write_text("499999")  # wrapped: +1.5 J
        (tmp_path / "intel-rapl:0:0" / "energy_uj").write_text("900000000")  # sub-domain: ignored
    res = meter.result()
    assert res["label"] == "measured" and res["joules"] == pytest.approx(3.5, abs=1e-5)
    assert "RAPL" in res["components"][0]["method"]


def test_without_rapl_the_estimate_is_cpu_seconds_times_documented_watts(tmp_path):
    with EnergyMeter(rapl_root=str(tmp_path / "none"), gpu=False) as meter:
        sum(i * i for i in range(300_000))
    res = meter.result()
    assert res["label"] == "estimated"
    assert res["joules"] == pytest.approx(res["cpu_s"] * CPU_WATTS_PER_BUSY_VCPU)
    assert "Cloud Carbon Footprint" in res["components"][0]["method"]


def test_gpu_work_without_nvml_is_listed_as_missing(tmp_path):
    with EnergyMeter(rapl_root=str(tmp_path), gpu=True) as meter:
        pass
    res = meter.result()
    if not any(c["domain"].startswith("gpu") for c in res["components"]):
        assert res["missing"] and "gpu" in res["missing"][0]
