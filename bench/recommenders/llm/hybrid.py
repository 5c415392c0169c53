"""llm-hybrid: collaborative filtering for items with history, the language model for items without.

Classic CF (EASE by default) cannot score an item nobody has interacted with: its column is empty, so a
new item never reaches a list. The two-tower language model reads every item's text, so it can. The
hybrid fits both on the same training data and treats as *cold* every item with no training interaction
(it never sees which items a split held out; it sees only what a deployed system would see).

How the two are mixed (`mix`):
- "quantile" (default, a calibrated mix per item): warm items keep their CF score; a cold item gets the
  CF score found at the same within-user quantile among the user's *candidate* warm items (unseen ones:
  items excluded from the list take no part, else CF's top scores, which belong to the user's own
  history, would be handed to cold items) as its language-model score. If the language model ranks a
  cold item above r of those warm items, it enters the list where CF's r-th lowest warm score sits. The
  share of cold items in a list then follows the language model's own view of the user, with no weight
  to tune, and warm items keep CF's order exactly.
- "slots": reserve a share `cold_share` of list positions for cold items (e.g. 0.2: positions 5, 10,
  15, ...), filled by the language model's best cold items; the other positions hold CF's best warm
  items. Positions are fixed, so every cut-off K keeps about that share.

Online work per request: the CF scores, the user tower's encoding of the profile text and its product
with the item matrix, and (quantile) one sort of each user's scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.errors import ConfigError
from bench.recommenders.base import ScoringRecommender, TopK, check_k, mask_seen, top_k
from bench.recommenders.llm.common import LLMRecommenderMixin, RequestWork, Stopwatch, check_choice, check_fraction
from bench.variants.registry import FP32

if TYPE_CHECKING:  # imported at fit time at run time
    from bench.recommenders.llm.two_tower import TwoTower

MIXES = ("quantile", "slots")
#: language-model stats that describe the model or its one-time costs; copied into the hybrid's stats
_LM_STATS = (
    "encoder_build_s",
    "prep_s",
    "prep_cached_s",
    "prep_file_bytes",
    "encoder_footprint_bytes",
    "model_name",
    "variant",
    "device",
    "cost_only",
    "encode_items_s",
    "n_items_encoded",
    "item_tokens_mean",
    "item_matrix_bytes",
    "train_s",
    "mode",
)


def quantile_map(lm: np.ndarray, cf: np.ndarray, warm: np.ndarray) -> np.ndarray:
    """Per row: each cold item's LM score replaced by the CF score at the same rank among warm items.

    lm, cf: (n_users, n_items) scores; warm: (n_items,) bool. Returns a copy of cf whose cold columns hold
    the mapped scores. A cold item whose LM score beats r of the row's warm LM scores gets the row's r-th
    lowest warm CF score (r = 0: the lowest; r = all: the highest). Vectorised: rows are laid end to end on
    one axis (row i shifted by i * span), so one searchsorted ranks every cold score within its own row.
    """
    out = np.array(cf, dtype=np.float32, copy=True)
    cold = ~warm
    n_rows, n_warm = lm.shape[0], int(warm.sum())
    if n_warm == 0 or not cold.any() or n_rows == 0:
        if n_warm == 0:
            out[:, cold] = lm[:, cold]
        return out
    lm_w = np.sort(lm[:, warm].astype(np.float64), axis=1)
    cf_w = np.sort(cf[:, warm].astype(np.float64), axis=1)
    lo = float(min(lm_w.min(), lm[:, cold].min()))
    span = float(max(lm_w.max(), lm[:, cold].max()) - lo) + 1.0
    shift = (np.arange(n_rows, dtype=np.float64) * span)[:, None]
    flat = (lm_w - lo + shift).ravel()
    query = lm[:, cold].astype(np.float64) - lo + shift
    # r = number of the row's warm LM scores strictly below the cold item's
    r = np.searchsorted(flat, query.ravel(), side="left").reshape(query.shape) - (np.arange(n_rows) * n_warm)[:, None]
    idx = np.clip(r, 1, n_warm) - 1
    out[:, cold] = np.take_along_axis(cf_w, idx, axis=1).astype(np.float32)
    return out


def slot_positions(k: int, share: float) -> np.ndarray:
    """(k,) bool: list positions reserved for cold items, evenly spread (share 0.2 -> 5th, 10th, ...)."""
    j = np.arange(k, dtype=np.float64)
    return np.floor((j + 1) * share + 1e-9) > np.floor(j * share + 1e-9)


class Hybrid(LLMRecommenderMixin, ScoringRecommender):
    name = "llm-hybrid"
    run_context_params = ("variant", "device", "threads", "seed")

    def __init__(
        self,
        cf: str = "ease",
        cf_params: dict[str, Any] | None = None,
        model: Any = "minilm",
        variant: str = FP32,
        device: str = "cpu",
        threads: int | None = None,
        mode: str = "zero-shot",
        lm_params: dict[str, Any] | None = None,
        mix: str = "quantile",
        cold_share: float = 0.2,
        seed: int = 0,
        cache_dir: Any = None,
    ) -> None:
        super().__init__()
        self._params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        from bench.recommenders import registry

        entry = registry.get(cf)
        if entry.family != "classic":
            raise ConfigError(
                f"{self.name}: cf={cf!r} is not a classic recommender: choose one of pop, itemknn, "
                "userknn, biasedmf, ease, ials"
            )
        entry.check_params(dict(cf_params or {}))
        self.cf_name, self.cf_params = cf, dict(cf_params or {})
        lm_params = dict(lm_params or {})
        clash = sorted(set(lm_params) & {"model", "variant", "device", "threads", "mode", "seed", "cache_dir"})
        if clash:
            raise ConfigError(f"{self.name}: pass {', '.join(clash)} directly, not inside lm_params")
        self.lm_kwargs = {
            "model": model,
            "variant": variant,
            "device": device,
            "threads": threads,
            "mode": mode,
            "seed": seed,
            "cache_dir": cache_dir,
            **lm_params,
        }
        registry.get("llm-two-tower").check_params(self.lm_kwargs)
        self.model, self.variant, self.device, self.threads, self.mode = model, variant, device, threads, mode
        self.mix = check_choice("mix", mix, MIXES, self.name)
        self.cold_share = check_fraction("cold_share", cold_share, self.name)
        self.seed = int(seed)
        self.stats: dict[str, Any] = {}
        self.cf: ScoringRecommender | None = None
        self.lm: TwoTower | None = None
        self.encoder = None
        self.warm_: np.ndarray | None = None  # (n_items,) bool: items with at least one training interaction

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, train: TrainSet) -> Hybrid:
        from bench.recommenders import registry
        from bench.recommenders.llm.two_tower import TwoTower

        self._remember_seen(train)
        self.warm_ = np.bincount(train.interactions.items, minlength=train.n_items)[: train.n_items] > 0
        watch = Stopwatch()
        cf = registry.get(self.cf_name).build(**self.cf_params).fit(train)
        if not isinstance(cf, ScoringRecommender):  # every classic recommender is: the mix needs all its scores
            raise ConfigError(
                f"{self.name}: cf={self.cf_name!r} does not score every item: choose one of pop, "
                "itemknn, userknn, biasedmf, ease, ials"
            )
        self.cf = cf
        cf_fit_s = watch()
        watch = Stopwatch()
        self.lm = TwoTower(**self.lm_kwargs).fit(train)
        lm_fit_s = watch()
        self.encoder = self.lm.encoder
        self.stats = {k: self.lm.stats[k] for k in _LM_STATS if k in self.lm.stats}
        self.stats.update(
            {
                "cf": self.cf_name,
                "mix": self.mix,
                "cf_fit_s": cf_fit_s,
                "lm_fit_s": lm_fit_s,
                "n_cold_items_at_fit": int((~self.warm_).sum()),
            }
        )
        if self.mix == "slots":
            self.stats["cold_share"] = self.cold_share
        return self

    # ------------------------------------------------------------------------------------ per request
    def _fitted(self) -> tuple[ScoringRecommender, TwoTower, np.ndarray]:
        """(CF model, language model, warm-item mask), or the error saying fit comes first."""
        if self.cf is None or self.lm is None or self.warm_ is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train) first")
        return self.cf, self.lm, self.warm_

    def _scores(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cf, lm, _ = self._fitted()
        users = np.asarray(users, dtype=np.int64)
        return (np.asarray(cf.score(users), dtype=np.float32), np.asarray(lm.score(users), dtype=np.float32))

    def _quantile_mix(self, users: np.ndarray, seen: sp.csr_matrix | None) -> np.ndarray:
        """CF for warm items, the language model mapped onto CF's scale for cold ones; excluded (seen) items
        are moved below every other score first, so only the candidates set the mapping."""
        cf, lm = self._scores(users)
        if seen is not None:
            rows = seen[np.asarray(users, dtype=np.int64)]
            r, c = rows.nonzero()
            cf[r, c] = cf.min() - 1.0
            lm[r, c] = lm.min() - 1.0
        return quantile_map(lm, cf, self._fitted()[2])

    def score(self, users: np.ndarray) -> np.ndarray:
        """The quantile mix with the items seen in fit as the exclusion (they stay scored, lowest)."""
        return self._quantile_mix(users, self._seen)

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> TopK:
        users = np.asarray(users, dtype=np.int64)
        check_k(k, self.n_items)
        seen = self._seen if exclude is None else exclude
        if self.mix == "quantile":
            scores = self._quantile_mix(users, seen)
            mask_seen(scores, seen, users)
            return top_k(users, scores, k)
        cf, lm = self._scores(users)
        warm = self._fitted()[2]
        mask_seen(cf, seen, users)
        mask_seen(lm, seen, users)
        cf[:, ~warm] = -np.inf
        lm[:, warm] = -np.inf
        slots = slot_positions(k, self.cold_share)
        n_cold = min(int(slots.sum()), int((~warm).sum()))
        n_warm = k - n_cold
        if not n_warm:  # k >= 1, so n_cold = k: the language model's cold items alone
            return top_k(users, lm, n_cold)
        warm_top = top_k(users, cf, n_warm)
        if not n_cold:
            return warm_top
        cold_top = top_k(users, lm, n_cold)
        cold_pos = np.flatnonzero(slots)[:n_cold]
        warm_pos = np.setdiff1d(np.arange(k), cold_pos)
        items = np.empty((len(users), k), dtype=np.int64)
        items[:, warm_pos], items[:, cold_pos] = warm_top.items, cold_top.items
        # the two lists' scores are on different scales: report the list order as the score (k, k-1, ...)
        scores = np.broadcast_to(np.arange(k, 0, -1, dtype=np.float32), items.shape).copy()
        return TopK(users=users, items=items, scores=scores)

    def request_work(self, users: np.ndarray) -> RequestWork:
        """The language model's work (user tower + item product), with CF's scoring as the other model's work."""
        cf, lm, _ = self._fitted()
        work = lm.request_work(users)
        return RequestWork(
            n_requests=work.n_requests,
            encoder_config=work.encoder_config,
            token_counts=work.token_counts,
            scoring_macs=work.scoring_macs,
            kind=work.kind,
            notes={**work.notes, "cf": self.cf_name},
            other=cf.request_work(np.asarray(users, dtype=np.int64)),
        )

    def footprint(self) -> int:
        if self.lm is None:
            return 0
        cf, lm, warm = self._fitted()
        return int(cf.footprint()) + int(lm.footprint()) + int(warm.nbytes)

    def __repr__(self) -> str:
        return f"Hybrid(cf={self.cf_name!r}, variant={self.variant!r}, mode={self.mode!r}, mix={self.mix!r})"
