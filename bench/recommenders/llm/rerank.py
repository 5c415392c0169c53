"""llm-rerank: a classic recommender retrieves the top N; a cross-encoder re-ranks them.

Stage 1: any registry recommender (default EASE) retrieves `n_candidates` unseen items per user.
Stage 2: the transformer reads each (profile, candidate text) pair jointly ([CLS] profile [SEP] item
[SEP]) under the requested variant; a logistic head on its pooled joint representation scores the pair.
No pretrained cross-encoder is available offline, so the head is trained here, on TRAIN only: per user a
seeded share of train items is held out (part B); a retriever fitted on the rest (part A) proposes
candidates; held-out items among them are the positives, the other retrieved items the negatives.

`blend="learned"` (default) gives the head the candidate's retrieval rank (log(1 + rank)) and standardised
retriever score as two unpenalised features, and picks the penalty on the cross-encoder weights by 2-fold
cross-validation over the training users (within-list NDCG@10): so the blend leans on the language model
only as far as it helped on held-out train data. `blend="none"` re-ranks by the cross-encoder alone. Only the first N are re-ordered; if k > N the retriever's order continues after them.

Cost grows linearly with N (N transformer forwards per request): sweep `n_candidates` (e.g. 20, 50, 100);
`stats["candidates_per_request"]` records it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.recommenders.base import Recommender, TopK, check_k
from bench.recommenders.llm.common import (
    LLMRecommenderMixin,
    RequestWork,
    Stopwatch,
    check_choice,
    check_fraction,
    check_positive,
    check_retriever,
    make_encoder,
)
from bench.recommenders.llm.profile import DEFAULT_MIN_RATING, ProfileConfig, build_profiles, holdout_split, item_texts
from bench.variants.registry import FP32

BLENDS = ("learned", "none")


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float | np.ndarray) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by L-BFGS: min mean(log(1 + exp(-s z))) + 1/2 sum(l2 w^2), s = 2y - 1.

    `l2` is one penalty for every weight or one per feature (0 leaves a feature unpenalised).
    """
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    x = x.astype(np.float64)
    s = np.where(y > 0, 1.0, -1.0)
    n, d = x.shape
    penalty = np.broadcast_to(np.asarray(l2, dtype=np.float64), (d,))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = x @ w + b
        value = -np.mean(log_expit(s * z)) + 0.5 * float(penalty @ (w * w))
        g = -s * expit(-s * z) / n
        return value, np.concatenate([x.T @ g + penalty * w, [g.sum()]])

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:d].astype(np.float32), float(res.x[d])


def list_ndcg(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k of re-ordering each row's candidates by `scores` (rows: lists; labels: 0/1)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    gains = np.take_along_axis(labels, order, axis=1).astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, order.shape[1] + 2))
    dcg = gains @ discounts
    ideal = np.array([discounts[: min(int(n), k)].sum() for n in labels.sum(axis=1)])
    return float(np.mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)))


def retriever_features(scores: np.ndarray, ref_depth: int) -> np.ndarray:
    """(n_users, n, 2): log(1 + rank) and the retriever score standardised on the list's first `ref_depth`
    entries (the same reference at training and serving, whatever N is)."""
    n = scores.shape[1]
    s = np.where(np.isfinite(scores), scores, np.nan)
    ref = s[:, : max(1, min(ref_depth, n))]
    mean = np.nanmean(ref, axis=1, keepdims=True)
    std = np.nanstd(ref, axis=1, keepdims=True)
    z = np.nan_to_num((s - mean) / np.where(std > 0, std, 1.0), nan=-10.0)
    rank = np.broadcast_to(np.log1p(np.arange(n, dtype=np.float64))[None, :], scores.shape)
    return np.stack([rank, z], axis=2).astype(np.float32)


