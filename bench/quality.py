"""Ranking and rating quality: full ranking over the whole catalogue, never sampled candidates.

Protocol (DESIGN.md, RecBole's full-ranking evaluation): for the test part every item the user has in
train *or* valid is excluded from the ranking; for the valid part, train items are excluded. Only users
with at least one item in the evaluated part count; each metric is the mean over those users.

Definitions (binary relevance; `hits[u, j]` is True when user u's j-th recommendation is relevant):
- recall@K    = hits in top K / |relevant|                  (RecBole's Recall)
- precision@K = hits in top K / K
- hit@K       = 1 if any hit in top K else 0
- mrr@K       = 1 / rank of the first hit in top K (0 if none)
- ndcg@K      = DCG / IDCG, DCG = sum_j hits[j] / log2(j + 2), IDCG over min(|relevant|, K) hits (RecBole's NDCG)
- coverage@K  = distinct items in anyone's top K / catalogue size (item coverage)
- avgpop@K    = mean over users of the mean train interaction count of their top-K items

Cold items (a split that holds items out entirely, e.g. `cold-items`; pass `cold_items` to evaluate_ranking):
- cold_recall@K, cold_ndcg@K, cold_hit@K: the metrics above with relevance restricted to the user's cold
  items; mean over the users who have at least one cold item in the part (`evaluated_cold_users`)
- cold_share@K = mean over all evaluated users of the share of their top K that is cold (what a model spends
  on new items; classic CF, which never saw them, puts ~0 there)
- warm_recall@K, warm_ndcg@K, warm_hit@K (evaluate_warm): the valid part, whose items are all warm under
  `cold-items`, so a model's cold-item gains can be set against what it keeps on items with history

The metric functions below are pure (arrays in, arrays out) so each can be checked by hand.
This module measures quality only; it knows nothing of timing or reports.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import Interactions, Split
from bench.errors import ConfigError
from bench.recommenders.base import Recommender, check_k

PARTS = ("test", "valid")
RANKING_METRICS = ("recall", "ndcg", "hit", "mrr", "precision", "coverage", "avgpop")
COLD_METRICS = ("cold_recall", "cold_ndcg", "cold_hit", "cold_share")
#: averaged over users with a cold item in the part (cold_share is over every evaluated user)
COLD_USER_METRICS = ("cold_recall", "cold_ndcg", "cold_hit")
#: the ranking metrics each user has a figure of (per_user_metrics), so cells can be compared on shared users
PER_USER_METRICS = ("recall", "ndcg", "hit", "mrr", "precision")
WARM_METRICS = ("recall", "ndcg", "hit")


# ---------------------------------------------------------------- pure metric functions


def relevance_matrix(relevant: sp.spmatrix | Sequence[Collection[int]], n_items: int | None = None) -> sp.csr_matrix:
    """Relevant items per row as a binary CSR; accepts a CSR already or one collection of item ids per row."""
    if sp.issparse(relevant):
        m = sp.csr_matrix(relevant, dtype=np.float32)
        m.sum_duplicates()
        return m
    rows = np.repeat(np.arange(len(relevant)), [len(r) for r in relevant])
    cols = np.fromiter((int(i) for r in relevant for i in r), dtype=np.int64, count=len(rows))
    width = n_items if n_items is not None else (int(cols.max()) + 1 if len(cols) else 1)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(relevant), width))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def hit_matrix(topk_items: np.ndarray, relevant: sp.spmatrix | Sequence[Collection[int]]) -> np.ndarray:
    """(n, K) bool: is row i's j-th recommended item in row i's relevant set?

    Vectorised over users and positions: each (row, item) pair becomes one integer key, looked up among
    the relevant keys with np.isin; no dense users x catalogue matrix is built.
    """
    topk_items = np.asarray(topk_items, dtype=np.int64)
    if topk_items.ndim != 2:
        raise ValueError(f"topk_items must be 2-D (users, K), got shape {topk_items.shape}")
    width = max(int(topk_items.max(initial=0)) + 1, 1)
    rel = relevance_matrix(relevant)
    if rel.shape[0] != topk_items.shape[0]:
        raise ValueError(f"{topk_items.shape[0]} ranked lists but {rel.shape[0]} relevant sets: pass one per user")
    stride = max(rel.shape[1], width)
    r, c = rel.nonzero()
    rel_keys = r.astype(np.int64) * stride + c
    rows = np.arange(topk_items.shape[0], dtype=np.int64)[:, None]
    return np.isin(rows * stride + topk_items, rel_keys)


def n_relevant(relevant: sp.spmatrix | Sequence[Collection[int]]) -> np.ndarray:
    """Size of each row's relevant set."""
    return np.diff(relevance_matrix(relevant).indptr).astype(np.int64)


