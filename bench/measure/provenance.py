"""Where a result came from: code version, package versions, platform, CPU, memory, time, machine fingerprint.

Cheap to call (no heavy imports: package versions come from installed metadata, not from importing them).
The raw hostname is never recorded, only a salted hash, so results can be shared; `machine_fingerprint`
identifies the hardware configuration (CPU model, cores, memory, architecture, GPU), not the host, so
two runs on the same kind of machine compare as such.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

#: distributions whose versions every result records (distribution names, as pip knows them)
PACKAGES = (
    "numpy",
    "scipy",
    "torch",
    "transformers",
    "onnxruntime",
    "optimum",
    "optimum-onnx",
    "implicit",
    "sentence-transformers",
    "recbench",
)
_SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def git_version(start: str | Path | None = None) -> dict[str, Any]:
    """{"commit", "dirty", "describe"} of the git checkout holding `start` (default: this package), or
    {"commit": "unknown", ...} outside git or without a git executable."""
    where = Path(start) if start else Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown", "dirty": None, "reason": "not a git checkout (or git unavailable)"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": bool(status) if status is not None else None,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpuinfo() -> dict[str, Any]:
    model: str | None = None
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "Processor") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model or platform.processor() or "unknown",
        "simd": [f for f in _SIMD_FLAGS if f in flags],
        "vector_int8": vector_int8_features(flags),
    }


#: /proc/cpuinfo flags that decide how fast int8 and half-precision kernels can run on x86 and Arm
_VECTOR_INT8_FLAGS = (
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def vector_int8_features(flags: set[str] | frozenset[str]) -> dict[str, Any]:
    """The CPU's vector and int8 features: int8 speed-ups depend on them (VNNI does a u8 x s8 multiply-add
    into int32 in one instruction; without it int8 GEMMs need three; AMX adds tile matrix units)."""
    has = {f: f in flags for f in _VECTOR_INT8_FLAGS}
    vnni = [f for f in ("avx512_vnni", "avx_vnni") if has[f]]
    best = (
        "AMX-INT8"
        if has["amx_int8"]
        else "AVX512-VNNI"
        if has["avx512_vnni"]
        else "AVX-VNNI"
        if has["avx_vnni"]
        else "AVX512BW"
        if has["avx512bw"]
        else "AVX2"
        if has["avx2"]
        else "Arm i8mm"
        if has["i8mm"]
        else "Arm dot-product"
        if has["asimddp"]
        else "none known"
    )
    return {
        "flags": has,
        "avx2": has["avx2"],
        "avx512": has["avx512f"],
        "vnni": vnni,
        "amx": has["amx_int8"],
        "best_int8_path": best,
    }


def _cpu_quota_cores() -> float | None:
    """CPU limit of the container (cgroup v2 cpu.max or v1 cfs quota), in cores; None when unlimited."""
    try:
        quota_text, period_text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if quota_text == "max" else int(quota_text) / int(period_text)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _gpus() -> list[str]:
    """GPU names via torch when this process already imported it (never imports torch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken CUDA set-up means no GPU to record, never a failed run
        pass
    return []


def hostname_hash(name: str | None = None) -> str:
    return hashlib.sha256(("recbench:" + (name or socket.gethostname())).encode()).hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    cpu = _cpuinfo()
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    freq = None
    try:
        f = psutil.cpu_freq()
        freq = round(f.max or f.current) if f else None
    except (NotImplementedError, OSError, AttributeError):
        pass
    info = {
        "cpu_model": cpu["model"],
        "cpu_simd": cpu["simd"],
        "cpu_vector_int8": cpu["vector_int8"],
        "cpu_max_mhz": freq,
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "usable_cores": affinity,
        "cpu_quota_cores": _cpu_quota_cores(),
        "memory_total_bytes": int(psutil.virtual_memory().total),
        "arch": platform.machine(),
        "os": platform.system(),
        "os_release": platform.release(),
        "platform": platform.platform(),
        "gpus": _gpus(),
        "hostname_sha256_16": hostname_hash(),
    }
    info["machine_fingerprint"] = machine_fingerprint(info)
    return info


def machine_fingerprint(info: dict[str, Any] | None = None) -> str:
    """Hash of the hardware configuration: CPU model and SIMD flags, core counts, memory (GiB, rounded), arch,
    OS, GPUs. The hostname is deliberately left out: same hardware, same fingerprint."""
    info = info or machine_info()
    key = "|".join(
        str(x)
        for x in (
            info["cpu_model"],
            ",".join(info["cpu_simd"]),
            info["physical_cores"],
            info["logical_cores"],
            info["usable_cores"],
            info["cpu_quota_cores"],
            round(info["memory_total_bytes"] / 2**30),
            info["arch"],
            info["os"],
            ",".join(info["gpus"]),
        )
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def collect(start_time: str | None = None) -> dict[str, Any]:
    """Everything a results file's `provenance` needs from this process (seeds and dataset checksums are the
    runner's to add)."""
    return {
        "start_time_utc": start_time or utc_now_iso(),
        "code": git_version(),
        "packages": package_versions(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "machine": machine_info(),
    }
