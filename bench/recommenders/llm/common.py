"""What the language-model recommenders share: building the encoder, one-time-cost stats, footprint,
the per-request work description (bench.work.RequestWork, which bench.measure.flops counts), and small
training utilities.

Each LLM recommender keeps `self.stats` (one-time costs, in seconds and bytes, never per-request work),
`self.encoder` (the TextEncoder or CrossEncoder it runs) and answers `cost_only`, `footprint()` and
`request_work(users)`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.recommenders.base import Recommender
from bench.variants.registry import FP32 as REFERENCE_VARIANT
from bench.work import RequestWork

__all__ = ["RequestWork", "LLMRecommenderMixin", "make_encoder", "RUN_ONLY_PARAMS"]


def wants_distillation(variant: str) -> bool:
    from bench.variants.registry import is_distilled

    return is_distilled(variant)


def make_encoder(
    model: Any,
    variant: str,
    device: str,
    threads: int | None,
    max_length: int,
    cache_dir: str | Path | None,
    distill_texts: Sequence[str] | None,
    cross: bool = False,
):
    """Build the TextEncoder (or CrossEncoder) under `variant`. `distill_texts` are the training texts: a
    student distils on them, and a static-int8 variant calibrates on them; passed on only when used."""
    from bench.variants import build_cross_encoder, build_encoder
    from bench.variants.registry import calibrates

    build = build_cross_encoder if cross else build_encoder
    texts = list(distill_texts) if distill_texts is not None else None
    return build(
        model,
        variant=variant,
        device=device,
        threads=threads,
        max_length=max_length,
        distill_texts=texts if wants_distillation(variant) else None,
        calibration_texts=texts if calibrates(variant) else None,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )


#: parameters that change cost but not outputs (pairwise's two executions give the same scores)
RUN_ONLY_PARAMS = frozenset({"variant", "device", "threads", "batch_size", "cache_dir", "execution", "reuse_trained"})


class LLMRecommenderMixin(Recommender):
    """stats / cost_only / footprint bookkeeping shared by TwoTower, Pairwise and Rerank.

    A Recommender itself, so its methods can rely on the protocol (name, request_work, the score row's bytes);
    listed first among a recommender's bases, its methods take precedence, as they did as a plain mixin."""

    encoder: Any = None
    stats: dict[str, Any]
    #: the constructor's arguments as given, set by each recommender's __init__
    _params: dict[str, Any]

    @property
    def cost_only(self) -> bool:
        """True when the transformer has random weights: the runner must report cost, never quality."""
        if self.encoder is None:
            return False
        return bool(getattr(self.encoder, "cost_only", False))

    def _record_encoder(self, build_s: float) -> None:
        prep = self.encoder.preparation
        self.stats.update(
            {
                "encoder_build_s": build_s,  # loading (and, first time, making) the variant in this process
                "prep_s": float(prep.seconds),  # export / quantise / distil, as measured when it was made
                # the part of prep_s reused from the cache: the only preparation time not already inside fit_s
                "prep_cached_s": float(getattr(prep, "reused_s", 0.0)),
                "prep_file_bytes": int(prep.file_bytes),
                "encoder_footprint_bytes": int(self.encoder.footprint()),
                "model_name": self.encoder.model_name,
                "variant": self.encoder.variant,
                "device": self.encoder.device,
                "cost_only": self.cost_only,
            }
        )

    def encoder_config(self) -> dict[str, Any]:
        require(self.encoder is not None, f"{getattr(self, 'name', 'recommender')} is not fitted: call fit(train)")
        return dict(self.encoder.config())

    def bytes_per_user(self, users: np.ndarray) -> float | None:
        """Analytic bytes of one request alone: the transformer's weights read once per forward pass (a request
        alone is one batch; batching shares them, which the best offline batch size shows), the fp32
        scoring operands read once per multiply-add row, and the score row. Activations are left out: for
        the sequence lengths here they live in cache."""
        users = np.asarray(users, dtype=np.int64)
        if self.encoder is None or users.size == 0:
            return None
        work = self.request_work(users)
        if work is None:  # every language-model recommender describes its work; the protocol allows None
            return None
        scoring = 4.0 * work.scoring_macs / users.size  # each scoring operand element read once, fp32
        return float(self.encoder.footprint()) + scoring + self._ranking_bytes()

    def reference_params(self) -> dict[str, Any]:
        """The parameters of this recommender's fp32 reference (the quality gate's denominator)."""
        params = dict(self.get_params())
        params["variant"] = REFERENCE_VARIANT
        return params

    def gate_key(self) -> str:
        """Identifies "the same model" for the quality gate: every parameter that can change the ranking,
        without the variant and the settings that only change how fast it runs. Cells with equal keys are
        compared with the one whose variant is fp32."""
        params = {k: v for k, v in self.get_params().items() if k not in RUN_ONLY_PARAMS}
        return f"{self.name}|" + "|".join(f"{k}={params[k]!r}" for k in sorted(params))

    def get_params(self) -> dict[str, Any]:
        return dict(self._params)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


def check_choice(name: str, value: str, choices: Sequence[str], model: str) -> str:
    if value not in choices:
        raise ConfigError(f"{model}: {name}={value!r} is unknown: choose one of {', '.join(choices)}")
    return value


def check_positive(name: str, value: float, model: str, integer: bool = False) -> Any:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and value > 0
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{model}: {name}={value!r} is invalid: use {kind}")
    return int(value) if integer else float(value)


def check_retriever(retriever: str, model: str) -> str:
    """A two-stage recommender's first stage must not itself be a language model (it would run one per
    candidate list): unknown names and language-model recommenders fail with one line."""
    from bench.recommenders import registry

    if registry.get(retriever).family == "llm":
        raise ConfigError(
            f"{model}: retriever {retriever!r} is itself a language-model recommender: "
            "choose a classic one (pop, itemknn, userknn, biasedmf, ease, ials)"
        )
    return retriever


def check_fraction(name: str, value: float, model: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not 0.0 < v < 1.0:
        raise ConfigError(f"{model}: {name}={value!r} is invalid: use a fraction strictly between 0 and 1")
    return v


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def pca_components(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components (dim, d_in)) of the rows of x, by SVD; component signs fixed for determinism."""
    if dim > min(x.shape):
        raise ConfigError(
            f"dim={dim} is larger than the embedding size or item count {min(x.shape)}: pick a smaller reduction"
        )
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd((x - mean).astype(np.float64), full_matrices=False)
    comps = vt[:dim]
    signs = np.sign(comps[np.arange(dim), np.abs(comps).argmax(axis=1)])
    return mean.astype(np.float32), (comps * signs[:, None]).astype(np.float32)


class Stopwatch:
    """perf_counter seconds since construction; for one-time costs recorded in stats."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def positives_mask(seen, users: np.ndarray, items: np.ndarray, keep_diagonal: bool = True) -> np.ndarray:
    """(len(users), len(items)) bool: item k is a train positive of user j (false negatives to mask out).

    The diagonal (each row's own positive) is left unmasked when keep_diagonal.
    """
    m = np.asarray(seen[users][:, items].toarray() > 0)
    if keep_diagonal:
        n = min(m.shape)
        m[np.arange(n), np.arange(n)] = False
    return m


def info_nce(user_vecs, item_vecs, temperature: float, mask=None, targets=None, column_offset=None):
    """InfoNCE with in-batch (or catalogue) negatives: row j's positive is column targets[j] (default j).

    `mask` (bool, same shape as the logits) removes known false negatives (other train positives of the user).
    `column_offset` is subtracted from each column's logits: log of the item's sampling probability for
    in-batch negatives (the logQ correction of Yi et al. 2019), which otherwise punish popular items for
    being popular.
    """
    import torch
    import torch.nn.functional as F

    logits = user_vecs @ item_vecs.T / temperature
    if column_offset is not None:
        logits = logits - column_offset[None, :]
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    if targets is None:
        targets = torch.arange(logits.shape[0])
    return F.cross_entropy(logits, targets)
