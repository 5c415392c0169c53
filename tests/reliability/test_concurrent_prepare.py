"""Two processes preparing the same model at once both succeed, and the cache holds one verified copy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bench import models
from tests.support.models import build_tiny_model

#: real processes racing on one cache: left out of the fast default set (`./dev test`), run by `--all` and CI
pytestmark = pytest.mark.kill

# Only ONNX Runtime's quantiser is imported (not torch): the two processes start fast and race on the same file
WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    fp32, cache, go = sys.argv[1:4]
    from bench.variants.onnx import quantize_onnx
    import onnxruntime.quantization  # noqa: F401 - imported before the start line, so both start together
    while not Path(go).exists():
        time.sleep(0.01)
    target, meta = quantize_onnx(Path(fp32), Path(cache))
    print(json.dumps({"file": str(target), **meta}))
""")


def _tiny(tmp_path: Path):
    directory = build_tiny_model(tmp_path / "tiny", layers=1, hidden=16, heads=2, intermediate=32)
    return models.resolve_model(str(directory), cache_dir=tmp_path / "cache"), tmp_path / "cache"


def test_two_processes_quantising_the_same_export_both_succeed(tmp_path):
    from bench.variants.onnx import export_onnx

    model, cache = _tiny(tmp_path)
    fp32, _ = export_onnx(model, cache)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(fp32), str(cache), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.2)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    # one of them quantised, the other waited for the lock and reused its file
    assert sorted(r["reused_from_cache"] for r in reports) == [False, True]
    # no "-inferred.onnx" or staging directory left beside the shared export
    names = [p.name for p in fp32.parent.iterdir()]
    assert Path(reports[0]["file"]).name in names
    assert [n for n in names if "inferred" in n or ".tmp" in n] == []
    meta = json.loads((fp32.parent / "recbench-onnx.json").read_text())
    name = Path(reports[0]["file"]).name
    assert models.check_files(fp32.parent, {name: meta[f"sha256[{name}]"]}, cache) is None


def test_two_preparations_of_the_same_export_at_once_make_it_once(tmp_path):
    """The per-artefact lock also holds between threads (each opens its own lock file description)."""
    from bench.variants.onnx import export_onnx

    model, cache = _tiny(tmp_path)
    outcomes: list = []

    def prepare() -> None:
        try:
            outcomes.append(export_onnx(model, cache)[1]["reused_from_cache"])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcomes.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(outcomes, key=str) == [False, True]
