"""Small helpers shared by the classic recommenders: parameter checks, byte counts, sparse top-k pruning."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import scipy.sparse as sp

from bench.errors import ConfigError
from bench.recommenders.base import top_k_indices

T = TypeVar("T")


def check_positive_int(name: str, value: int, model: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{model}: {name}={value!r} is invalid: use a positive integer")
    return int(value)


def check_non_negative(name: str, value: float, model: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{model}: {name}={value!r} is not a number: use a number >= 0") from None
    if not np.isfinite(v) or v < 0:
        raise ConfigError(f"{model}: {name}={value!r} is invalid: use a finite number >= 0")
    return v


def csr_nbytes(m: sp.spmatrix | None) -> int:
    """Bytes held by a CSR/CSC matrix's three arrays (data, indices, indptr)."""
    if m is None:
        return 0
    return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)


def fitted(value: T | None, model: str) -> T:
    """`value`, a part of `model`'s fitted state; the error saying fit comes first while it is still None."""
    if value is None:
        raise RuntimeError(f"{model} is not fitted: call fit(train) before scoring")
    return value


def cosine_topk_rows(x: sp.csr_matrix, k: int, block_rows: int = 1024) -> sp.csr_matrix:
    """Row-row cosine similarity of `x` keeping, for each row, its k most similar *other* rows.

    Returns an (n x n) float32 CSR whose row r holds r's k neighbours (self-similarity excluded, zero
    similarities dropped). Computed in row blocks so memory stays O(block_rows * n), never O(n^2)
    at once; inside a block everything is vectorised. Equal similarities at the k-th place keep the lower row
    index (`top_k_indices`), so the model is uniquely defined however the similarities tie.
    """
    n = x.shape[0]
    x = sp.csr_matrix(x, dtype=np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    xn = sp.csr_matrix(sp.diags(inv) @ x)
    xnt = sp.csr_matrix(xn.T)
    k = min(k, max(n - 1, 1))
    blocks = []
    for start in range(0, n, block_rows):  # loop over row blocks, not items
        stop = min(start + block_rows, n)
        blocks.append(_block_topk((xn[start:stop] @ xnt).toarray(), start, k))
    return _assemble_topk(blocks, n)


def cosine_topk_from_gram(gram: sp.spmatrix | np.ndarray, k: int, block_rows: int = 1024) -> sp.csr_matrix:
    """What `cosine_topk_rows(x, k)` returns, from the Gram matrix x @ x.T instead of x itself.

    cos(r, s) = G[r, s] / sqrt(G[r, r] G[s, s]). An incremental model keeps G up to date cheaply (a changed row
    of x changes G by two outer products) and rebuilds the k-neighbour matrix from it without touching x.
    """
    g = sp.csr_matrix(gram, dtype=np.float64) if sp.issparse(gram) else np.asarray(gram, dtype=np.float64)
    n = g.shape[0]
    diag = np.asarray(g.diagonal(), dtype=np.float64)
    inv = np.divide(1.0, np.sqrt(diag), out=np.zeros_like(diag), where=diag > 0)
    k = min(k, max(n - 1, 1))
    blocks = []
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        rows = g[start:stop] if isinstance(g, np.ndarray) else g[start:stop].toarray()
        blocks.append(_block_topk(rows * inv[start:stop, None] * inv[None, :], start, k))
    return _assemble_topk(blocks, n)


def _block_topk(sim: np.ndarray, start: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of each row's k largest positive similarities; `sim` holds rows start.. of the
    full matrix (modified: the self-similarity is zeroed, an item is not its own neighbour)."""
    local = np.arange(sim.shape[0])
    sim[local, local + start] = 0.0
    idx = top_k_indices(sim, k)
    vals = np.take_along_axis(sim, idx, axis=1)
    keep = vals > 0
    return np.broadcast_to((local + start)[:, None], idx.shape)[keep], idx[keep], vals[keep]


def _assemble_topk(blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int) -> sp.csr_matrix:
    rows = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros(0, np.int64)
    cols = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, np.int64)
    vals = np.concatenate([b[2] for b in blocks]) if blocks else np.zeros(0)
    out = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n, n), dtype=np.float32)
    out.sort_indices()
    return out
