"""The analytic work of a batch of requests, as plain data: recommenders describe it, bench.measure.flops counts it.

A recommender answers `request_work(users) -> RequestWork`: which transformer passes the requests make (their
real token counts), the multiply-adds outside any transformer, and the work of another model the requests
also run (a retriever, the CF half of a hybrid). No formula lives here or in the recommenders; every FLOP
count is made in bench.measure.flops (`request_flops`, `work_flops`). This module imports only numpy, so both
sides can use it without knowing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DecoderPasses:
    """Forward passes of a decoder: one row per pass, (new tokens, tokens already cached, logit positions)."""

    #: layers, hidden, heads, kv_heads, intermediate, vocab, gated_mlp (what the decoder formula reads)
    config: dict[str, Any]
    passes: np.ndarray  # (n_passes, 3) float64


@dataclass(frozen=True)
class Generations:
    """Greedy generation with a KV cache, one per request: a prompt of `prompt_tokens[j]`, `new_tokens` out."""

    #: layers, hidden, intermediate, vocab
    config: dict[str, Any]
    prompt_tokens: np.ndarray  # (n_requests,)
    new_tokens: int


@dataclass(frozen=True)
class RequestWork:
    """The work one batch of `n_requests` requests makes a recommender do.

    `token_counts[j]` is the length of the j-th encoder forward (one text, or one query+doc pair) the batch
    runs under `encoder_config`; `scoring_macs` counts multiply-adds outside any transformer (dot products,
    heads, a sparse history times an item-item matrix).
    """

    n_requests: int
    #: layers, hidden, heads, intermediate, vocab, max_length, variant, ... of a BERT-like encoder
    encoder_config: dict[str, Any] | None = None
    token_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scoring_macs: float = 0
    #: "texts" | "pairs" | "sequences" | "scores" | "decoder" | "generation": what the forwards are
    kind: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    decoder: DecoderPasses | None = None
    generation: Generations | None = None
    #: another model's work for the same requests (a retriever's scoring, a hybrid's CF half)
    other: RequestWork | None = None

    @property
    def forwards_per_request(self) -> float:
        return len(self.token_counts) / max(self.n_requests, 1)