def precision_at_k(hits: np.ndarray) -> np.ndarray:
    return hits.sum(axis=1) / hits.shape[1]


def recall_at_k(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """hits / |relevant| (0 for a row with no relevant item; evaluation never passes such rows)."""
    n_rel = np.asarray(n_rel, dtype=np.float64)
    out = np.zeros(len(n_rel))
    np.divide(hits.sum(axis=1), n_rel, out=out, where=n_rel > 0)
    return out


def hit_at_k(hits: np.ndarray) -> np.ndarray:
    return np.asarray(hits.any(axis=1), dtype=np.float64)


def mrr_at_k(hits: np.ndarray) -> np.ndarray:
    first = np.argmax(hits, axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


def ndcg_at_k(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """Binary-relevance NDCG with a log2(rank + 1) discount; ideal DCG over min(|relevant|, K) hits."""
    k = hits.shape[1]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits.astype(np.float64) @ discount
    ideal_cum = np.concatenate([[0.0], np.cumsum(discount)])  # ideal_cum[m] = IDCG with m relevant items
    idcg = ideal_cum[np.minimum(np.asarray(n_rel, dtype=np.int64), k)]
    return np.divide(dcg, idcg, out=np.zeros(len(dcg)), where=idcg > 0)


def per_user_metrics(hits: np.ndarray, n_rel: np.ndarray, ks: Iterable[int]) -> dict[str, np.ndarray]:
    """Each row's `recall@K, ndcg@K, hit@K, mrr@K, precision@K` for every K (each K <= hits.shape[1])."""
    out = {}
    for k in ks:
        h = hits[:, :k]
        out.update(
            {
                f"recall@{k}": recall_at_k(h, n_rel),
                f"ndcg@{k}": ndcg_at_k(h, n_rel),
                f"hit@{k}": hit_at_k(h),
                f"mrr@{k}": mrr_at_k(h),
                f"precision@{k}": precision_at_k(h),
            }
        )
    return out


def item_coverage(topk_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's list."""
    return float(np.unique(np.asarray(topk_items)).size / n_items)


def average_popularity(topk_items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Per user: mean popularity (train interaction count) of the recommended items."""
    return np.asarray(popularity, dtype=np.float64)[np.asarray(topk_items)].mean(axis=1)


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    err = np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)
    return float(np.sqrt(np.mean(err * err)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, np.float64) - np.asarray(actual, np.float64))))


# ---------------------------------------------------------------- evaluation over a split


def check_ks(ks: Iterable[int], n_items: int) -> tuple[int, ...]:
    """Distinct cut-offs, ascending; each 1 <= k <= catalogue size, else ConfigError."""
    try:
        values = sorted({int(k) for k in ks})
    except (TypeError, ValueError):
        raise ConfigError(f"cut-offs {ks!r} are not integers: pass ks like (10,) or (5, 10, 20)") from None
    if not values:
        raise ConfigError("no cut-off given: pass at least one k, e.g. ks=(10,)")
    for k in values:
        check_k(k, n_items)
    return tuple(values)


def part_and_exclusion(split: Split, part: str) -> tuple[Interactions, sp.csr_matrix]:
    """The interactions evaluated and the users x items matrix excluded from ranking for them."""
    if part == "test":
        seen = split.train.matrix(split.n_users, split.n_items) + split.valid.matrix(split.n_users, split.n_items)
        seen.data[:] = 1.0  # an item in both train and valid is excluded once
        return split.test, sp.csr_matrix(seen)
    if part == "valid":
        return split.valid, split.train.matrix(split.n_users, split.n_items)
    raise ConfigError(f"unknown evaluation part {part!r}: choose one of {', '.join(PARTS)}")


def cold_mask(cold_items: np.ndarray | Sequence[int], n_items: int) -> np.ndarray:
    """(n_items,) bool: True for the held-out (cold) items; ConfigError for ids outside the catalogue."""
    cold = np.asarray(cold_items, dtype=np.int64).ravel()
    if cold.size and (cold.min() < 0 or cold.max() >= n_items):
        raise ConfigError(
            f"cold item ids must lie in 0..{n_items - 1}, got {int(cold.min())}..{int(cold.max())}; "
            "pass the split's cold_items"
        )
    mask = np.zeros(n_items, dtype=bool)
    mask[cold] = True
    return mask


def metric_kind(name: str) -> str:
    """'cold_user' for cold metrics averaged over users with cold items, else 'user' (for sample counts)."""
    return "cold_user" if name.split("@")[0] in COLD_USER_METRICS else "user"


def evaluate_ranking(
    rec: Recommender,
    split: Split,
    ks: Iterable[int] = (10,),
    part: str = "test",
    users: np.ndarray | None = None,
    batch_size: int = 256,
    cold_items: np.ndarray | None = None,
) -> dict[str, float]:
    """Full-ranking metrics of a fitted recommender on one part of a split.

    Returns `recall@K, ndcg@K, hit@K, mrr@K, precision@K, coverage@K, avgpop@K` for each K and
    `evaluated_users`. `users` restricts the evaluation (users without items in the part are skipped).
    With `cold_items` (item ids held out of training), also `cold_recall@K, cold_ndcg@K, cold_hit@K,
    cold_share@K` and `evaluated_cold_users`, from the same ranked lists (see the module docstring).
    """
    return evaluate_ranking_per_user(rec, split, ks, part, users, batch_size, cold_items)[0]


def evaluate_ranking_per_user(
    rec: Recommender,
    split: Split,
    ks: Iterable[int] = (10,),
    part: str = "test",
    users: np.ndarray | None = None,
    batch_size: int = 256,
    cold_items: np.ndarray | None = None,
) -> tuple[dict[str, float], np.ndarray, np.ndarray, np.ndarray]:
    """`evaluate_ranking`'s figures, plus what each user's own figures follow from: the evaluated user ids
    (ascending), their (users, max K) hit matrix and their number of relevant items. `per_user_metrics` of
    the last two gives every user's recall/ndcg/hit/mrr/precision at each K; the figures above are their means.

    Kept so that two cells can be compared on the users they share, paired, instead of mean against mean.
    """
    ks = check_ks(ks, split.n_items)
    if batch_size <= 0:
        raise ConfigError(f"batch_size={batch_size} is invalid: use a positive integer")
    target, exclude = part_and_exclusion(split, part)
    relevant = target.matrix(split.n_users, split.n_items)
    rel_counts = np.diff(relevant.indptr)
    candidates = np.flatnonzero(rel_counts > 0)
    if users is not None:
        candidates = np.intersect1d(candidates, np.asarray(users, dtype=np.int64))
    if candidates.size == 0:
        raise ConfigError(
            f"no user to evaluate: none of the requested users has an interaction in the "
            f"{part} part; check the split or the user list"
        )
    k_max = ks[-1]
    popularity = np.bincount(split.train.items, minlength=split.n_items)
    sums = {f"{m}@{k}": 0.0 for k in ks for m in RANKING_METRICS if m != "coverage"}
    all_hits, all_n_rel = [], []
    covered = {k: np.zeros(split.n_items, dtype=bool) for k in ks}
    is_cold = cold_mask(cold_items, split.n_items) if cold_items is not None else None
    if is_cold is not None:
        # relevant is binary: its product with the cold indicator counts each user's cold relevant items
        cold_counts = np.rint(np.asarray(relevant @ is_cold.astype(np.float32)).ravel()).astype(np.int64)
        cold_sums = {f"{m}@{k}": 0.0 for k in ks for m in COLD_METRICS}
    for start in range(0, candidates.size, batch_size):
        batch = candidates[start : start + batch_size]
        top = rec.recommend(batch, k_max, exclude=exclude)
        items = np.asarray(top.items, dtype=np.int64)
        if items.shape != (batch.size, k_max):
            raise RuntimeError(
                f"{rec.name}.recommend returned lists of shape {items.shape}, expected "
                f"{(batch.size, k_max)}: a recommender must return k items per user"
            )
        hits = hit_matrix(items, relevant[batch])
        n_rel = rel_counts[batch]
        all_hits.append(hits)
        all_n_rel.append(n_rel)
        for name, values in per_user_metrics(hits, n_rel, ks).items():
            sums[name] += values.sum()
        for k in ks:
            sums[f"avgpop@{k}"] += average_popularity(items[:, :k], popularity).sum()
            covered[k][items[:, :k].ravel()] = True
        if is_cold is not None:
            _add_cold(cold_sums, hits & is_cold[items], is_cold[items], cold_counts[batch], ks)
    n = int(candidates.size)
    out: dict[str, float] = {}
    for k in ks:
        for m in RANKING_METRICS:
            key = f"{m}@{k}"
            out[key] = float(covered[k].sum() / split.n_items) if m == "coverage" else float(sums[key] / n)
    out["evaluated_users"] = n
    if is_cold is not None:
        n_cold = int((cold_counts[candidates] > 0).sum())
        for k in ks:
            out[f"cold_share@{k}"] = float(cold_sums[f"cold_share@{k}"] / n)
            if n_cold:  # a mean over no user is undefined: leave the figure out rather than report 0
                for m in COLD_USER_METRICS:
                    out[f"{m}@{k}"] = float(cold_sums[f"{m}@{k}"] / n_cold)
        out["evaluated_cold_users"] = n_cold
    return out, candidates, np.concatenate(all_hits), np.concatenate(all_n_rel).astype(np.int64)


def _add_cold(
    sums: dict[str, float], cold_hits: np.ndarray, cold_listed: np.ndarray, n_rel_cold: np.ndarray, ks: Sequence[int]
) -> None:
    """Accumulate one batch's cold-item sums. Rows without a cold relevant item add 0 to recall/ndcg/hit
    (no hit is possible), so summing every row and dividing by the cold users gives their mean."""
    for k in ks:
        h = cold_hits[:, :k]
        sums[f"cold_recall@{k}"] += recall_at_k(h, n_rel_cold).sum()
        sums[f"cold_ndcg@{k}"] += ndcg_at_k(h, n_rel_cold).sum()
        sums[f"cold_hit@{k}"] += hit_at_k(h).sum()
        sums[f"cold_share@{k}"] += cold_listed[:, :k].mean(axis=1).sum()


def evaluate_warm(
    rec: Recommender, split: Split, ks: Iterable[int] = (10,), users: np.ndarray | None = None, batch_size: int = 256
) -> dict[str, float]:
    """`warm_recall@K, warm_ndcg@K, warm_hit@K` and `evaluated_warm_users`: the valid part, train excluded.

    Under `cold-items` every valid interaction is on a warm item, so this is what a model keeps on items
    with history while it is judged on the cold ones in test. Nothing is tuned on it here.
    """
    if split.cold_items is None:
        raise ConfigError(
            f"warm-item quality needs a split that holds items out (cold-items); {split.protocol} has no cold items"
        )
    if len(split.valid) == 0:
        raise ConfigError("the valid part is empty: warm-item quality needs one; check the split")
    figures = evaluate_ranking(rec, split, ks=ks, part="valid", users=users, batch_size=batch_size)
    out = {f"warm_{key}": value for key, value in figures.items() if key.split("@")[0] in WARM_METRICS}
    out["evaluated_warm_users"] = figures["evaluated_users"]
    return out


def evaluate_rating(rec: Recommender, split: Split, part: str = "test", batch_size: int = 65536) -> dict[str, float]:
    """RMSE and MAE of `predict_rating` on every (user, item, rating) of the part (the rating track)."""
    if not getattr(rec, "predicts_ratings", False):
        raise ConfigError(
            f"{rec.name} does not predict ratings: the rating track (rmse, mae) needs a rating model such as biasedmf"
        )
    target, _ = part_and_exclusion(split, part)
    if len(target) == 0:
        raise ConfigError(f"the {part} part has no ratings to evaluate: check the split")
    pred = np.concatenate(
        [
            np.asarray(
                rec.predict_rating(target.users[s : s + batch_size], target.items[s : s + batch_size]), dtype=np.float64
            ).ravel()
            for s in range(0, len(target), batch_size)
        ]
    )
    return {"rmse": rmse(pred, target.ratings), "mae": mae(pred, target.ratings), "evaluated_ratings": len(target)}
