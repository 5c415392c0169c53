"""bench.measure.memory: the RSS sampler sees allocations (own process and a child), footprints, CUDA skips."""

import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp

from bench.errors import BenchError
from bench.measure.memory import RssSampler, cuda_memory, file_nbytes, nvml_device_memory, object_nbytes

MB = 1024 * 1024


def test_sampler_sees_a_large_allocation_in_its_own_process():
    with RssSampler(interval_s=0.005) as sampler:
        block = np.ones(150 * MB // 8)  # written, so its pages are resident
        time.sleep(0.05)
        del block
    rep = sampler.report()
    assert rep.peak_rss_bytes >= 120 * MB
    assert rep.peak_rss_total_bytes - rep.baseline_rss_bytes == rep.peak_rss_bytes
    assert rep.n_samples >= 3 and rep.interval_target_s == 0.005
    if rep.hwm_peak_rss_bytes is not None and rep.hwm_reset:
        assert rep.hwm_peak_rss_bytes >= 120 * MB


def test_sampler_watches_a_child_process_from_the_parent():
    code = "import time; b = b'x' * (120 * 1024 * 1024); time.sleep(0.6)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        with RssSampler(child.pid) as sampler:
            child.wait(timeout=30)
    finally:
        child.kill()
    rep = sampler.report()
    assert rep.pid == child.pid and rep.peak_rss_total_bytes >= 100 * MB


def test_sampler_rejects_intervals_coarser_than_10_ms():
    with pytest.raises(BenchError):
        RssSampler(interval_s=0.05)


def test_object_nbytes_counts_arrays_once_and_follows_containers():
    base = np.zeros(1000)  # 8000 bytes
    csr = sp.random(50, 40, density=0.1, format="csr", random_state=0, dtype=np.float64)
    expected_csr = csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes

    class Model:
        def __init__(self):
            self.weights = base
            self.view = base[:10]  # keeps `base` alive: counted once, through its base
            self.index = {"csr": csr, "ids": [np.arange(5, dtype=np.int64)]}
            self.name = "m"

    assert object_nbytes(Model()) == 8000 + expected_csr + 40
    assert object_nbytes(base[::2]) == 8000


def test_object_nbytes_torch_module_deduplicates_tied_weights():
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(10, 20)  # 200 + 20 float32 values
    assert object_nbytes(lin) == 220 * 4
    assert object_nbytes([lin.weight, lin.weight[:3], lin.weight.T]) == 200 * 4


def test_cuda_and_nvml_skip_cleanly_with_a_reason():
    for info in (cuda_memory(), nvml_device_memory()):
        if not info["available"]:
            assert info["reason"]


def test_file_nbytes(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x" * 100)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "w.bin").write_bytes(b"y" * 28)
    assert file_nbytes(tmp_path / "m.onnx", tmp_path / "d") == 128
    with pytest.raises(BenchError):
        file_nbytes(tmp_path / "missing.onnx")
