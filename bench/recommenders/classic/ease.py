"""EASE^R (Steck 2019): a closed-form item-item linear model with a zero diagonal."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.errors import ConfigError
from bench.recommenders.base import ScoringRecommender
from bench.recommenders.classic._common import check_non_negative, csr_nbytes, fitted
from bench.work import RequestWork

if TYPE_CHECKING:  # torch is imported only for device="cuda"
    import torch


class EASE(ScoringRecommender):
    """B = argmin ||X - XB||^2 + lambda ||B||^2 s.t. diag(B) = 0, solved as B = I - P diag(1/diag(P)),
    P = (X^T X + lambda I)^-1. Dense n_items x n_items: fine up to a few tens of thousands of items.

    Default l2 = 400, tuned on ML-100K random-8-1-1 seed 0, valid part (NDCG@10: 50 -> 0.242,
    200 -> 0.261, 300 -> 0.264, 400 -> 0.265, 500 -> 0.263, 1000 -> 0.255).

    device="cuda" runs the same closed form on the GPU with torch (the inverse in float64, as here; scoring in
    float32 on dense history rows), for the GPU scenario; "cpu" (default) never imports torch.
    """

    name = "ease"
    run_context_params = ("device",)

    def __init__(self, l2: float = 400.0, device: str = "cpu") -> None:
        super().__init__()
        self.l2 = check_non_negative("l2", l2, "EASE")
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"EASE: device={device!r} is unknown: use cpu or cuda")
        self.device = device
        self.weights_: np.ndarray | None = None
        self._weights_cuda: torch.Tensor | None = None  # the torch copy of weights_ on the GPU when device="cuda"

    def fit(self, train: TrainSet) -> EASE:
        self._remember_seen(train)
        if self.device == "cuda":
            return self._fit_cuda()
        x = fitted(self._seen, "EASE")
        gram = (x.T @ x).toarray().astype(np.float64)
        # lambda = 0 leaves the Gram matrix singular for any never-seen item; a tiny ridge keeps it solvable
        gram[np.diag_indices_from(gram)] += max(self.l2, 1e-6)
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.weights_ = b.astype(np.float32)
        return self

    def _fit_cuda(self) -> EASE:
        import torch

        from bench.variants.device import resolve_device

        resolve_device("cuda")  # no GPU: one line saying so
        x = fitted(self._seen, "EASE")
        gram = torch.from_numpy((x.T @ x).toarray().astype(np.float64)).to("cuda")
        gram.diagonal().add_(max(self.l2, 1e-6))
        p = torch.linalg.inv(gram)
        b = p / (-torch.diagonal(p))[None, :]
        b.fill_diagonal_(0.0)
        weights_cuda = b.to(torch.float32)
        self._weights_cuda = weights_cuda
        self.weights_ = weights_cuda.cpu().numpy()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        weights, seen = self._fitted()
        if self._weights_cuda is not None:
            import torch

            rows = torch.from_numpy(seen[users].toarray().astype(np.float32)).to("cuda")
            return (rows @ self._weights_cuda).cpu().numpy()  # .cpu() waits for the GPU
        return np.asarray(seen[users] @ weights, dtype=np.float32)

    def request_work(self, users: np.ndarray) -> RequestWork:
        """history row (sparse) x dense item-item weights: nnz(history) x n_items multiply-adds."""
        nnz = fitted(self._seen, "EASE")[np.asarray(users)].nnz
        return RequestWork(n_requests=len(users), scoring_macs=nnz * self.n_items, kind="scores")

    def bytes_per_user(self, users: np.ndarray) -> float:
        """one float32 row of the item-item weights per history item, the history row, the score row."""
        weights, seen = self._fitted()
        hist = seen[np.asarray(users)]
        per_nnz = weights.shape[1] * weights.itemsize + hist.data.itemsize + hist.indices.itemsize
        return float(hist.nnz) * per_nnz / max(len(users), 1) + self._ranking_bytes()

    def _fitted(self) -> tuple[np.ndarray, sp.csr_matrix]:
        """(item-item weights, user-item history), or the error saying fit comes first."""
        return fitted(self.weights_, "EASE"), fitted(self._seen, "EASE")

    def footprint(self) -> int:
        """The dense item-item weights plus the user-item history multiplied with them at scoring time."""
        if self.weights_ is None:
            return 0
        return int(self.weights_.nbytes) + csr_nbytes(self._seen)
