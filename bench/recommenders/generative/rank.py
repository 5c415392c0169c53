"""llm-decoder-rank: a classic retriever proposes N candidates, a decoder LLM ranks them (cost-only).

Three modes, the ways decoder rankers are deployed (LLMRank, LlamaRec, HSTU's M-FALCON):
- `pointwise`: one prompt per (user, candidate): the user's history, then the candidate; the score is the
  log-probability of the answer token " Yes" after it. N full prompts per request (naive);
- `shared-prefix`: the same scores, the history prefix prefilled ONCE and its KV cache reused for every
  candidate suffix, the suffixes batched over the one cached prefix: one prefill of the history + one pass over
  N short suffixes;
- `listwise`: one prompt with the history and all N numbered candidates; the decoder generates a ranked list of
  `list_k` numbers, greedy, a fixed number of tokens (what a k-number answer takes in the tokenizer), since
  random weights would stop at an end token only by chance. The generated ids are read as candidate numbers
  (id mod N), the retriever's order filling what they leave out.

Architectures come from public configs with random weights (bench.recommenders.generative.archs), so the cost
is real and the ranking meaningless: the cell reports cost, never quality. Prompts are real (ML-100K TRAIN
history titles and the retriever's candidate titles) and tokenised with o200k_base (real BPE lengths); the model
reads those ids modulo its vocabulary size.

`extra_measurements` times what a load cannot see from outside (prefill, first output, time per output token),
and, for the scoring modes, runs pointwise and shared-prefix on the same fixed (user, candidate) pairs: their
scores must agree (max |Δ| <= 1e-4 in fp32) and the ratio of their times is recorded.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.errors import ConfigError
from bench.recommenders.base import PER_REQUEST, Recommender, TopK, check_k
from bench.recommenders.generative.engine import VARIANTS, DecoderEngine, Marks
from bench.recommenders.generative.prompts import TOKENIZER, PromptBook, model_ids
from bench.recommenders.llm.common import Stopwatch, check_choice, check_positive, check_retriever, require
from bench.variants.registry import BF16, FP32, INT8
from bench.work import DecoderPasses, RequestWork

MODES = ("pointwise", "shared-prefix", "listwise")
SCORING_MODES = ("pointwise", "shared-prefix")
AGREEMENT_TOLERANCE = 1e-4
DEFAULT_MODEL = "qwen2.5-0.5b"


class _Fitted(NamedTuple):
    """What fit builds, each part known to be there."""

    engine: DecoderEngine
    retriever: Recommender
    book: PromptBook


class DecoderRank(Recommender):
    name = "llm-decoder-rank"
    #: each request's candidates and prompts are built to describe its work: a seeded sample of users suffices
    work_sample_users = 50
    run_context_params = ("variant", "device", "threads", "seed")

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        mode: str = "shared-prefix",
        n_candidates: int = 50,
        retriever: str = "ease",
        retriever_params: dict[str, Any] | None = None,
        variant: str = FP32,
        device: str = "cpu",
        threads: int | None = None,
        history_len: int = 10,
        list_k: int = 10,
        batch_size: int = 128,
        timed_requests: int = 3,
        warmup_requests: int = 0,
        compare_users: int = 1,
        compare_candidates: int | None = None,
        compare_rounds: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self._params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.model = str(model)
        self.mode = check_choice("mode", mode, MODES, self.name)
        self.n_candidates = check_positive("n_candidates", n_candidates, self.name, integer=True)
        self.retriever_name = check_retriever(retriever, self.name)
        self.retriever_params = dict(retriever_params or {})
        self.variant = check_choice("variant", variant, VARIANTS, self.name)
        if device != "cpu":
            raise ConfigError(f"{self.name}: device {device!r} is not supported yet: the decoder ranker runs on cpu")
        self.threads = threads
        self.history_len = check_positive("history_len", history_len, self.name, integer=True)
        self.list_k = check_positive("list_k", list_k, self.name, integer=True)
        self.batch_size = check_positive("batch_size", batch_size, self.name, integer=True)
        self.timed_requests = check_positive("timed_requests", timed_requests, self.name, integer=True)
        self.warmup_requests = _non_negative("warmup_requests", warmup_requests, self.name)
        self.compare_users = _non_negative("compare_users", compare_users, self.name)
        self.compare_candidates = (
            self.n_candidates
            if compare_candidates is None
            else _non_negative("compare_candidates", compare_candidates, self.name)
        )
        self.compare_rounds = check_positive("compare_rounds", compare_rounds, self.name, integer=True)
        self.seed = int(seed)
        self.stats: dict[str, Any] = {}
        self.engine: DecoderEngine | None = None
        self.retriever: Recommender | None = None
        self.book: PromptBook | None = None
        self._new_tokens = 0

    @property
    def cost_only(self) -> bool:
        """Random decoder weights: the runner reports cost, never quality."""
        return bool(self.engine is not None and self.engine.cost_only)

    def get_params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def extras(self) -> dict[str, Any]:
        """What the cell records about this model beside its figures."""
        if self.engine is None:
            return {}
        keys = ("model_name", "model_family", "mode", "tokenizer", "token_ids", "architecture", "decoder_notes")
        return {"decoder": {k: self.stats[k] for k in keys}}

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, train: TrainSet) -> DecoderRank:
        from bench.recommenders import registry

        self._remember_seen(train)
        if self.n_candidates > train.n_items:
            raise ConfigError(
                f"{self.name}: n_candidates={self.n_candidates} exceeds the catalogue's "
                f"{train.n_items} items; choose n_candidates <= {train.n_items}"
            )
        watch = Stopwatch()
        self.retriever = registry.get(self.retriever_name).build(**self.retriever_params).fit(train)
        retriever_fit_s = watch()
        watch = Stopwatch()
        self.book = PromptBook.build(train.interactions, train.item_text, train.n_users, self.history_len)
        prompts_s = watch()
        self.engine = DecoderEngine(self.model, self.variant, self.threads, self.seed)
        self._new_tokens = self.book.answer_list_tokens(self.list_k) if self.mode == "listwise" else 0
        arch = self.engine.arch
        self.stats = {
            "retriever": self.retriever_name,
            "retriever_fit_s": retriever_fit_s,
            "prompt_book_s": prompts_s,
            "decoder_build_s": self.engine.build_s,
            "quantise_s": self.engine.quantise_s,
            "model_name": arch.name,
            "model_family": arch.family,
            "n_parameters": arch.n_parameters(),
            "n_candidates": self.n_candidates,
            "mode": self.mode,
            "tokenizer": TOKENIZER,
            "cost_only": self.cost_only,
            "architecture": arch.to_dict(),
            "token_ids": f"{TOKENIZER} ids modulo the model's vocabulary ({arch.vocab})",
            "decoder_notes": dict(self.engine.notes),
        }
        return self

    # ------------------------------------------------------------------------------------ per request
    def _check_fitted(self) -> _Fitted:
        """The decoder, retriever and prompt book fit built, or the error saying fit comes first."""
        if self.engine is None or self.retriever is None or self.book is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train) first")
        return _Fitted(self.engine, self.retriever, self.book)

    def candidates(self, users: np.ndarray, exclude: sp.csr_matrix | None = None) -> np.ndarray:
        """(len(users), N) the retriever's top N per user, best first."""
        retriever = self._check_fitted().retriever
        return retriever.recommend(np.asarray(users, dtype=np.int64), self.n_candidates, exclude=exclude).items

    def _prefix(self, user: int) -> np.ndarray:
        fit = self._check_fitted()
        return model_ids(fit.book.prefix_ids(user), fit.engine.vocab)

    def _suffixes(self, items: np.ndarray) -> list[np.ndarray]:
        fit = self._check_fitted()
        return [model_ids(fit.book.suffix_ids(int(i)), fit.engine.vocab) for i in items]

    def _answer(self) -> int:
        fit = self._check_fitted()
        return int(model_ids(np.array([fit.book.answer_id]), fit.engine.vocab)[0])

    def score(self, user: int, items: np.ndarray, mode: str, marks: Marks | None = None) -> np.ndarray:
        """Scores of `items` for `user` under a scoring mode (log P(answer | prompt))."""
        engine = self._check_fitted().engine
        prefix, suffixes = self._prefix(user), self._suffixes(items)
        engine.check_length(prefix.size + max(s.size for s in suffixes), "a pointwise prompt")
        if mode == "pointwise":
            scores = engine.score_pointwise(prefix, suffixes, self._answer(), self.batch_size)
            if marks is not None:
                marks.prefill_done_ns = time.perf_counter_ns()
            return scores
        return engine.score_shared_prefix(prefix, suffixes, self._answer(), self.batch_size, marks)

    def _listwise(self, user: int, items: np.ndarray, k: int, marks: Marks | None = None) -> np.ndarray:
        """The ranked candidate order: generated ids read as candidate numbers, then the retriever's order."""
        fit = self._check_fitted()
        prompt = model_ids(fit.book.listwise_ids(user, items.tolist(), self.list_k), fit.engine.vocab)
        fit.engine.check_length(prompt.size + self._new_tokens, "the listwise prompt")
        generated = fit.engine.generate(prompt, self._new_tokens, marks)
        picked = list(dict.fromkeys((generated % len(items)).tolist()))
        rest = [j for j in range(len(items)) if j not in set(picked)]
        return np.asarray(picked + rest, dtype=np.int64)

    def _rank_one(
        self, user: int, items: np.ndarray, k: int, marks: Marks | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == "listwise":
            order = self._listwise(user, items, k, marks)[:k]
            return items[order], -np.arange(order.size, dtype=np.float32)
        scores = self.score(user, items, self.mode, marks)
        order = np.argsort(-scores, kind="stable")[:k]
        return items[order], scores[order].astype(np.float32)

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> TopK:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        check_k(k, self.n_items)
        if k > self.n_candidates:
            raise ConfigError(f"{self.name}: k={k} exceeds n_candidates={self.n_candidates}; rank more candidates")
        cands = self.candidates(users, exclude)
        items = np.empty((users.size, k), dtype=np.int64)
        scores = np.empty((users.size, k), dtype=np.float32)
        for j, u in enumerate(users.tolist()):
            items[j], scores[j] = self._rank_one(u, cands[j], k)
        return TopK(users=users, items=items, scores=scores)

    # ------------------------------------------------------------------------------------ the work, analytic
    def _passes(self, user: int, items: np.ndarray, mode: str) -> np.ndarray:
        """(n_passes, 3): new tokens, tokens already cached, positions with logits (the LM head's work)."""
        book = self._check_fitted().book
        if mode == "listwise":
            prompt = book.listwise_ids(user, items.tolist(), self.list_k).size
            g = self._new_tokens
            decode = np.stack([np.ones(g - 1), prompt + np.arange(g - 1), np.ones(g - 1)], axis=1)
            return np.vstack([[prompt, 0, 1], decode])
        p = book.prefix_ids(user).size
        s = np.array([book.suffix_ids(int(i)).size for i in items], dtype=np.float64)
        if mode == "pointwise":
            return np.stack([p + s, np.zeros_like(s), np.ones_like(s)], axis=1)
        return np.vstack([[p, 0, 0], np.stack([s, np.full_like(s, p), np.ones_like(s)], axis=1)])

    def decoder_work(self, users: np.ndarray, mode: str | None = None) -> dict[str, Any]:
        """The decoder passes these users' requests make under `mode` (default: this model's own)."""
        engine = self._check_fitted().engine
        users = np.asarray(users, dtype=np.int64)
        cands = self.candidates(users)
        passes = np.vstack([self._passes(u, cands[j], mode or self.mode) for j, u in enumerate(users.tolist())])
        return {"config": engine.arch.flops_config(), "passes": passes, "n_requests": int(users.size)}

    def request_work(self, users: np.ndarray) -> RequestWork:
        """The decoder passes of these users' requests, plus the retriever's scoring (bench.measure.flops counts)."""
        work = self.decoder_work(users)
        return RequestWork(
            n_requests=work["n_requests"],
            kind="decoder",
            decoder=DecoderPasses(work["config"], np.asarray(work["passes"], dtype=np.float64)),
            other=self._check_fitted().retriever.request_work(np.asarray(users, dtype=np.int64)),
        )

    def _request_shape(self, user: int, items: np.ndarray) -> dict[str, float]:
        """Token figures of one request: what the decoder processes, and what a hosted API would bill."""
        book = self._check_fitted().book
        if self.mode == "listwise":
            prompt = float(book.listwise_ids(user, items.tolist(), self.list_k).size)
            return {
                "prompt": prompt,
                "output": float(self._new_tokens),
                "kv_tokens": prompt + self._new_tokens,
                "api_calls": 1.0,
                "api_input": prompt,
                "api_prefix": 0.0,
                "api_output": float(self._new_tokens),
            }
        p = float(book.prefix_ids(user).size)
        s = np.array([book.suffix_ids(int(i)).size for i in items], dtype=np.float64)
        n = float(s.size)
        processed = float((p + s).sum()) if self.mode == "pointwise" else p + float(s.sum())
        return {
            "prompt": processed,
            "output": 0.0,
            "kv_tokens": processed,
            "api_calls": n,
            "api_input": float((p + s).sum()),
            "api_prefix": p,
            "api_output": n,
        }

    # ------------------------------------------------------------------------------------ own timings
    def _timed_request(self, user: int, k: int, exclude) -> tuple[int, int, Marks, np.ndarray]:
        marks = Marks()
        t0 = time.perf_counter_ns()
        items = self.candidates(np.array([user]), exclude)[0]
        t_decoder = time.perf_counter_ns()
        self._rank_one(user, items, k, marks)
        marks.end_ns = time.perf_counter_ns()
        return t0, t_decoder, marks, items

    def extra_measurements(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> list[dict]:
        """Per-request phases one request at a time (single-stream), the request's token shape, and (scoring
        modes) pointwise against shared-prefix on the same fixed pairs."""
        engine = self._check_fitted().engine
        users = np.asarray(users, dtype=np.int64)
        require(users.size > 0, f"{self.name}: no users to time requests for")
        for i in range(self.warmup_requests):
            self._timed_request(int(users[i % users.size]), k, exclude)
        request_ms, first_ms, prefill_ms, after_ms, tpot_ms, shapes = [], [], [], [], [], []
        prefill_rates, decode_rates = [], []
        for i in range(self.timed_requests):
            user = int(users[i % users.size])
            t0, t_dec, marks, items = self._timed_request(user, k, exclude)
            shape = self._request_shape(user, items)
            shapes.append(shape)
            request_ms.append((marks.end_ns - t0) / 1e6)
            prefill = (marks.prefill_done_ns - t_dec) / 1e6
            prefill_ms.append(prefill)
            after_ms.append((marks.end_ns - marks.prefill_done_ns) / 1e6)
            if self.mode == "listwise":
                first_ms.append((marks.prefill_done_ns - t0) / 1e6)
                prefill_rates.append(shape["prompt"] / (prefill / 1e3))
                if self._new_tokens > 1:
                    decode = (marks.end_ns - marks.prefill_done_ns) / 1e6
                    tpot_ms.append(decode / (self._new_tokens - 1))
                    decode_rates.append((self._new_tokens - 1) / (decode / 1e3))
            else:
                # scores come out of the last pass: the first output is the whole request
                first_ms.append((marks.end_ns - t0) / 1e6)
                prefill_rates.append(shape["prompt"] / ((marks.end_ns - t_dec) / 1e9))
        n = len(request_ms)
        mean = {key: float(np.mean([s[key] for s in shapes])) for key in shapes[0]}
        per_token = engine.arch.kv_bytes_per_token(self.variant)
        rows: list[dict] = [
            {"metric": "decoder_request", "samples_ms": request_ms, "load": PER_REQUEST},
            {"metric": "ttft", "samples_ms": first_ms, "load": PER_REQUEST},
            {"metric": "prefill", "samples_ms": prefill_ms, "load": PER_REQUEST},
            {
                "metric": "prompt_tokens_per_rec",
                "value": mean["prompt"],
                "unit": "tokens",
                "n": n,
                "flag": f"tokens the decoder prefills per recommendation ({self.mode}), counted with {TOKENIZER}",
            },
            {
                "metric": "output_tokens_per_rec",
                "value": mean["output"],
                "unit": "tokens",
                "n": n,
                "flag": "generated tokens per recommendation"
                if self.mode == "listwise"
                else f"none generated: one answer-token log-probability read per candidate ({self.n_candidates})",
            },
            {
                "metric": "prefill_tokens_per_s",
                "value": float(np.median(prefill_rates)),
                "unit": "tokens/s",
                "load": PER_REQUEST,
                "n": n,
                "flag": "median over requests: prompt tokens / prefill time",
            },
            {
                "metric": "kv_cache_bytes_per_rec",
                "value": mean["kv_tokens"] * per_token,
                "unit": "bytes",
                "n": n,
                "label": "estimated",
                "flag": self._kv_flag(per_token),
            },
            {
                "metric": "api_calls_per_rec",
                "value": mean["api_calls"],
                "unit": "calls",
                "n": n,
                "flag": "the same request sent to a hosted API",
            },
            {
                "metric": "api_input_tokens_per_rec",
                "value": mean["api_input"],
                "unit": "tokens",
                "n": n,
                "flag": f"every call's whole prompt, {TOKENIZER}",
            },
            {
                "metric": "api_prefix_tokens_per_call",
                "value": mean["api_prefix"],
                "unit": "tokens",
                "n": n,
                "flag": "the part of each call's prompt shared with the others (cacheable by a provider)",
            },
            {
                "metric": "api_output_tokens_per_rec",
                "value": mean["api_output"],
                "unit": "tokens",
                "n": n,
                "flag": "one answer token per call" if self.mode != "listwise" else "the k-number list",
            },
        ]
        after = {"shared-prefix": "suffix_pass", "listwise": "decode"}.get(self.mode)
        if after:  # the phase after the prefill: the suffixes over the cached prefix, or the generated tokens
            rows.append({"metric": after, "samples_ms": after_ms, "load": PER_REQUEST})
        if tpot_ms:
            rows += [
                {
                    "metric": "time_per_output_token",
                    "samples_ms": tpot_ms,
                    "load": PER_REQUEST,
                    "unit_of_work": "tokens",
                },
                {
                    "metric": "decode_tokens_per_s",
                    "value": float(np.median(decode_rates)),
                    "unit": "tokens/s",
                    "load": PER_REQUEST,
                    "n": n,
                    "flag": "median over requests: decode steps / decode time",
                },
            ]
        if self.mode in SCORING_MODES and self.compare_users and self.compare_candidates:
            rows += self._compare(users, exclude)
        return rows

    def _kv_flag(self, per_token: int) -> str:
        what = {
            "pointwise": "N prompts, each with its own copy of the history",
            "shared-prefix": "the history once plus N suffixes (logical; this run's batched pass holds an "
            "expanded copy of the prefix per row while it runs)",
            "listwise": "one prompt plus the generated tokens",
        }[self.mode]
        return f"analytic: tokens held x {per_token:,} bytes per token (2 x layers x kv heads x head dim); {what}"

    def _compare(self, users: np.ndarray, exclude) -> list[dict]:
        """Pointwise and shared-prefix on the same pairs: the first `compare_users` users with their first
        `compare_candidates` candidates, `compare_rounds` rounds alternating the two, so drift in the machine's
        speed falls on both. The model is warm (the loads ran first); the agreement is every round's worst
        difference between the two executions' scores."""
        chosen = users[: self.compare_users]
        cands = self.candidates(chosen, exclude)[:, : self.compare_candidates]
        times: dict[str, list[float]] = {m: [] for m in SCORING_MODES}
        worst = 0.0
        for _ in range(self.compare_rounds):
            for u, c in zip(chosen.tolist(), cands):
                scores = {}
                for mode in SCORING_MODES:
                    t0 = time.perf_counter_ns()
                    scores[mode] = self.score(int(u), c, mode)
                    times[mode].append((time.perf_counter_ns() - t0) / 1e6)
                worst = max(worst, float(np.abs(scores["pointwise"] - scores["shared-prefix"]).max(initial=0.0)))
        where = f"{chosen.size} user(s) x {cands.shape[1]} candidates"
        tokens = {
            m: float(sum(self._passes(int(u), c, m)[:, 0].sum() for u, c in zip(chosen.tolist(), cands)))
            for m in SCORING_MODES
        }
        flag = "" if worst <= AGREEMENT_TOLERANCE else self._disagreement(where)
        return [
            {
                "metric": "execution_max_abs_diff",
                "value": worst,
                "unit": "logprob",
                "n": int(cands.size),
                "flag": flag or f"pointwise vs shared-prefix scores on {where}",
            },
            {"metric": "pointwise_request", "samples_ms": times["pointwise"], "load": "pairs"},
            {"metric": "shared_prefix_request", "samples_ms": times["shared-prefix"], "load": "pairs"},
            {
                "metric": "naive_over_shared_prefix_time",
                "value": float(np.median(times["pointwise"]) / np.median(times["shared-prefix"])),
                "unit": "ratio",
                "load": "pairs",
                "n": len(times["pointwise"]),
                "flag": f"median request time, {where}, {self.compare_rounds} interleaved rounds",
            },
            {
                "metric": "naive_over_shared_prefix_tokens",
                "value": tokens["pointwise"] / tokens["shared-prefix"],
                "unit": "ratio",
                "n": int(chosen.size),
                "label": "estimated",
                "flag": f"analytic: tokens each execution feeds the decoder, {where}",
            },
        ]

    def _disagreement(self, where: str) -> str:
        why = {
            BF16: "; bf16 rounds every activation to 8 mantissa bits, and the two executions multiply in "
            "different shapes and orders",
            INT8: "; dynamic int8 quantises activations with a scale computed per call, so a prompt's result "
            "depends on what it is batched with",
        }.get(self.variant, "")
        return f"pointwise and shared-prefix differ by more than {AGREEMENT_TOLERANCE:g} on {where}{why}"

    def footprint(self) -> int:
        if self.engine is None:
            return 0
        fit = self._check_fitted()
        return int(fit.engine.footprint()) + int(fit.retriever.footprint())

    def __repr__(self) -> str:
        return (
            f"DecoderRank(model={self.model!r}, mode={self.mode!r}, n_candidates={self.n_candidates}, "
            f"variant={self.variant!r})"
        )


def _non_negative(name: str, value: Any, model: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ConfigError(f"{model}: {name}={value!r} is invalid: use an integer >= 0")
    return int(value)
