"""Quality study of the language-model recommenders on a real dataset, outside the runner.

    .venv/bin/python scripts/llm_study.py two-tower [--modes zero-shot projection finetune] [--dim 64]
    .venv/bin/python scripts/llm_study.py pairwise [--pairs-users 1 --pairs-items 100]
    .venv/bin/python scripts/llm_study.py rerank [--users 100] [--ns 20 50 100]

Prints one JSON object per line: the figures behind the LLM issue's acceptance items (trained vs zero-shot
two-tower, pairwise RMSE/MAE per head and naive/cached agreement and cost ratio, rerank by N against its
retriever). Quality is full ranking with train and valid items excluded (bench.quality). Timings here
are single wall-clock readings for orientation (labelled); the runner's loads are the measured figures.

A study tool, not part of the package: it uses the package (`pip install -e .` or the .venv of `./dev setup`)
and the package never imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import Split, TrainSet
from bench.measure.flops import work_flops
from bench.quality import evaluate_ranking, evaluate_rating, part_and_exclusion
from bench.recommenders.base import Recommender, TopK
from bench.recommenders.llm.pairwise import Pairwise
from bench.recommenders.llm.rerank import Rerank
from bench.recommenders.llm.two_tower import TwoTower


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, default=lambda o: o.item() if hasattr(o, "item") else str(o)), flush=True)


def _quality(rec: Recommender, split: Split, users: np.ndarray | None = None) -> dict[str, float]:
    q = evaluate_ranking(rec, split, (10,), part="test", users=users)
    return {k: round(float(q[k]), 4) for k in ("ndcg@10", "recall@10", "hit@10")} | {
        "evaluated_users": int(q["evaluated_users"])
    }


def _load(args: argparse.Namespace) -> Split:
    from bench.data import load_dataset
    from bench.data.splits import make_split

    dataset = load_dataset(args.dataset, data_dir=args.data_dir, progress=False)
    return make_split(dataset, args.split, seed=args.seed)


def _numeric_stats(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(v, 4) if isinstance(v, float) else v)
        for k, v in stats.items()
        if isinstance(v, (int, float, str, dict)) and not isinstance(v, bool)
    }


def study_two_tower(args: argparse.Namespace, split: Split) -> None:
    train = split.train_set()
    for mode in args.modes:
        t0 = time.perf_counter()
        rec = TwoTower(
            model=args.model,
            variant=args.variant,
            threads=args.threads,
            mode=mode,
            dim=args.dim,
            seed=args.seed,
            train_budget_s=args.train_budget_s,
            cache_dir=args.cache_dir,
        ).fit(train)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        quality = _quality(rec, split)
        _emit(
            {
                "recommender": "llm-two-tower",
                "mode": mode,
                "dim": args.dim,
                "variant": args.variant,
                **quality,
                "fit_s_wall": round(fit_s, 2),
                "eval_s_wall": round(time.perf_counter() - t0, 2),
                "stats": _numeric_stats(rec.stats),
            }
        )


def study_pairwise(args: argparse.Namespace, split: Split) -> None:
    train = split.train_set()
    rng = np.random.default_rng(args.seed)
    for head in args.heads:
        t0 = time.perf_counter()
        rec = Pairwise(
            model=args.model,
            variant=args.variant,
            threads=args.threads,
            head=head,
            seed=args.seed,
            cache_dir=args.cache_dir,
        ).fit(train)
        fit_s = time.perf_counter() - t0
        rating = evaluate_rating(rec, split)
        ranking = _quality(rec, split)
        test_users = split.test_users()
        scores = rec.score(test_users[:50]).astype(np.float64)
        # concat head: score(u, i) = c(u) + d(i), so s_u - s_0 is constant over items (up to float32 rounding)
        shift = scores - scores[0]
        additive_gap = float(np.abs(shift - shift.mean(axis=1, keepdims=True)).max())
        top10 = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        same_top10 = float(np.mean(np.all(top10 == top10[0], axis=1)))
        # naive vs cached on the same pairs: agreement, and one wall-clock reading of each
        users = np.repeat(rng.choice(test_users, size=args.pairs_users, replace=False), args.pairs_items)
        items = rng.choice(split.n_items, size=users.size)
        agreement = rec.execution_agreement(users, items)
        timings = {}
        for execution in ("cached", "naive"):
            rec.score_pairs(users[:2], items[:2], execution)  # warm
            t0 = time.perf_counter()
            rec.score_pairs(users, items, execution)
            timings[execution] = time.perf_counter() - t0
        one = test_users[:1]
        analytic = {e: rec.request_work(one, e) for e in ("cached", "naive")}
        flops = {e: work_flops(w) for e, w in analytic.items()}
        _emit(
            {
                "recommender": "llm-pairwise",
                "head": head,
                "variant": args.variant,
                "rmse": round(rating["rmse"], 4),
                "mae": round(rating["mae"], 4),
                "evaluated_ratings": rating["evaluated_ratings"],
                **ranking,
                "max_deviation_from_additive_over_50_users": additive_gap,
                "share_of_50_users_with_user0s_top10_unmasked": round(same_top10, 3),
                "naive_vs_cached": {
                    **agreement,
                    "pairs_users": args.pairs_users,
                    "naive_s_wall": round(timings["naive"], 3),
                    "cached_s_wall": round(timings["cached"], 4),
                    "cost_ratio_wall": round(timings["naive"] / max(timings["cached"], 1e-9), 1),
                    "full_catalogue_flops_ratio_analytic": round(flops["naive"] / flops["cached"], 1),
                },
                "fit_s_wall": round(fit_s, 2),
                "stats": _numeric_stats(rec.stats),
            }
        )


class _Lists(Recommender):
    """Precomputed top lists for a fixed set of users (so one cross-encoder pass serves several N)."""

    name = "lists"

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        super().__init__()
        self._row = {int(u): j for j, u in enumerate(users.tolist())}
        self._items = items

    def fit(self, train: TrainSet) -> _Lists:
        self._remember_seen(train)
        return self

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> TopK:
        rows = np.array([self._row[int(u)] for u in users])
        items = self._items[rows, :k]
        return TopK(np.asarray(users), items, -np.tile(np.arange(k, dtype=np.float32), (len(users), 1)))

    def footprint(self) -> int:
        return 0


def study_rerank(args: argparse.Namespace, split: Split) -> None:
    train = split.train_set()
    rng = np.random.default_rng(args.seed)
    users = np.sort(rng.choice(split.test_users(), size=min(args.users, len(split.test_users())), replace=False))
    _, exclude = part_and_exclusion(split, "test")
    depth = max(args.ns)
    for blend in args.blends:
        t0 = time.perf_counter()
        rec = Rerank(
            model=args.model,
            variant=args.variant,
            threads=args.threads,
            n_candidates=depth,
            blend=blend,
            seed=args.seed,
            cache_dir=args.cache_dir,
        ).fit(train)
        fit_s = time.perf_counter() - t0
        if min(args.ns) < rec.train_candidates:
            raise SystemExit(f"--ns must all be >= train_candidates ({rec.train_candidates}) to share one pass")
        top = rec.candidates(users, depth, exclude)
        cand = top.items
        retr = _Lists(users, cand).fit(train)
        base = _quality(retr, split, users)
        t0 = time.perf_counter()
        scores = rec.rerank_scores(users, cand, top.scores)
        pair_s = (time.perf_counter() - t0) / (len(users) * depth)
        for n in args.ns:
            # the retriever features are standardised on the first train_candidates entries, so for every
            # N >= train_candidates the first N scores of one depth-max pass are exactly N's scores
            order = np.argsort(-scores[:, :n], axis=1, kind="stable")
            lists = np.concatenate([np.take_along_axis(cand[:, :n], order, axis=1), cand[:, n:]], axis=1)
            quality = _quality(_Lists(users, lists).fit(train), split, users)
            _emit(
                {
                    "recommender": "llm-rerank",
                    "retriever": rec.retriever_name,
                    "n_candidates": n,
                    "blend": blend,
                    "variant": args.variant,
                    **quality,
                    "retriever_alone": base,
                    "user_sample": f"{len(users)} test users (seed {args.seed})",
                    "cross_encoder_s_per_pair_wall": round(pair_s, 5),
                    "est_cross_encoder_s_per_request_wall": round(pair_s * n, 3),
                    "fit_s_wall": round(fit_s, 2),
                    "stats": _numeric_stats(rec.stats),
                }
            )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/llm_study.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", choices=("two-tower", "pairwise", "rerank"))
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--split", default="random-8-1-1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--variant", default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--modes", nargs="+", default=["zero-shot", "projection", "finetune"])
    parser.add_argument("--dim", type=int, default=None)
    parser.add_argument("--train-budget-s", type=float, default=120.0)
    parser.add_argument("--heads", nargs="+", default=["concat", "interaction"])
    parser.add_argument("--pairs-users", type=int, default=1)
    parser.add_argument("--pairs-items", type=int, default=100)
    parser.add_argument("--users", type=int, default=100, help="rerank: test users sampled (seeded)")
    parser.add_argument("--ns", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--blends", nargs="+", default=["learned"])
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where exported/distilled models are cached (default: recbench's cache directory)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    split = _load(args)
    {"two-tower": study_two_tower, "pairwise": study_pairwise, "rerank": study_rerank}[args.which](args, split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
