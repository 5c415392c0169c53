"""The trained next-item decoder on disk: saved once per (TRAIN data, hyper-parameters, seed, threads, library
versions), verified on every use, and read by every variant's cell.

Why share it: each cell is a fresh process, and the fp32 cell and its int8 / ONNX cells must serve the SAME
weights for the quality gate to measure the runtime and nothing else; a time budget that cuts training short
would otherwise leave each cell a different model. The directory holds the transformer (`config.json`,
`model.safetensors`, loadable by every variant), the catalogue head (`head.npz`) and `recbench-generative.json`
(training figures, as measured when it was trained, and the sha256 of both files).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.cache import sha256_file
from bench.models import publish_dir

MARKER = "recbench-generative.json"
#: bump when training changes in a way that changes the weights for the same settings
FORMAT = 1


@dataclass(frozen=True)
class Trained:
    directory: Path
    item_matrix: np.ndarray  # (n_items, hidden) float32
    item_bias: np.ndarray  # (n_items,) float32
    stats: dict[str, Any]  # training figures as measured when trained
    weights_sha256: str
    reused: bool  # True when read from an earlier training


def training_key(sequences: list[np.ndarray], n_items: int, settings: dict[str, Any], threads: int) -> str:
    """Everything that decides the weights: the time-ordered TRAIN sequences, catalogue size, hyper-parameters
    and seed, torch threads (float sums depend on them) and the library versions."""
    digest = hashlib.sha256()
    versions = {pkg: _version(pkg) for pkg in ("torch", "transformers")}
    digest.update(
        json.dumps(
            {
                "format": FORMAT,
                "n_items": n_items,
                "n_users": len(sequences),
                "threads": threads,
                "settings": settings,
                "versions": versions,
            },
            sort_keys=True,
            default=str,
        ).encode()
    )
    for seq in sequences:
        digest.update(np.asarray(len(seq), dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(seq, dtype=np.int64).tobytes())
    return digest.hexdigest()[:20]


def _version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "absent"


def load(directory: Path) -> Trained | None:
    """The stored training, or None when absent, incomplete or failing its checksums (then train again)."""
    try:
        meta = json.loads((directory / MARKER).read_text())
        weights, head = directory / "model.safetensors", directory / "head.npz"
        if sha256_file(weights) != meta["weights_sha256"] or sha256_file(head) != meta["head_sha256"]:
            return None
        with np.load(head) as arrays:
            matrix, bias = arrays["item_matrix"].astype(np.float32), arrays["item_bias"].astype(np.float32)
    except (OSError, ValueError, KeyError):
        return None
    return Trained(directory, matrix, bias, dict(meta["stats"]), meta["weights_sha256"], reused=True)


def save(body: Any, item_matrix: np.ndarray, item_bias: np.ndarray, stats: dict[str, Any], target: Path) -> Trained:
    """Write atomically (a staging directory renamed when complete); a corrupt entry at `target` is replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
    try:
        body.save_pretrained(staging, safe_serialization=True)
        np.savez(staging / "head.npz", item_matrix=item_matrix, item_bias=item_bias)
        meta = {
            "weights_sha256": sha256_file(staging / "model.safetensors"),
            "head_sha256": sha256_file(staging / "head.npz"),
            "stats": stats,
        }
        (staging / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if target.exists() and load(target) is None:
            shutil.rmtree(target, ignore_errors=True)
        publish_dir(staging, target, marker=MARKER)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    # another cell may have published the same training first: serve whatever is there, verified
    stored = load(target)
    if stored is None:
        raise OSError(f"the trained decoder written to {target} does not verify: check the disk, then retry")
    return Trained(target, stored.item_matrix, stored.item_bias, stored.stats, stored.weights_sha256, reused=False)
