"""Energy over a measurement window, every figure labelled "measured" or "estimated" with its method.

Sources, best first:
- CPU, measured: Intel/AMD RAPL via Linux powercap, /sys/class/powercap/intel-rapl:N/energy_uj (package
  domains only, so sub-domains such as core/uncore/dram are not double counted), when readable (often root
  only). The counter wraps at max_energy_range_uj; a negative difference is corrected by one wrap.
  RAPL measures the whole package: other processes' work is included (said in the method string).
- GPU, measured: NVML's total-energy counter (nvmlDeviceGetTotalEnergyConsumption, mJ since driver load;
  Volta and newer) when `pynvml` (package nvidia-ml-py) is importable and the device supports it.
- CPU, estimated (fallback): this process's CPU-seconds (user + system, children included) x
  CPU_WATTS_PER_BUSY_VCPU. The constant is 3.5 W: the Cloud Carbon Footprint methodology's "Average Max
  Watts" per vCPU for AWS (derived from the SPECpower_ssj2008 database; cloudcarbonfootprint.org/docs/
  methodology, "Compute"). A CPU-second is a vCPU fully busy for one second, so the max (100% utilisation)
  figure applies. It excludes idle power, memory, storage and the data centre's PUE: a lower bound of
  the machine's draw attributable to the work, not a meter reading.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.errors import BenchError

CPU_WATTS_PER_BUSY_VCPU = 3.5
CPU_WATTS_SOURCE = (
    "Cloud Carbon Footprint methodology, AWS 'Average Max Watts' per vCPU = 3.5 W "
    "(SPECpower_ssj2008-derived), https://www.cloudcarbonfootprint.org/docs/methodology/"
)
RAPL_ROOT = "/sys/class/powercap"


@dataclass
class EnergyComponent:
    domain: str  # "cpu" or "gpu:N"
    joules: float
    label: str  # "measured" or "estimated"
    method: str


@dataclass
class EnergyResult:
    joules: float
    label: str  # "measured" only when every component is measured
    method: str
    wall_s: float
    cpu_s: float
    components: list[EnergyComponent] = field(default_factory=list)
    #: parts of the work whose energy is not in `joules` (e.g. "gpu: NVML unavailable")
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- RAPL


def rapl_package_zones(root: str = RAPL_ROOT) -> list[Path]:
    """Top-level package zones (intel-rapl:0, intel-rapl:1, ...) whose counter this process can read."""
    zones = []
    for path in sorted(glob.glob(os.path.join(root, "intel-rapl:*"))):
        name = os.path.basename(path)
        if name.count(":") != 1:  # intel-rapl:0:0 is a sub-domain of package 0
            continue
        energy = Path(path) / "energy_uj"
        if energy.is_file() and os.access(energy, os.R_OK):
            try:
                int(energy.read_text())
            except (OSError, ValueError):
                continue
            zones.append(Path(path))
    return zones


def _read_uj(zone: Path) -> int:
    return int((zone / "energy_uj").read_text())


def _max_range_uj(zone: Path) -> int | None:
    try:
        return int((zone / "max_energy_range_uj").read_text())
    except (OSError, ValueError):
        return None


def rapl_delta_uj(start: int, end: int, max_range_uj: int | None) -> int:
    """Counter difference with at most one wrap-around (windows are far shorter than a wrap period)."""
    delta = end - start
    if delta < 0:
        if not max_range_uj:
            raise BenchError(
                "RAPL counter went backwards and max_energy_range_uj is unreadable; "
                "shorten the measurement window or ignore this energy figure"
            )
        delta += max_range_uj + 1
    return delta


# ---------------------------------------------------------------- NVML


def _nvml_energy_mj() -> tuple[Any, dict[int, int]] | None:
    """(pynvml module, {device index: total energy mJ}) or None when unavailable."""
    try:
        import pynvml  # noqa: PLC0415 - optional

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no module, no library or no driver: no GPU energy reading
        return None
    readings: dict[int, int] = {}
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            try:
                readings[i] = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(pynvml.nvmlDeviceGetHandleByIndex(i)))
            except Exception:  # noqa: BLE001 - pre-Volta: not supported
                continue
    except Exception:  # noqa: BLE001 - NVML failing mid-query: no GPU energy reading
        return None
    return (pynvml, readings) if readings else None


# ---------------------------------------------------------------- meter


class EnergyMeter:
    """with EnergyMeter() as e: ...work...;  e.result() -> {"joules", "label", "method", ...}

    gpu: "auto" reads NVML when available; False skips it; True says the work runs on a GPU, so a GPU
    figure that cannot be read is listed under `missing` rather than silently left out. `pid` selects whose CPU-seconds feed the
    estimate (default: this process; children included once they have been waited for).
    """

    def __init__(
        self,
        *,
        gpu: bool | str = "auto",
        pid: int | None = None,
        rapl_root: str = RAPL_ROOT,
        watts_per_busy_vcpu: float = CPU_WATTS_PER_BUSY_VCPU,
    ) -> None:
        self.gpu = gpu
        self.proc = psutil.Process(pid)
        self.rapl_root = rapl_root
        self.watts = float(watts_per_busy_vcpu)
        self._result: EnergyResult | None = None

    def _cpu_s(self) -> float:
        try:
            t = self.proc.cpu_times()
        except psutil.NoSuchProcess:
            raise BenchError(
                f"process {self.proc.pid} ended before the energy window closed; measure energy "
                "inside the process doing the work (or close the window before it exits)"
            ) from None
        return t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)

    def __enter__(self) -> EnergyMeter:
        self._zones = rapl_package_zones(self.rapl_root)
        self._rapl_start = {z: _read_uj(z) for z in self._zones}
        self._nvml = _nvml_energy_mj() if self.gpu else None
        self._cpu_start = self._cpu_s()
        self._t_start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall_s = time.perf_counter() - self._t_start
        cpu_s = self._cpu_s() - self._cpu_start
        components: list[EnergyComponent] = []
        if self._zones:
            uj = sum(rapl_delta_uj(self._rapl_start[z], _read_uj(z), _max_range_uj(z)) for z in self._zones)
            components.append(
                EnergyComponent(
                    "cpu",
                    uj / 1e6,
                    "measured",
                    f"RAPL powercap package counters ({', '.join(z.name for z in self._zones)}); whole package, "
                    "other processes included",
                )
            )
        else:
            components.append(
                EnergyComponent(
                    "cpu",
                    cpu_s * self.watts,
                    "estimated",
                    f"process CPU-seconds ({cpu_s:.3f} s) x {self.watts:g} W per busy vCPU ({CPU_WATTS_SOURCE}); "
                    "RAPL not readable here",
                )
            )
        if self._nvml is not None:
            pynvml, start = self._nvml
            try:
                for i, mj0 in start.items():
                    mj1 = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(pynvml.nvmlDeviceGetHandleByIndex(i)))
                    components.append(
                        EnergyComponent(
                            f"gpu:{i}",
                            (mj1 - mj0) / 1e3,
                            "measured",
                            "NVML nvmlDeviceGetTotalEnergyConsumption (whole device)",
                        )
                    )
            finally:
                with contextlib.suppress(Exception):  # shutting NVML down is best effort
                    pynvml.nvmlShutdown()
        missing = []
        if self.gpu is True and not any(c.domain.startswith("gpu") for c in components):
            missing.append(
                "gpu: not included (NVML total-energy counter unavailable: install nvidia-ml-py, Volta or newer GPU)"
            )
        label = "measured" if all(c.label == "measured" for c in components) else "estimated"
        self._result = EnergyResult(
            joules=sum(c.joules for c in components),
            label=label,
            method="; ".join(f"{c.domain}: {c.label}" for c in components),
            wall_s=wall_s,
            cpu_s=cpu_s,
            components=components,
            missing=missing,
        )

    def result(self) -> dict[str, Any]:
        if self._result is None:
            raise BenchError("EnergyMeter.result() before the `with` block ended; read it after the block")
        return self._result.to_dict()
