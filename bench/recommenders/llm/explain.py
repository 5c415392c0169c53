"""llm-explain: a classic recommender retrieves the top k; a decoder writes a short explanation of the list.

The article's last step, "an LLM rewrites the list for readability", as a cost: per request the prompt holds
the user's profile (recent liked titles, from TRAIN only) and the titles of the top k; a causal language model
(default: the GPT-2 small architecture with random weights, `gpt2-small-cost-only`) generates exactly
`new_tokens` tokens, greedy, with a KV cache: one prefill over the prompt gives the first token, then
`new_tokens - 1` single-token decode steps.

Fixed length, on purpose: the weights are random, so the text means nothing and an end-of-sequence token would
come (or not) by chance. Generating a fixed number of tokens makes every request do the work an explanation of
that length costs, which is the figure wanted. The ranking served is the retriever's (explaining does not
re-order it), so this recommender's quality is the retriever's and is not reported for a cost-only decoder.

Time to first token (TTFT) happens inside one call, where a load generator cannot see it: the recommender
marks it (`extra_measurements`), the cell summarises the samples (n, percentiles, bootstrap intervals).
No tokenizer for GPT-2's byte-level BPE is available offline: the cost-only model reads MiniLM's WordPiece
vocabulary (see bench.models), so prompt lengths are WordPiece counts; the logits still span GPT-2's 50,257-token
vocabulary, as the real model's do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import TrainSet
from bench.errors import ConfigError
from bench.recommenders.base import PER_REQUEST, Recommender, TopK, check_k
from bench.recommenders.llm.common import Stopwatch, check_positive, check_retriever, require
from bench.recommenders.llm.profile import DEFAULT_MIN_RATING, ProfileConfig, build_profiles, item_title
from bench.variants.registry import BF16, FP16, FP32
from bench.work import Generations, RequestWork

#: runtimes a decoder runs under here (PyTorch eager); ONNX/int8 variants are encoder exports
DECODER_VARIANTS = (FP32, BF16, FP16)
DEFAULT_MODEL = "gpt2-small-cost-only"
PROMPT = (
    "A user recently liked: {profile}.\nWe recommend: {titles}.\n"
    "In two sentences, explain to the user why these recommendations fit their taste:"
)


@dataclass
class Generation:
    """What one generate() call produced: exactly `new_tokens` token ids per prompt."""

    tokens: np.ndarray  # (n_prompts, new_tokens) int64
    prompt_tokens: np.ndarray  # (n_prompts,) prompt lengths as the model saw them (after truncation)
    first_token_ns: list[int]  # perf_counter_ns when each micro-batch's first token was ready (when asked)


class Decoder:
    """A causal language model run greedily with a KV cache, in micro-batches of left-padded prompts."""

    def __init__(
        self,
        model: Any,
        variant: str = FP32,
        device: str = "cpu",
        threads: int | None = None,
        max_prompt_tokens: int = 256,
        cache_dir: Any = None,
    ) -> None:
        from pathlib import Path

        import torch
        from transformers import AutoModelForCausalLM

        from bench.models import resolve_model
        from bench.variants.device import pin_torch_threads, resolve_device, resolve_threads
        from bench.variants.eager import EAGER_DTYPES, check_dtype_on_device
        from bench.variants.runtime import architecture_facts, load_tokenizer

        if variant not in DECODER_VARIANTS:
            raise ConfigError(
                f"llm-explain: variant {variant!r} is not available for a decoder: choose one of "
                f"{', '.join(DECODER_VARIANTS)} (ONNX and int8 variants are encoder exports)"
            )
        self.device = resolve_device(device)
        self.threads = resolve_threads(threads)
        pin_torch_threads(self.threads)
        self.variant = variant
        self.notes = check_dtype_on_device(variant, self.device)
        self.resolved = resolve_model(model, cache_dir=Path(cache_dir) if cache_dir else None)
        if self.resolved.architecture != "decoder":
            raise ConfigError(
                f"llm-explain: model {self.resolved.name!r} is an encoder; pass a causal decoder "
                f"such as {DEFAULT_MODEL!r}"
            )
        self.model_name = self.resolved.name
        self.cost_only = self.resolved.cost_only
        self.max_prompt_tokens = int(max_prompt_tokens)
        t0 = time.perf_counter()
        # A cost-only checkpoint is saved as the bare GPT2Model; the LM head is tied to the token embeddings
        # (GPT-2's tie_word_embeddings), so loading it as a causal LM adds no untrained weights.
        self.module = AutoModelForCausalLM.from_pretrained(
            self.resolved.path, local_files_only=True, dtype=getattr(torch, EAGER_DTYPES[variant])
        ).eval()
        self.module.to(self.device)
        self.load_s = time.perf_counter() - t0
        self.tokenizer = load_tokenizer(self.resolved.path)
        # keep the end of an over-long prompt (the list and the instruction) and pad on the left, so every
        # row's last position is its own last prompt token
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"
        self.facts = architecture_facts(self.resolved.path, self.max_prompt_tokens, self.resolved.n_parameters)

    def token_counts(self, prompts: list[str]) -> np.ndarray:
        if not prompts:
            return np.zeros(0, dtype=np.int64)
        ids = self.tokenizer(prompts, add_special_tokens=False, truncation=True, max_length=self.max_prompt_tokens)[
            "input_ids"
        ]
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(prompts))

    def footprint(self) -> int:
        tensors = list(self.module.parameters()) + list(self.module.buffers())
        # tied weights appear once in parameters(): no double count of the LM head
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def generate(
        self, prompts: list[str], new_tokens: int, batch_size: int, mark_first_token: bool = False
    ) -> Generation:
        import torch

        n = len(prompts)
        out = np.empty((n, new_tokens), dtype=np.int64)
        lengths = np.zeros(n, dtype=np.int64)
        marks: list[int] = []
        cuda = self.device == "cuda"
        for start in range(0, n, batch_size):
            batch = prompts[start : start + batch_size]
            enc = self.tokenizer(
                batch,
                add_special_tokens=False,
                padding=True,
                truncation=True,
                max_length=self.max_prompt_tokens,
                return_tensors="pt",
            )
            ids = enc["input_ids"].to(self.device)
            mask = enc["attention_mask"].to(self.device)
            lengths[start : start + len(batch)] = enc["attention_mask"].sum(dim=1).numpy()
            # left padding: positions count real tokens only, so padded rows see the positions they would alone
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            tokens = torch.empty((len(batch), new_tokens), dtype=torch.long, device=self.device)
            with torch.inference_mode():
                step = self.module(
                    input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
                )
                token = step.logits[:, -1, :].argmax(dim=-1)
                tokens[:, 0] = token
                if mark_first_token:
                    if cuda:
                        torch.cuda.synchronize()
                    marks.append(time.perf_counter_ns())
                past = step.past_key_values
                last = positions[:, -1]
                for i in range(1, new_tokens):
                    mask = torch.cat([mask, mask.new_ones((len(batch), 1))], dim=1)
                    last = last + 1
                    step = self.module(
                        input_ids=token[:, None],
                        attention_mask=mask,
                        position_ids=last[:, None],
                        past_key_values=past,
                        use_cache=True,
                    )
                    past = step.past_key_values
                    token = step.logits[:, -1, :].argmax(dim=-1)
                    tokens[:, i] = token
            out[start : start + len(batch)] = tokens.cpu().numpy()  # copies back (and syncs) on CUDA
        return Generation(tokens=out, prompt_tokens=lengths, first_token_ns=marks)


class Explain(Recommender):
    name = "llm-explain"
    run_context_params = ("variant", "device", "threads", "seed")

    def __init__(
        self,
        retriever: str = "ease",
        retriever_params: dict[str, Any] | None = None,
        model: Any = DEFAULT_MODEL,
        variant: str = FP32,
        device: str = "cpu",
        threads: int | None = None,
        new_tokens: int = 32,
        list_titles: int = 10,
        profile_len: int = 5,
        min_rating: float = DEFAULT_MIN_RATING,
        max_prompt_tokens: int = 256,
        batch_size: int = 16,
        ttft_requests: int = 30,
        ttft_min_requests: int = 10,
        ttft_max_s: float = 60.0,
        warmup_requests: int = 2,
        seed: int = 0,
        cache_dir: Any = None,
    ) -> None:
        super().__init__()
        self._params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.retriever_name = check_retriever(retriever, self.name)
        if variant not in DECODER_VARIANTS:
            raise ConfigError(
                f"llm-explain: variant {variant!r} is not available for a decoder: choose one of "
                f"{', '.join(DECODER_VARIANTS)} (ONNX and int8 variants are encoder exports)"
            )
        self.retriever_params = dict(retriever_params or {})
        self.model, self.variant, self.device, self.threads = model, variant, device, threads
        self.new_tokens = check_positive("new_tokens", new_tokens, self.name, integer=True)
        self.list_titles = check_positive("list_titles", list_titles, self.name, integer=True)
        self.profile = ProfileConfig(
            check_positive("profile_len", profile_len, self.name, integer=True), float(min_rating)
        )
        self.max_prompt_tokens = check_positive("max_prompt_tokens", max_prompt_tokens, self.name, integer=True)
        self.batch_size = check_positive("batch_size", batch_size, self.name, integer=True)
        self.ttft_requests = check_positive("ttft_requests", ttft_requests, self.name, integer=True)
        self.ttft_min_requests = min(
            check_positive("ttft_min_requests", ttft_min_requests, self.name, integer=True), self.ttft_requests
        )
        self.ttft_max_s = check_positive("ttft_max_s", ttft_max_s, self.name)
        if int(warmup_requests) < 0:
            raise ConfigError(f"llm-explain: warmup_requests={warmup_requests!r} is invalid: use 0 or more")
        self.warmup_requests = int(warmup_requests)
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self.stats: dict[str, Any] = {}
        self.decoder: Decoder | None = None
        self.retriever: Recommender | None = None
        self.last_generation: Generation | None = None
        self._profiles: list[str] = []
        self._titles: list[str] = []

    @property
    def cost_only(self) -> bool:
        """Random decoder weights: the runner reports cost, never quality."""
        return bool(self.decoder is not None and self.decoder.cost_only)

    def get_params(self) -> dict[str, Any]:
        return dict(self._params)

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, train: TrainSet) -> Explain:
        from bench.recommenders import registry

        self._remember_seen(train)
        watch = Stopwatch()
        self.retriever = registry.get(self.retriever_name).build(**self.retriever_params).fit(train)
        retriever_fit_s = watch()
        self._profiles = build_profiles(train.interactions, train.item_text, train.n_users, self.profile)
        self._titles = [item_title(train.item_text, i) for i in range(train.n_items)]
        watch = Stopwatch()
        self.decoder = Decoder(
            self.model, self.variant, self.device, self.threads, self.max_prompt_tokens, self.cache_dir
        )
        self.stats = {
            "retriever": self.retriever_name,
            "retriever_fit_s": retriever_fit_s,
            "decoder_build_s": watch(),
            "model_name": self.decoder.model_name,
            "n_parameters": int(self.decoder.resolved.n_parameters),
            "new_tokens_per_rec": self.new_tokens,
            "titles_per_prompt": self.list_titles,
            "cost_only": self.cost_only,
            "decoding": "greedy, KV cache, fixed length (no early stop)",
        }
        return self

    # ------------------------------------------------------------------------------------ per request
    def _fitted(self) -> tuple[Recommender, Decoder]:
        """(retriever, decoder), or the error saying fit comes first."""
        if self.retriever is None or self.decoder is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train) before recommend")
        return self.retriever, self.decoder

    def prompts(self, users: np.ndarray, items: np.ndarray) -> list[str]:
        """One prompt per user: their profile and the titles of their first `list_titles` recommended items."""
        shown = items[:, : self.list_titles]
        return [
            PROMPT.format(profile=self._profiles[u] or "(nothing yet)", titles="; ".join(self._titles[i] for i in row))
            for u, row in zip(np.asarray(users).tolist(), shown.tolist())
        ]

    def _serve(
        self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None, mark_first_token: bool = False
    ) -> tuple[TopK, Generation]:
        retriever, decoder = self._fitted()
        users = np.asarray(users, dtype=np.int64)
        check_k(k, self.n_items)
        top = retriever.recommend(users, k, exclude=exclude)
        generation = decoder.generate(
            self.prompts(users, top.items), self.new_tokens, self.batch_size, mark_first_token=mark_first_token
        )
        return top, generation

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> TopK:
        """The retriever's top k, plus an explanation of `new_tokens` tokens per user (kept in last_generation)."""
        top, self.last_generation = self._serve(users, k, exclude)
        return top

    def extra_measurements(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> list[dict]:
        """Time to first token and time per output token, one request at a time (single-stream conditions).

        Each request is timed from the call (retrieval, prompt building and tokenisation included) to its
        first generated token, and to its last. At least `ttft_min_requests`, at most `ttft_requests`, stopping
        after `ttft_max_s` once the minimum is reached; `warmup_requests` untimed requests first.
        """
        users = np.asarray(users, dtype=np.int64)
        require(users.size > 0, f"{self.name}: no users to time requests for")
        for i in range(self.warmup_requests):
            self._serve(users[i % users.size][None], k, exclude)
        ttft_ms, total_ms = [], []
        started = time.perf_counter()
        for i in range(self.ttft_requests):
            t0 = time.perf_counter_ns()
            _, generation = self._serve(users[i % users.size][None], k, exclude, mark_first_token=True)
            t1 = time.perf_counter_ns()
            ttft_ms.append((generation.first_token_ns[0] - t0) / 1e6)
            total_ms.append((t1 - t0) / 1e6)
            if i + 1 >= self.ttft_min_requests and time.perf_counter() - started > self.ttft_max_s:
                break
        n = len(total_ms)
        rows: list[dict] = [
            {"metric": "ttft", "samples_ms": ttft_ms, "load": PER_REQUEST, "unit_of_work": "requests"},
            {"metric": "explain_request", "samples_ms": total_ms, "load": PER_REQUEST, "unit_of_work": "requests"},
        ]
        if self.new_tokens > 1:
            # decode steps only: the prefill's token is the first one
            tpot = [(t - f) / (self.new_tokens - 1) for t, f in zip(total_ms, ttft_ms)]
            rows.append(
                {"metric": "time_per_output_token", "samples_ms": tpot, "load": PER_REQUEST, "unit_of_work": "tokens"}
            )
        rows.append(
            {
                "metric": "output_tokens_per_s",
                "value": self.new_tokens * n / (sum(total_ms) / 1e3),
                "unit": "tokens/s",
                "load": PER_REQUEST,
                "n": n,
                "flag": "one request at a time: new tokens / end-to-end request time",
            }
        )
        return rows

    def request_work(self, users: np.ndarray) -> RequestWork | None:
        """One generation per request over these users' real prompts, plus the retriever's scoring."""
        users = np.asarray(users, dtype=np.int64)
        if self.decoder is None or users.size == 0:
            return None
        retriever, decoder = self._fitted()
        top = retriever.recommend(users, min(self.list_titles, self.n_items))
        lengths = decoder.token_counts(self.prompts(users, top.items))
        return RequestWork(
            n_requests=int(users.size),
            kind="generation",
            generation=Generations(dict(decoder.facts), lengths, self.new_tokens),
            other=retriever.request_work(users),
        )

    def footprint(self) -> int:
        if self.decoder is None:
            return 0
        retriever, decoder = self._fitted()
        return int(decoder.footprint()) + int(retriever.footprint())

    def __repr__(self) -> str:
        return (
            f"Explain(retriever={self.retriever_name!r}, model={self.model!r}, variant={self.variant!r}, "
            f"new_tokens={self.new_tokens})"
        )
