"""llm-pairwise: the article's BERT two-tower rating model, made sound.

Article: user text -> BERT -> 64-d projection; item text -> BERT -> 64-d projection; concatenate ->
linear -> rating, trained with MSE. Its code put the rating label into the item text (the answer in the
input); here the item tower reads the real title/year/genres and the user tower the profile of liked
titles, neither ever holding a rating.

Training (CPU budget): the transformer is frozen; its pooled embeddings feed the trainable projections and
head, trained with MSE on train ratings. Leak-free: per user, part A of the train items builds the
profile and part B's ratings are the targets (`holdout_frac`), so a target's title is never in its own
profile. Predictions at test time use the profile built from all train items.

Two executions, same outputs (`execution_agreement` measures the gap):
- naive: both towers' transformer run for every (user, item) pair, as the article's code does;
- cached: the item tower ran once per item in fit (the item matrix); per request the user tower runs once
  per user and the head is a few matrix products.

Why the article's head cannot personalise a ranking: with concatenate-then-linear,
    score(u, i) = a_u . (P_u f(u) + b_u) + a_i . (P_i g(i) + b_i) + b = c(u) + d(i),
so for every user the items are ordered by d(i) alone: one global ranking, shifted per user. `head=
"interaction"` adds the element-wise product of the two projections (a bilinear term
(P_u f(u))^T diag(a_x) (P_i g(i))), which can order items differently for different users.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.data.dataset import TrainSet
from bench.errors import ConfigError
from bench.recommenders.base import ScoringRecommender
from bench.recommenders.llm.common import (
    LLMRecommenderMixin,
    RequestWork,
    Stopwatch,
    check_choice,
    check_fraction,
    check_positive,
    make_encoder,
    require,
)
from bench.recommenders.llm.profile import (
    DEFAULT_MIN_RATING,
    DEFAULT_PROFILE_LEN,
    ProfileConfig,
    build_profiles,
    holdout_split,
    item_texts,
)
from bench.recommenders.llm.projection import TrainLog
from bench.variants.registry import FP32, INT8, precision_of

HEADS = ("concat", "interaction")
EXECUTIONS = ("cached", "naive")
#: the pairs on which a run compares and times the two executions (see `extra_measurements`)
AGREEMENT_USERS, AGREEMENT_ITEMS_PER_USER, EXECUTION_ROUNDS = 4, 64, 5
AGREEMENT_TOLERANCE = 1e-4


class _HeadWeights:
    """The trained projections and head as numpy arrays: one implementation of the head for both executions."""

    def __init__(self, user_w, user_b, item_w, item_b, out_w, out_b: float, head: str) -> None:
        self.user_w, self.user_b = user_w, user_b  # (d_in, p), (p,)
        self.item_w, self.item_b = item_w, item_b
        p = user_w.shape[1]
        self.a_user, self.a_item = out_w[:p], out_w[p : 2 * p]
        self.a_cross = out_w[2 * p :] if head == "interaction" else None
        self.out_b = float(out_b)

    def users(self, f: np.ndarray) -> np.ndarray:
        return (f @ self.user_w + self.user_b).astype(np.float32)

    def items(self, g: np.ndarray) -> np.ndarray:
        return (g @ self.item_w + self.item_b).astype(np.float32)

    def pairs(self, pu: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """Row-wise score of (pu[j], pi[j])."""
        s = pu @ self.a_user + pi @ self.a_item + self.out_b
        if self.a_cross is not None:
            s = s + np.einsum("jp,jp->j", pu * self.a_cross, pi)
        return s.astype(np.float32)

    def matrix(self, pu: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """(n_users, n_items) scores of every pair, as matrix products."""
        s = (pu @ self.a_user)[:, None] + (pi @ self.a_item)[None, :] + self.out_b
        if self.a_cross is not None:
            s = s + (pu * self.a_cross) @ pi.T
        return s.astype(np.float32)

    def nbytes(self) -> int:
        arrays = [self.user_w, self.user_b, self.item_w, self.item_b, self.a_user, self.a_item, self.a_cross]
        return int(sum(a.nbytes for a in arrays if a is not None) + 4)


def _train_head(
    f_users: np.ndarray,
    g_items: np.ndarray,
    rows: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    head: str,
    proj_dim: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    budget_s: float,
    seed: int,
) -> tuple[_HeadWeights, TrainLog]:
    """MSE on (profile row, item, rating) triples with frozen features; seeded and deterministic."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    d_in = f_users.shape[1]
    user_proj = torch.nn.Linear(d_in, proj_dim)
    item_proj = torch.nn.Linear(d_in, proj_dim)
    width = proj_dim * (3 if head == "interaction" else 2)
    out = torch.nn.Linear(width, 1)
    with torch.no_grad():
        out.bias.fill_(float(ratings.mean()))  # start at the global mean: the first epochs fit structure, not offset
    params = [*user_proj.parameters(), *item_proj.parameters(), *out.parameters()]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    fu = torch.from_numpy(np.ascontiguousarray(f_users))
    gi = torch.from_numpy(np.ascontiguousarray(g_items))
    rows_t, items_t = torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(items.astype(np.int64))
    y = torch.from_numpy(ratings.astype(np.float32))
    n = len(y)
    log = TrainLog()
    t0 = time.perf_counter()
    steps_per_epoch = max(1, -(-n // batch_size))
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size : (s + 1) * batch_size]
            pu, pi = user_proj(fu[rows_t[idx]]), item_proj(gi[items_t[idx]])
            z = torch.cat([pu, pi, pu * pi] if head == "interaction" else [pu, pi], dim=1)
            loss = torch.mean((out(z).squeeze(-1) - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.steps += 1
            total += float(loss.detach()) * len(idx)
        mse = total / n
        if epoch == 0:
            log.loss_first = mse
        log.loss_last = mse
        log.epochs = epoch + 1
        if time.perf_counter() - t0 > budget_s and epoch + 1 < epochs:
            log.stopped_by = "time budget"
            break
    log.seconds = time.perf_counter() - t0
    t = lambda p: p.detach().numpy().copy()  # noqa: E731
    weights = _HeadWeights(
        t(user_proj.weight).T.copy(),
        t(user_proj.bias),
        t(item_proj.weight).T.copy(),
        t(item_proj.bias),
        t(out.weight).ravel(),
        float(out.bias.detach()),
        head,
    )
    return weights, log


class Pairwise(LLMRecommenderMixin, ScoringRecommender):
    name = "llm-pairwise"
    run_context_params = ("variant", "device", "threads", "seed")
    predicts_ratings = True

    def __init__(
        self,
        model: Any = "minilm",
        variant: str = FP32,
        device: str = "cpu",
        threads: int | None = None,
        head: str = "concat",
        execution: str = "cached",
        proj_dim: int = 64,
        profile_len: int = DEFAULT_PROFILE_LEN,
        min_rating: float = DEFAULT_MIN_RATING,
        item_fields: str = "describe",
        holdout_frac: float = 0.5,
        epochs: int = 15,
        train_batch_size: int = 1024,
        lr: float = 2e-3,
        weight_decay: float = 1e-5,
        train_budget_s: float = 120.0,
        clip: bool = True,
        batch_size: int = 64,
        max_length: int = 128,
        seed: int = 0,
        cache_dir: Any = None,
    ) -> None:
        super().__init__()
        self._params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.model, self.variant, self.device, self.threads = model, variant, device, threads
        self.head = check_choice("head", head, HEADS, self.name)
        self.execution = check_choice("execution", execution, EXECUTIONS, self.name)
        self.proj_dim = check_positive("proj_dim", proj_dim, self.name, integer=True)
        self.profile = ProfileConfig(
            check_positive("profile_len", profile_len, self.name, integer=True), float(min_rating)
        )
        self.item_fields = check_choice("item_fields", item_fields, ("describe", "title"), self.name)
        self.holdout_frac = check_fraction("holdout_frac", holdout_frac, self.name)
        self.epochs = check_positive("epochs", epochs, self.name, integer=True)
        self.train_batch_size = check_positive("train_batch_size", train_batch_size, self.name, integer=True)
        self.lr = check_positive("lr", lr, self.name)
        self.weight_decay = float(weight_decay)
        self.train_budget_s = check_positive("train_budget_s", train_budget_s, self.name)
        self.clip = bool(clip)
        self.batch_size = check_positive("batch_size", batch_size, self.name, integer=True)
        self.max_length = check_positive("max_length", max_length, self.name, integer=True)
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self.stats: dict[str, Any] = {}
        self.encoder = None
        self.weights: _HeadWeights | None = None
        self.item_matrix: np.ndarray | None = None  # (n_items, proj_dim): the item tower, projected, run once
        self._profiles: list[str] = []
        self._item_texts: list[str] = []
        self._rating_range = (-np.inf, np.inf)

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, train: TrainSet) -> Pairwise:
        self._remember_seen(train)
        inter = train.interactions
        if len(inter) == 0:
            raise ConfigError("llm-pairwise: the train split is empty: nothing to learn ratings from")
        self.stats = {
            "head": self.head,
            "execution": self.execution,
            "proj_dim": self.proj_dim,
            "profile_len": self.profile.max_titles,
            "trained": "projections + head on frozen transformer features (MSE)",
        }
        self._profiles = build_profiles(inter, train.item_text, train.n_users, self.profile)
        self._item_texts = item_texts(train.item_text, self.item_fields)
        self._rating_range = (float(inter.ratings.min()), float(inter.ratings.max()))
        watch = Stopwatch()
        self.encoder = make_encoder(
            self.model,
            self.variant,
            self.device,
            self.threads,
            self.max_length,
            self.cache_dir,
            distill_texts=self._item_texts + [p for p in self._profiles if p],
        )
        self._record_encoder(watch())

        watch = Stopwatch()
        g_items = self.encoder.encode(self._item_texts, self.batch_size)
        self.stats["encode_items_s"] = watch()
        self.stats["n_items_encoded"] = len(self._item_texts)

        part_a, part_b = holdout_split(inter, self.holdout_frac, self.seed)
        if len(part_b) == 0:
            raise ConfigError(
                "llm-pairwise: no user has two train ratings, so no leak-free target exists; "
                "use a split with more interactions per user"
            )
        profiles_a = build_profiles(part_a, train.item_text, train.n_users, self.profile)
        users = np.unique(part_b.users).astype(np.int64)
        row_of = np.full(train.n_users, -1, dtype=np.int64)
        row_of[users] = np.arange(len(users))
        watch = Stopwatch()
        f_users = self.encoder.encode([profiles_a[u] for u in users], self.batch_size)
        self.stats["encode_train_profiles_s"] = watch()
        self.weights, log = _train_head(
            f_users,
            g_items,
            row_of[part_b.users.astype(np.int64)],
            part_b.items,
            part_b.ratings,
            self.head,
            self.proj_dim,
            self.epochs,
            self.train_batch_size,
            self.lr,
            self.weight_decay,
            self.train_budget_s,
            self.seed,
        )
        self.stats.update(log.as_stats("train"))
        self.stats["train_ratings"] = len(part_b)
        self.stats["train_s"] = self.stats["encode_train_profiles_s"] + log.seconds
        self.item_matrix = np.ascontiguousarray(self.weights.items(g_items))
        self.stats["item_matrix_bytes"] = int(self.item_matrix.nbytes)
        self.stats["head_bytes"] = self.weights.nbytes()
        return self

    # ------------------------------------------------------------------------------------ per request
    def _check_fitted(self) -> tuple[_HeadWeights, np.ndarray]:
        """(head weights, item matrix), or the error saying fit comes first."""
        if self.weights is None or self.item_matrix is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train) first")
        return self.weights, self.item_matrix

    def _user_features(self, users: np.ndarray) -> np.ndarray:
        weights, _ = self._check_fitted()
        return weights.users(self.encoder.encode([self._profiles[u] for u in users.tolist()], self.batch_size))

    def score_pairs(self, users: np.ndarray, items: np.ndarray, execution: str | None = None) -> np.ndarray:
        """Raw model output for each (users[j], items[j]) pair under `execution` (default: this model's).

        naive: the transformer reads the profile and the item text of every pair (no reuse of any result);
        cached: the user tower runs once per distinct user, the item side comes from the item matrix.
        """
        weights, item_matrix = self._check_fitted()
        execution = check_choice("execution", execution or self.execution, EXECUTIONS, self.name)
        users = np.asarray(users, dtype=np.int64).ravel()
        items = np.asarray(items, dtype=np.int64).ravel()
        if users.shape != items.shape:
            raise ConfigError(f"score_pairs needs one item per user: got {users.size} users and {items.size} items")
        if execution == "naive":
            pu = weights.users(self.encoder.encode([self._profiles[u] for u in users.tolist()], self.batch_size))
            pi = weights.items(self.encoder.encode([self._item_texts[i] for i in items.tolist()], self.batch_size))
            return weights.pairs(pu, pi)
        distinct, inverse = np.unique(users, return_inverse=True)
        pu = self._user_features(distinct)
        return weights.pairs(pu[inverse], item_matrix[items])

    def predict_rating(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings, clipped to the train rating range when `clip` (the rating track: RMSE/MAE)."""
        pred = self.score_pairs(users, items)
        return np.clip(pred, *self._rating_range) if self.clip else pred

    def score(self, users: np.ndarray) -> np.ndarray:
        """Every item for each user. cached: user tower once per user + matrix head; naive: n_items pairs each."""
        weights, item_matrix = self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        if self.execution == "naive":
            n = self.n_items
            flat = self.score_pairs(np.repeat(users, n), np.tile(np.arange(n), len(users)), "naive")
            return flat.reshape(len(users), n)
        return weights.matrix(self._user_features(users), item_matrix)

    def execution_agreement(self, users: np.ndarray, items: np.ndarray) -> dict[str, float]:
        """Both executions on the same pairs: their max and mean absolute difference (should be <= 1e-4)."""
        naive = self.score_pairs(users, items, "naive")
        cached = self.score_pairs(users, items, "cached")
        diff = np.abs(naive.astype(np.float64) - cached.astype(np.float64))
        return {
            "max_abs_diff": float(diff.max(initial=0.0)),
            "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
            "pairs": int(diff.size),
        }

    def extra_measurements(self, users: np.ndarray, k: int, exclude=None) -> list[dict]:
        """Both executions on the same fixed pairs, timed and compared: the run's own proof that they agree
        and what the naive one costs.

        Pairs: the first `AGREEMENT_USERS` of `users`, each with `AGREEMENT_ITEMS_PER_USER` items spread over
        the catalogue (a ranking request's shape: one user, many candidates). `EXECUTION_ROUNDS` rounds, the
        two executions alternating within each round after one untimed call of each, so drift in the
        machine's speed falls on both.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)[:AGREEMENT_USERS]
        require(users.size > 0, f"{self.name}: no users to compare the executions on")
        per_user = min(AGREEMENT_ITEMS_PER_USER, self.n_items)
        items = np.linspace(0, self.n_items - 1, per_user).astype(np.int64)
        pair_users, pair_items = np.repeat(users, per_user), np.tile(items, users.size)
        n_pairs = int(pair_users.size)
        # also the warm-up: first-call costs (allocations, kernels) stay out of the timed samples
        agreement = self.execution_agreement(pair_users, pair_items)
        times_ms: dict[str, list[float]] = {e: [] for e in EXECUTIONS}
        for _ in range(EXECUTION_ROUNDS):
            for execution in EXECUTIONS:
                t0 = time.perf_counter_ns()
                self.score_pairs(pair_users, pair_items, execution)
                times_ms[execution].append((time.perf_counter_ns() - t0) / 1e6 / n_pairs)
        worst = agreement["max_abs_diff"]
        where = f"{users.size} users x {per_user} items"
        ratio = float(np.median(times_ms["naive"]) / np.median(times_ms["cached"]))
        return [
            {
                "metric": "execution_max_abs_diff",
                "value": worst,
                "unit": "rating",
                "n": n_pairs,
                "flag": "" if worst <= AGREEMENT_TOLERANCE else self._disagreement(where),
            },
            {"metric": "execution_mean_abs_diff", "value": agreement["mean_abs_diff"], "unit": "rating", "n": n_pairs},
            {"metric": "naive_pair", "samples_ms": times_ms["naive"], "load": "pairs", "unit_of_work": "pairs"},
            {"metric": "cached_pair", "samples_ms": times_ms["cached"], "load": "pairs", "unit_of_work": "pairs"},
            {
                "metric": "naive_over_cached_time",
                "value": ratio,
                "unit": "ratio",
                "load": "pairs",
                "n": EXECUTION_ROUNDS,
                "flag": f"median time per pair, {where}, interleaved rounds",
            },
            # the whole catalogue per user: what ranking with the naive execution would cost (analytic)
            {
                "metric": "naive_over_cached_flops_full_ranking",
                "work_ratio": (self.request_work(users, "naive"), self.request_work(users, "cached")),
                "unit": "ratio",
                "n": int(users.size),
                "flag": "analytic FLOPs, every item scored per user",
            },
        ]

    def _disagreement(self, where: str) -> str:
        why = ""
        if precision_of(self.variant) == INT8:
            # measured on the real MiniLM: one text alone vs in a batch of three, cosine 0.993 (onnx-int8),
            # 0.966 (int8); fp32 and onnx agree to 1e-7
            why = (
                "; dynamic int8 quantises activations with a scale computed over each batch, so a text's "
                "embedding depends on the texts batched with it, and the two executions batch differently"
            )
        return f"naive and cached differ by more than {AGREEMENT_TOLERANCE:g} on {where}{why}"

    def request_work(self, users: np.ndarray, execution: str | None = None) -> RequestWork:
        """Transformer forwards and head multiply-adds to score the whole catalogue for `users`."""
        self._check_fitted()
        execution = check_choice("execution", execution or self.execution, EXECUTIONS, self.name)
        users = np.asarray(users, dtype=np.int64)
        profiles = [self._profiles[u] for u in users.tolist()]
        profile_tokens = self.encoder.token_counts(profiles)
        n, p, d_in = self.n_items, self.proj_dim, int(self.encoder.dim)
        head_macs = n * p * (3 if self.head == "interaction" else 2)
        if execution == "naive":
            item_tokens = self.encoder.token_counts(self._item_texts)
            counts = np.concatenate([np.repeat(profile_tokens, n), np.tile(item_tokens, len(users))])
            macs = len(users) * (n * 2 * d_in * p + head_macs)
        else:
            counts = profile_tokens
            macs = len(users) * (d_in * p + head_macs)
        return RequestWork(
            n_requests=len(users),
            encoder_config=self.encoder_config(),
            token_counts=counts,
            scoring_macs=int(macs),
            kind="texts",
            notes={"execution": execution, "head": self.head},
        )

    def footprint(self) -> int:
        if self.encoder is None:
            return 0
        weights, item_matrix = self._check_fitted()
        # naive execution keeps no item matrix: it re-runs the item tower for every pair
        items = 0 if self.execution == "naive" else int(item_matrix.nbytes)
        return int(self.encoder.footprint()) + items + weights.nbytes()

    def __repr__(self) -> str:
        return (
            f"Pairwise(model={self.model!r}, variant={self.variant!r}, head={self.head!r}, "
            f"execution={self.execution!r})"
        )
