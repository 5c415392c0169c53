"""What every variant shares: tokenisation, length-sorted batching, mean pooling, L2 normalisation, facts.

A variant only supplies a `Backend`: tokenised batch -> mean-pooled hidden states. The encoder (single texts)
and the cross-encoder (text pairs) wrap any backend, so the heavy transformer forward runs under every
variant for both, and the work timed is the same for every runtime (tokenisation inside `encode`, for all).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.errors import ConfigError
from bench.models import ResolvedModel
from bench.variants.base import Preparation


class Backend(Protocol):
    """One way of running the transformer body."""

    runtime: str  # "torch" | "onnxruntime"
    dtype: str  # "float32" | "float16" | "bfloat16" | "int8-dynamic" | ...
    input_names: tuple[str, ...]  # model inputs the backend accepts (token_type_ids may be absent)

    def pooled(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """(B, hidden) float32: hidden states mean-pooled over the attention mask, NOT normalised."""

    def hidden_states(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """(B, L, hidden) float32: the last layer at every position (a decoder's caller picks the positions)."""

    def footprint(self) -> int:
        """Static bytes of the model as run (parameters in memory, or the ONNX file)."""


def mean_pool_np(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling: sum of token vectors where mask=1, divided by max(count, 1e-9)."""
    m = mask.astype(np.float32)[:, :, None]
    summed = (hidden.astype(np.float32, copy=False) * m).sum(axis=1)
    return summed / np.clip(m.sum(axis=1), 1e-9, None)


def mean_pool_torch(hidden, mask):
    """The same pooling in torch (fp32 accumulation whatever the hidden dtype); also used by training code."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * m).float().sum(dim=1)
    return summed / m.float().sum(dim=1).clamp(min=1e-9)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """As torch.nn.functional.normalize(p=2, eps=1e-12)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise ConfigError(f"{what} must be a sequence of strings, got one string: wrap it in a list")
    items = list(texts)
    bad = next((i for i, t in enumerate(items) if not isinstance(t, str)), None)
    if bad is not None:
        raise ConfigError(f"{what}[{bad}] is {type(items[bad]).__name__}, not str: pass text only")
    return items


def _check_batch_size(batch_size: int) -> int:
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def architecture_facts(model_dir: Path, max_length: int, n_parameters: int) -> dict[str, Any]:
    """Layers, hidden, heads, intermediate, vocab from config.json (BERT- and GPT-2-style names)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    hidden = cfg.get("hidden_size", cfg.get("n_embd"))
    intermediate = cfg.get("intermediate_size", cfg.get("n_inner"))
    if intermediate is None and hidden is not None:
        intermediate = 4 * hidden  # GPT-2's convention when n_inner is null
    return {
        "model_type": cfg.get("model_type"),
        "layers": cfg.get("num_hidden_layers", cfg.get("n_layer")),
        "hidden": hidden,
        "heads": cfg.get("num_attention_heads", cfg.get("n_head")),
        "intermediate": intermediate,
        "vocab": cfg.get("vocab_size"),
        "max_length": max_length,
        "max_positions": cfg.get("max_position_embeddings", cfg.get("n_positions")),
        "n_parameters": n_parameters,
    }


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:  # GPT-2-style vocabularies have no pad token; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


@dataclass
class _Core:
    """Shared state of an encoder or cross-encoder: the model, its tokenizer and its backend."""

    model: ResolvedModel
    backend: Backend
    variant: str
    device: str
    threads: int
    max_length: int
    preparation: Preparation = field(default_factory=Preparation)

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise ConfigError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {self.max_length}")
        self.tokenizer = load_tokenizer(self.model.path)
        self._facts = architecture_facts(self.model.path, self.max_length, self.model.n_parameters)

    def tokenize(self, first: list[str], second: list[str] | None = None) -> dict[str, np.ndarray]:
        enc = self.tokenizer(
            first, second, padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        return {k: np.ascontiguousarray(v, dtype=np.int64) for k, v in enc.items() if k in self.backend.input_names}

    def run_sorted(self, first: list[str], second: list[str] | None, batch_size: int) -> np.ndarray:
        """Pool in batches of similar length (less padding, as sentence-transformers does); original order out."""
        n = len(first)
        dim = int(self._facts["hidden"])
        out = np.empty((n, dim), dtype=np.float32)
        if n == 0:
            return out
        lengths = np.fromiter(
            (len(a) + (len(second[i]) if second is not None else 0) for i, a in enumerate(first)),
            dtype=np.int64,
            count=n,
        )
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenize([first[i] for i in idx], [second[i] for i in idx] if second is not None else None)
            out[idx] = self.backend.pooled(batch)
        return l2_normalise(out)

    def config(self) -> dict[str, Any]:
        return {
            **run_config(self._facts, self.model, self.backend, self.variant, self.device, self.threads),
            # the same for every runtime and device, so that their timings compare the same work
            "tokenisation": {
                "where": "cpu (Hugging Face fast tokenizer, host process)",
                "in_timed_region": True,
                "padding": "to the longest text of each batch",
            },
        }


def run_config(
    facts: dict[str, Any], model: ResolvedModel, backend: Backend, variant: str, device: str, threads: int
) -> dict[str, Any]:
    """Architecture facts plus how this copy runs: what analytic FLOPs and the results' provenance read."""
    return {
        **facts,
        "variant": variant,
        "device": device,
        "threads": threads,
        "runtime": backend.runtime,
        "dtype": backend.dtype,
        "cost_only": model.cost_only,
        "source": model.source,
    }


class _ModelRun:
    """One model under one variant on one device: the facts every wrapper of a backend reports."""

    def __init__(
        self,
        model: ResolvedModel,
        variant: str,
        device: str,
        threads: int,
        max_length: int,
        preparation: Preparation,
        facts: dict[str, Any],
    ) -> None:
        self.model_name = model.name
        self.variant = variant
        self.device = device
        self.threads = threads
        self.max_length = max_length
        self.cost_only = model.cost_only
        self.preparation = preparation
        self.resolved_model = model
        self.dim = int(facts["hidden"])


class _Transformer(_ModelRun):
    """What both kinds of text transformer share: one model under one variant on one device, and its facts."""

    def __init__(
        self,
        model: ResolvedModel,
        backend: Backend,
        variant: str,
        device: str,
        threads: int,
        max_length: int,
        preparation: Preparation,
    ) -> None:
        self._core = _Core(model, backend, variant, device, threads, max_length, preparation)
        super().__init__(model, variant, device, threads, max_length, preparation, self._core._facts)

    @property
    def tokenizer(self):
        return self._core.tokenizer

    @property
    def backend(self) -> Backend:
        return self._core.backend

    def footprint(self) -> int:
        return int(self._core.backend.footprint())

    def config(self) -> dict[str, Any]:
        return self._core.config()


class TransformerEncoder(_Transformer):
    """A `TextEncoder` (bench.variants.base) over any backend."""

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        items = _check_texts(texts)
        return self._core.run_sorted(items, None, _check_batch_size(batch_size))

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros(0, dtype=np.int64)
        ids = self._core.tokenizer(items, truncation=True, max_length=self.max_length)["input_ids"]
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(items))

    def __repr__(self) -> str:
        return f"TransformerEncoder({self.model_name!r}, variant={self.variant!r}, device={self.device!r})"


class CrossEncoder(_Transformer):
    """A transformer over concatenated pairs ([CLS] q [SEP] d [SEP]) under any variant.

    No pretrained cross-encoder exists offline, so this exposes the pooled joint representation
    (`encode_pairs`: mean-pooled over the pair's tokens, L2-normalised) and scores it with a linear head the
    caller supplies (`set_head`), e.g. trained on the train split. The heavy part, the forward over pairs,
    is what the variant changes.
    """

    def __init__(
        self,
        model: ResolvedModel,
        backend: Backend,
        variant: str,
        device: str,
        threads: int,
        max_length: int,
        preparation: Preparation,
    ) -> None:
        super().__init__(model, backend, variant, device, threads, max_length, preparation)
        self.head_weight: np.ndarray | None = None
        self.head_bias: float = 0.0

    def _pairs(self, queries: Sequence[str], docs: Sequence[str]) -> tuple[list[str], list[str]]:
        q, d = _check_texts(queries, "queries"), _check_texts(docs, "docs")
        if len(q) != len(d):
            raise ConfigError(f"queries and docs must pair up: got {len(q)} queries and {len(d)} docs")
        return q, d

    def encode_pairs(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(n, dim) float32 joint representations of (queries[i], docs[i]), rows L2-normalised."""
        q, d = self._pairs(queries, docs)
        return self._core.run_sorted(q, d, _check_batch_size(batch_size))

    def set_head(self, weight: np.ndarray, bias: float = 0.0) -> CrossEncoder:
        w = np.asarray(weight, dtype=np.float32).reshape(-1)
        if w.shape[0] != self.dim:
            raise ConfigError(
                f"score head has {w.shape[0]} weights but the joint representation has {self.dim} "
                "dimensions: train the head on `encode_pairs` output of this model"
            )
        self.head_weight, self.head_bias = w, float(bias)
        return self

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(n,) float32 scores: head(encode_pairs(...))."""
        if self.head_weight is None:
            raise ConfigError(
                "the cross-encoder has no score head: call set_head(weight, bias) with a head "
                "trained on encode_pairs output (no pretrained cross-encoder is available offline)"
            )
        return (self.encode_pairs(queries, docs, batch_size) @ self.head_weight + self.head_bias).astype(np.float32)

    def token_counts(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        q, d = self._pairs(queries, docs)
        if not q:
            return np.zeros(0, dtype=np.int64)
        ids = self._core.tokenizer(q, d, truncation=True, max_length=self.max_length)["input_ids"]
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(q))

    def __repr__(self) -> str:
        return f"CrossEncoder({self.model_name!r}, variant={self.variant!r}, device={self.device!r})"


class SequenceModel(_ModelRun):
    """A transformer over token ids its caller makes (no tokenizer, no pooling) under any variant.

    For models trained here on ids that are not words, e.g. a next-item decoder whose tokens are catalogue
    items: `hidden_states` gives the last layer at every position and the caller picks the positions it
    needs (a causal model's last real token). Same backends, same one-time-cost accounting as the encoders.
    """

    def __init__(
        self,
        model: ResolvedModel,
        backend: Backend,
        variant: str,
        device: str,
        threads: int,
        max_length: int,
        preparation: Preparation,
    ) -> None:
        self.backend = backend
        self._facts = architecture_facts(model.path, max_length, model.n_parameters)
        super().__init__(model, variant, device, threads, max_length, preparation, self._facts)

    def hidden_states(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """(B, L, dim) float32 for int64 ids (B, L); `attention_mask` is 1 on real tokens, 0 on padding."""
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] > self.max_length:
            raise ConfigError(
                f"input_ids of shape {ids.shape} do not fit this model: pass (batch, length) with "
                f"length <= {self.max_length}"
            )
        mask = np.ascontiguousarray(attention_mask, dtype=np.int64)
        return self.backend.hidden_states({"input_ids": ids, "attention_mask": mask})

    def footprint(self) -> int:
        return int(self.backend.footprint())

    def config(self) -> dict[str, Any]:
        return run_config(self._facts, self.resolved_model, self.backend, self.variant, self.device, self.threads)

    def __repr__(self) -> str:
        return f"SequenceModel({self.model_name!r}, variant={self.variant!r}, device={self.device!r})"
