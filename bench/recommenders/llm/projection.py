"""Linear maps applied on top of frozen (or fine-tuned) text embeddings, and how the cheap mode trains them.

A `Projection` centres embeddings on the item mean, multiplies by a per-tower matrix and L2-normalises, so
similarity stays a cosine. Zero-shot with `dim` uses the item embeddings' PCA for both towers (the
article's reduction step, unsupervised); the `projection` mode learns the two matrices with InfoNCE on
(profile, held-out train item) pairs while the transformer stays frozen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.recommenders.llm.common import info_nce, l2_normalise, pca_components, positives_mask


@dataclass
class Projection:
    mean: np.ndarray  # (d_in,) item-embedding mean, subtracted from both towers
    user_w: np.ndarray  # (d_in, d_out)
    item_w: np.ndarray  # (d_in, d_out)

    @property
    def dim(self) -> int:
        return int(self.user_w.shape[1])

    def users(self, x: np.ndarray) -> np.ndarray:
        return l2_normalise((x - self.mean) @ self.user_w)

    def items(self, x: np.ndarray) -> np.ndarray:
        return l2_normalise((x - self.mean) @ self.item_w)

    def nbytes(self) -> int:
        return int(self.mean.nbytes + self.user_w.nbytes + self.item_w.nbytes)


@dataclass(frozen=True)
class ProjectionTraining:
    epochs: int = 10
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    temperature: float = 0.05
    #: "catalogue": softmax over every item (exact for full ranking; cheap while the item tower is frozen);
    #: "in-batch": InfoNCE over the batch's targets, with the logQ popularity correction when `logq`
    negatives: str = "catalogue"
    logq: bool = True
    budget_s: float = 60.0
    seed: int = 0


@dataclass
class TrainLog:
    steps: int = 0
    epochs: float = 0.0
    loss_first: float = float("nan")
    loss_last: float = float("nan")
    stopped_by: str = "epochs"  # "epochs" | "steps" | "time budget"
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def optimiser_step(self, opt, loss) -> None:
        """One optimiser step on `loss`, counted, with the first and the latest loss kept."""
        opt.zero_grad()
        loss.backward()
        opt.step()
        self.steps += 1
        value = float(loss.detach())
        if self.steps == 1:
            self.loss_first = value
        self.loss_last = value

    def as_stats(self, prefix: str) -> dict[str, Any]:
        out = {
            f"{prefix}_steps": self.steps,
            f"{prefix}_epochs": round(self.epochs, 3),
            f"{prefix}_loss_first": self.loss_first,
            f"{prefix}_loss_last": self.loss_last,
            f"{prefix}_stopped_by": self.stopped_by,
            f"{prefix}_s": self.seconds,
        }
        out.update({f"{prefix}_{k}": v for k, v in self.extra.items()})
        return out


def pca_projection(item_emb: np.ndarray, dim: int) -> Projection:
    mean, comps = pca_components(item_emb, dim)
    return Projection(mean, comps.T.copy(), comps.T.copy())


def identity_projection(item_emb: np.ndarray) -> Projection:
    d = item_emb.shape[1]
    eye = np.eye(d, dtype=np.float32)
    return Projection(item_emb.mean(axis=0).astype(np.float32), eye, eye.copy())


def train_projection(
    profile_emb: np.ndarray,
    pair_rows: np.ndarray,
    pair_users: np.ndarray,
    pair_items: np.ndarray,
    item_emb: np.ndarray,
    seen,
    init: Projection,
    cfg: ProjectionTraining,
) -> tuple[Projection, TrainLog]:
    """Learn user/item matrices with InfoNCE on frozen embeddings; deterministic for a seed.

    pair j: profile_emb[pair_rows[j]] (user pair_users[j]) should rank item pair_items[j] first. Known
    positives of the user other than the target are masked out of the negatives. Training stops at
    `epochs` or at `budget_s`, whichever comes first (the log says which).
    """
    import torch
    import torch.nn.functional as F

    if cfg.negatives not in ("in-batch", "catalogue"):
        raise ConfigError(f"negatives={cfg.negatives!r} unknown: use 'in-batch' or 'catalogue'")
    if len(pair_rows) == 0:
        raise ConfigError("no training pairs: every user has a single train interaction; use mode='zero-shot'")
    gen = torch.Generator().manual_seed(cfg.seed)
    mean = torch.from_numpy(init.mean)
    p = torch.from_numpy(np.ascontiguousarray(profile_emb)) - mean
    e = torch.from_numpy(np.ascontiguousarray(item_emb)) - mean
    wu = torch.nn.Parameter(torch.from_numpy(init.user_w.copy()))
    wi = torch.nn.Parameter(torch.from_numpy(init.item_w.copy()))
    opt = torch.optim.Adam([wu, wi], lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(pair_rows)
    rows_t = torch.from_numpy(pair_rows.astype(np.int64))
    items_t = torch.from_numpy(pair_items.astype(np.int64))
    log = TrainLog()
    t0 = time.perf_counter()
    steps_per_epoch = max(1, -(-n // cfg.batch_size))
    log_q = None
    if cfg.negatives == "in-batch" and cfg.logq:
        freq = np.bincount(pair_items, minlength=item_emb.shape[0]).astype(np.float64)
        log_q = torch.from_numpy(np.log(np.maximum(freq, 1.0) / n).astype(np.float32))
    done = False
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            users_np = pair_users[idx.numpy()]
            items_np = pair_items[idx.numpy()]
            u = F.normalize(p[rows_t[idx]] @ wu, dim=-1)
            if cfg.negatives == "in-batch":
                v = F.normalize(e[items_t[idx]] @ wi, dim=-1)
                mask = torch.from_numpy(positives_mask(seen, users_np, items_np))
                targets = None
                offset = log_q[items_t[idx]] if log_q is not None else None
            else:
                v = F.normalize(e @ wi, dim=-1)
                m = np.asarray(seen[users_np].toarray() > 0)
                m[np.arange(len(idx)), items_np] = False
                mask = torch.from_numpy(m)
                targets = items_t[idx]
                offset = None
            log.optimiser_step(opt, info_nce(u, v, cfg.temperature, mask, targets, offset))
            if time.perf_counter() - t0 > cfg.budget_s:
                log.stopped_by = "time budget"
                done = True
                break
        log.epochs = epoch + (s + 1) / steps_per_epoch
        if done:
            break
    log.seconds = time.perf_counter() - t0
    return Projection(init.mean, wu.detach().numpy().copy(), wi.detach().numpy().copy()), log
