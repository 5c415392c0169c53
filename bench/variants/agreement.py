"""How closely a variant's embeddings agree with the fp32 reference: row cosine and top-k neighbour overlap."""

from __future__ import annotations

import numpy as np

from bench.errors import ConfigError


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return part


def agreement(reference: np.ndarray, other: np.ndarray, k: int = 10) -> dict[str, float]:
    """Compare `other` (a variant's embeddings) with `reference` (fp32) for the same texts, row for row.

    - cosine_mean / cosine_min: cosine between matching rows;
    - top{k}_overlap: each row as a query against the reference rows (as items): share of the reference
      top-k neighbours that the variant's query also ranks in its top-k, averaged over rows. Self-matches
      are excluded so the overlap is about the neighbourhood, not the trivial nearest row.
    """
    ref, oth = np.asarray(reference), np.asarray(other)
    if ref.ndim != 2 or ref.shape != oth.shape:
        raise ConfigError(f"agreement needs two matrices of the same shape, got {ref.shape} and {oth.shape}")
    n = ref.shape[0]
    if n == 0:
        raise ConfigError("agreement needs at least one row")
    ref_n, oth_n = _normalise(ref), _normalise(oth)
    cos = (ref_n * oth_n).sum(axis=1)
    out = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "n": float(n), "k": float(k)}
    k_eff = min(k, n - 1)
    if k_eff >= 1:
        ref_scores = ref_n @ ref_n.T
        oth_scores = oth_n @ ref_n.T
        np.fill_diagonal(ref_scores, -np.inf)
        np.fill_diagonal(oth_scores, -np.inf)
        a, b = _top_k(ref_scores, k_eff), _top_k(oth_scores, k_eff)
        # per row: which of the variant's top-k ids are among the reference's top-k ids (n x k x k compare)
        hits = (b[:, :, None] == a[:, None, :]).any(axis=2)
        out[f"top{k}_overlap"] = float(hits.mean())
    else:
        out[f"top{k}_overlap"] = float("nan")
    return out
