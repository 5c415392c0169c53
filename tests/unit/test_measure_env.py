"""bench.measure.threads / provenance / peer: pinning recorded (in a fresh process), provenance without the raw
hostname, a stable fingerprint, and the peer check's verdict logic."""

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.measure import provenance
from bench.measure.peer import peer_check
from bench.measure.threads import pin_threads


def test_pin_threads_before_numpy_import_limits_blas_and_records_it():
    code = (
        "import json; from bench.measure.threads import pin_threads; rec = pin_threads(1);"
        "import numpy, threadpoolctl;"
        "rec['after'] = [p['num_threads'] for p in threadpoolctl.threadpool_info()];"
        "print(json.dumps(rec))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    rec = json.loads(out.stdout)
    assert rec["threads"] == 1 and rec["env"]["OMP_NUM_THREADS"] == "1"
    assert "numpy" not in rec["already_imported"] and "torch" not in rec["already_imported"]
    assert rec["after"] and all(n == 1 for n in rec["after"])


def test_pin_threads_rejects_bad_counts_without_side_effects(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ConfigError):
            pin_threads(bad)
    import os

    assert os.environ["OMP_NUM_THREADS"] == "7"


def test_provenance_records_versions_machine_and_no_raw_hostname():
    info = provenance.collect()
    assert info["packages"]["numpy"] == np.__version__ and "recbench" in info["packages"]
    assert info["code"]["commit"]
    machine = info["machine"]
    assert machine["logical_cores"] >= 1 and machine["memory_total_bytes"] > 0
    assert socket.gethostname() not in json.dumps(info)
    assert machine["machine_fingerprint"] == provenance.machine_fingerprint()
    assert info["start_time_utc"].endswith("+00:00")


def test_fingerprint_ignores_the_host_but_not_the_hardware():
    info = provenance.machine_info()
    renamed = dict(info, hostname_sha256_16="0" * 16)
    bigger = dict(info, memory_total_bytes=info["memory_total_bytes"] + 64 * 2**30)
    assert provenance.machine_fingerprint(renamed) == info["machine_fingerprint"]
    assert provenance.machine_fingerprint(bigger) != info["machine_fingerprint"]


def test_git_version_outside_a_checkout_is_unknown(tmp_path):
    assert provenance.git_version(tmp_path)["commit"] == "unknown"


def test_peer_check_reports_both_medians_and_a_consistent_verdict():
    a = np.random.default_rng(0).random((60, 60))
    res = peer_check(lambda: a @ a, n=120, blocks=4)
    assert res.n == 120
    assert res.suite_ci95_ms[0] <= res.suite_median_ms <= res.suite_ci95_ms[1]
    assert res.plain_ci95_ms[0] <= res.plain_median_ms <= res.plain_ci95_ms[1]
    assert res.agree == (res.intervals_overlap or abs(res.ratio - 1) <= res.rel_tol)
    assert peer_check(lambda: a @ a, n=40, rel_tol=1e9).agree


def test_peer_check_validates():
    with pytest.raises(ConfigError):
        peer_check(lambda: None, n=2, blocks=4)