def blend_stats(x: np.ndarray, w: np.ndarray, dim: int) -> dict[str, float]:
    """What the learned blend chose, on its own (standardised) training lists `x` (lists, depth, dim + extras):

    - blend_ce_weight_norm: L2 norm of the cross-encoder's weights (0 = the language model is ignored)
    - blend_rank_weight, blend_score_weight: the retriever features' weights (0 with blend="none")
    - blend_ce_spread_share: the cross-encoder term's share of the blended score's within-list spread
    - blend_order_kept_share: share of those lists the blend leaves in the retriever's order (1 = it re-orders
      nothing, so the cell ranks exactly as its retriever does at many times its cost)
    """
    ce = x[..., :dim] @ w[:dim]
    ret = x[..., dim:] @ w[dim:] if x.shape[-1] > dim else np.zeros(x.shape[:2])
    order = np.argsort(-(ce + ret), axis=1, kind="stable")  # ties keep the retriever's order, as recommend does
    kept = np.all(order == np.arange(x.shape[1])[None, :], axis=1)
    spread_ce, spread_ret = float(ce.std(axis=1).mean()), float(ret.std(axis=1).mean())
    extra = [float(v) for v in w[dim:]] + [0.0, 0.0]
    return {
        "blend_ce_weight_norm": float(np.linalg.norm(w[:dim])),
        "blend_rank_weight": extra[0],
        "blend_score_weight": extra[1],
        "blend_ce_spread_share": spread_ce / (spread_ce + spread_ret) if spread_ce + spread_ret > 0 else 0.0,
        "blend_order_kept_share": float(kept.mean()),
    }


#: penalties tried on the cross-encoder weights (retriever features stay unpenalised); the one with the best
#: held-out within-list NDCG@10 (2-fold over training users) is kept. Very large = the retriever's order.
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e3)


