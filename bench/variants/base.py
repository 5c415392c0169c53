"""The encoder protocol every variant provides, so recommenders never care how a transformer runs.

Recommenders call `encode` / `score_pairs`; variants decide eager vs quantised vs ONNX Runtime vs student.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class Preparation:
    """One-time cost of making a variant: reported apart from per-request cost."""

    seconds: float = 0.0  # export / quantise / distil wall time
    file_bytes: int = 0  # bytes on disk of what the variant runs (ONNX file, saved student, ...)
    notes: dict[str, Any] = field(default_factory=dict)
    #: the part of `seconds` made by an earlier process and reused from the cache: it is a real one-time cost
    #: but, unlike work redone here, not inside the fit time of the cell that reuses it
    reused_s: float = 0.0


class TextEncoder(Protocol):
    """Text -> fixed-size vectors (mean pooled, L2-normalised), under one variant on one device."""

    model_name: str  # e.g. "all-MiniLM-L6-v2"
    variant: str  # e.g. "fp32", "distilled+onnx-int8"
    device: str  # "cpu" | "cuda"
    dim: int
    cost_only: bool  # True for random-weight models: never report their quality
    preparation: Preparation

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text after truncation, as the model sees them (for FLOPs and hosted-API cost)."""

    def footprint(self) -> int:
        """Static bytes: parameters (or ONNX file) of the model as run."""

    def config(self) -> dict[str, Any]:
        """Architecture facts for analytic FLOPs: layers, hidden, heads, intermediate, vocab, max_length."""