class Rerank(LLMRecommenderMixin, Recommender):
    name = "llm-rerank"
    run_context_params = ("variant", "device", "threads", "seed")

    def __init__(
        self,
        retriever: str = "ease",
        retriever_params: dict[str, Any] | None = None,
        n_candidates: int = 50,
        model: Any = "minilm",
        variant: str = FP32,
        device: str = "cpu",
        threads: int | None = None,
        blend: str = "learned",
        profile_len: int = 5,
        min_rating: float = DEFAULT_MIN_RATING,
        item_fields: str = "describe",
        holdout_frac: float = 0.2,
        train_users: int = 100,
        train_candidates: int = 20,
        l2: float | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        seed: int = 0,
        cache_dir: Any = None,
    ) -> None:
        super().__init__()
        self._params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.retriever_name = check_retriever(retriever, self.name)
        self.retriever_params = dict(retriever_params or {})
        self.n_candidates = check_positive("n_candidates", n_candidates, self.name, integer=True)
        self.model, self.variant, self.device, self.threads = model, variant, device, threads
        self.blend = check_choice("blend", blend, BLENDS, self.name)
        self.profile = ProfileConfig(
            check_positive("profile_len", profile_len, self.name, integer=True), float(min_rating)
        )
        self.item_fields = check_choice("item_fields", item_fields, ("describe", "title"), self.name)
        self.holdout_frac = check_fraction("holdout_frac", holdout_frac, self.name)
        self.train_users = check_positive("train_users", train_users, self.name, integer=True)
        self.train_candidates = check_positive("train_candidates", train_candidates, self.name, integer=True)
        self.l2 = None if l2 is None else check_positive("l2", l2, self.name)
        self.batch_size = check_positive("batch_size", batch_size, self.name, integer=True)
        self.max_length = check_positive("max_length", max_length, self.name, integer=True)
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self.stats: dict[str, Any] = {}
        self.encoder = None
        self.retriever: Recommender | None = None
        # head weights of the retriever features [log(1 + rank), standardised score]; zero when blend="none"
        self.retriever_weights = np.zeros(2, dtype=np.float32)
        self._profiles: list[str] = []
        self._item_texts: list[str] = []

    def _build_retriever(self) -> Recommender:
        from bench.recommenders import registry

        return registry.get(self.retriever_name).build(**self.retriever_params)

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, train: TrainSet) -> Rerank:
        self._remember_seen(train)
        self.stats = {
            "retriever": self.retriever_name,
            "blend": self.blend,
            "candidates_per_request": self.n_candidates,
            "profile_len": self.profile.max_titles,
        }
        watch = Stopwatch()
        self.retriever = self._build_retriever().fit(train)
        self.stats["retriever_fit_s"] = watch()
        self._profiles = build_profiles(train.interactions, train.item_text, train.n_users, self.profile)
        self._item_texts = item_texts(train.item_text, self.item_fields)
        watch = Stopwatch()
        self.encoder = make_encoder(
            self.model,
            self.variant,
            self.device,
            self.threads,
            self.max_length,
            self.cache_dir,
            distill_texts=self._item_texts + [p for p in self._profiles if p],
            cross=True,
        )
        self._record_encoder(watch())
        watch = Stopwatch()
        self._train_head(train)
        self.stats["train_s"] = watch()
        return self

    def _train_head(self, train: TrainSet) -> None:
        """Logistic head on (profile_A, candidate) pairs from a retriever fitted on part A of train."""
        part_a, part_b = holdout_split(train.interactions, self.holdout_frac, self.seed)
        train_a = TrainSet(part_a, train.n_users, train.n_items, train.item_text)
        retriever_a = self._build_retriever().fit(train_a)
        held = part_b.matrix(train.n_users, train.n_items)
        rng = np.random.default_rng(self.seed)
        eligible = np.flatnonzero(np.diff(held.indptr) > 0)
        users = np.sort(rng.choice(eligible, size=min(self.train_users, len(eligible)), replace=False))
        depth = min(self.train_candidates, train.n_items)
        top = retriever_a.recommend(users, depth)
        labels = np.asarray(held[np.repeat(users, depth), top.items.ravel()]).reshape(len(users), depth) > 0
        keep = labels.any(axis=1)  # lists without a positive say nothing about order
        self.stats.update(
            {
                "train_users": int(keep.sum()),
                "train_pairs": int(keep.sum() * depth),
                "train_positives": int(labels.sum()),
            }
        )
        dim = int(self.encoder.dim)
        if not keep.any():
            self.encoder.set_head(np.zeros(dim, dtype=np.float32), 0.0)
            self.retriever_weights = np.array([-1.0, 0.0], dtype=np.float32)  # the retriever's own order
            self.stats["head"] = "no positives among retrieved candidates: retriever order kept"
            self.stats.update(
                blend_ce_weight_norm=0.0,
                blend_rank_weight=-1.0,
                blend_score_weight=0.0,
                blend_ce_spread_share=0.0,
                blend_order_kept_share=1.0,
            )
            return
        users, cand, labels = users[keep], top.items[keep], labels[keep]
        profiles_a = build_profiles(part_a, train.item_text, train.n_users, self.profile)
        watch = Stopwatch()
        joint = self.encoder.encode_pairs(
            [profiles_a[u] for u in np.repeat(users, depth).tolist()],
            [self._item_texts[i] for i in cand.ravel().tolist()],
            self.batch_size,
        )
        self.stats["encode_train_pairs_s"] = watch()
        feats = joint.reshape(len(users), depth, dim)
        n_extra = 2 if self.blend == "learned" else 0
        if n_extra:
            feats = np.concatenate([feats, retriever_features(top.scores[keep], self.train_candidates)], axis=2)
        mean = feats.reshape(-1, dim + n_extra).mean(axis=0)
        std = feats.reshape(-1, dim + n_extra).std(axis=0) + 1e-6
        x = (feats - mean) / std
        l2 = self.l2 if self.l2 is not None else self._choose_l2(x, labels, dim, n_extra)
        penalty = np.concatenate([np.full(dim, l2), np.zeros(n_extra)])
        w, b = fit_logistic(x.reshape(-1, dim + n_extra), labels.ravel(), penalty)
        # fold the standardisation into the weights: the cross-encoder's own head scores the joint vector
        w_raw = w / std
        b_raw = b - float(mean @ w_raw)
        self.encoder.set_head(w_raw[:dim], b_raw)
        self.retriever_weights = np.zeros(2, dtype=np.float32)
        if n_extra:
            self.retriever_weights = w_raw[dim:].astype(np.float32)
        self.stats["l2"] = float(l2)
        self.stats["head"] = "logistic on the pooled joint representation" + (
            " + retrieval rank and score (unpenalised)" if n_extra else ""
        )
        self.stats.update(blend_stats(x, w, dim))

    def _choose_l2(self, x: np.ndarray, labels: np.ndarray, dim: int, n_extra: int) -> float:
        """2-fold cross-validation over training users of the penalty on the cross-encoder weights."""
        folds = np.arange(len(x)) % 2
        scores = {}
        for l2 in L2_GRID:
            penalty = np.concatenate([np.full(dim, l2), np.zeros(n_extra)])
            held_out = []
            for f in (0, 1):
                tr, te = folds != f, folds == f
                if not tr.any() or not te.any():
                    continue
                w, b = fit_logistic(x[tr].reshape(-1, dim + n_extra), labels[tr].ravel(), penalty)
                held_out.append(list_ndcg(x[te] @ w + b, labels[te]))
            scores[l2] = float(np.mean(held_out)) if held_out else 0.0
        self.stats["cv_ndcg_by_l2"] = {f"{k:g}": round(v, 4) for k, v in scores.items()}
        self.stats["cv_ndcg_retriever_order"] = round(
            list_ndcg(-np.arange(x.shape[1])[None, :].repeat(len(x), 0).astype(float), labels), 4
        )
        return max(scores, key=lambda k: (scores[k], k))  # ties: the stronger penalty

    # ------------------------------------------------------------------------------------ per request
    def _fitted_retriever(self) -> Recommender:
        """The stage-1 model fit built, or the error saying fit comes first."""
        if self.retriever is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train) first")
        return self.retriever

    def candidates(self, users: np.ndarray, depth: int, exclude: sp.csr_matrix | None = None) -> TopK:
        """Stage 1: the retriever's top `depth` for `users` (seen items excluded)."""
        return self._fitted_retriever().recommend(users, depth, exclude=exclude)

    def rerank_scores(self, users: np.ndarray, cand: np.ndarray, cand_scores: np.ndarray) -> np.ndarray:
        """Stage 2: (n_users, n) head scores of each user's candidates (the per-request transformer work).

        `cand_scores` are the retriever's scores of `cand` (its TopK.scores), used when blend="learned".
        """
        n = cand.shape[1]
        queries = [self._profiles[u] for u in np.repeat(users, n).tolist()]
        docs = [self._item_texts[i] for i in cand.ravel().tolist()]
        scores = self.encoder.score_pairs(queries, docs, self.batch_size).reshape(len(users), n)
        if self.blend == "learned":
            scores = scores + retriever_features(cand_scores, self.train_candidates) @ self.retriever_weights
        return scores.astype(np.float32)

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> TopK:
        users = np.asarray(users, dtype=np.int64)
        check_k(k, self.n_items)
        n = min(self.n_candidates, self.n_items)
        top = self.candidates(users, max(k, n), exclude)
        cand = top.items[:, :n]
        scores = self.rerank_scores(users, cand, top.scores[:, :n])
        order = np.argsort(-scores, axis=1, kind="stable")  # ties keep the retriever's order
        items = np.take_along_axis(cand, order, axis=1)
        ranked = np.take_along_axis(scores, order, axis=1).astype(np.float32)
        if k <= n:
            return TopK(users=users, items=items[:, :k], scores=ranked[:, :k])
        # beyond N the retriever's order continues, scored below every re-ranked candidate
        tail = top.items[:, n:k]
        floor = ranked[:, -1:] - 1.0 - np.arange(k - n, dtype=np.float32)[None, :]
        return TopK(
            users=users,
            items=np.concatenate([items, tail], axis=1),
            scores=np.concatenate([ranked, floor], axis=1).astype(np.float32),
        )

    def request_work(self, users: np.ndarray) -> RequestWork:
        """One cross-encoder forward per candidate: token counts of the real (profile, candidate) pairs."""
        users = np.asarray(users, dtype=np.int64)
        n = min(self.n_candidates, self.n_items)
        cand = self.candidates(users, n).items
        counts = self.encoder.token_counts(
            [self._profiles[u] for u in np.repeat(users, n).tolist()],
            [self._item_texts[i] for i in cand.ravel().tolist()],
        )
        return RequestWork(
            n_requests=len(users),
            encoder_config=self.encoder_config(),
            token_counts=counts,
            scoring_macs=int(len(users) * n * (int(self.encoder.dim) + 1)),
            kind="pairs",
            notes={"candidates_per_request": n, "retriever": self.retriever_name},
            other=self._fitted_retriever().request_work(users),
        )

    def footprint(self) -> int:
        if self.encoder is None:
            return 0
        retriever = self._fitted_retriever()
        return int(self.encoder.footprint()) + int(retriever.footprint()) + int(self.encoder.dim + 3) * 4

    def __repr__(self) -> str:
        return (
            f"Rerank(retriever={self.retriever_name!r}, n_candidates={self.n_candidates}, "
            f"variant={self.variant!r}, blend={self.blend!r})"
        )
