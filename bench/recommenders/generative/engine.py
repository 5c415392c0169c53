"""A causal decoder run three ways over token ids: pointwise scoring, shared-prefix scoring, greedy generation.

Scoring reads the log-probability of one answer token after each (prefix + suffix) prompt. Pointwise (naive)
runs every prompt in full, right-padded batches. Shared-prefix runs the prefix ONCE into a KV cache, then packs the
suffixes into one row over that cache: a block-diagonal causal mask lets each suffix token see the prefix and its
own suffix only, and positions continue from the prefix for every suffix (M-FALCON's idea), so no prefix is
copied and no padding is computed. Both read the logits of each prompt's last real token only (the hidden state is
gathered before the LM head), so on the same pairs they give the same scores up to floating-point summation order.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.recommenders.generative.archs import DecoderArch, arch_from_hf_config, check_variant, get_arch, hf_config
from bench.variants.registry import BF16, FP32, INT8

VARIANTS = (FP32, BF16, INT8)
_DTYPES = {FP32: "float32", BF16: "bfloat16", INT8: "float32"}


@dataclass
class Marks:
    """perf_counter_ns marks inside one call (the phases a load generator cannot see)."""

    prefill_done_ns: int = 0  # shared-prefix: the prefix pass; generation: the first token
    end_ns: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


class DecoderEngine:
    """A decoder in eval mode on CPU. `model`: an architecture name from bench.recommenders.generative.archs
    (built from its public config with seeded random weights: cost-only) or a local model directory saved with
    `save_pretrained` (its weights as they are)."""

    def __init__(self, model: str, variant: str = FP32, threads: int | None = None, seed: int = 0) -> None:
        import torch

        from bench.variants.device import pin_torch_threads, resolve_threads

        if variant not in VARIANTS:
            raise ConfigError(f"decoder variant {variant!r} is not available: choose one of {', '.join(VARIANTS)}")
        check_variant(variant)
        self.variant = variant
        self.threads = resolve_threads(threads)
        pin_torch_threads(self.threads)
        self.notes: dict[str, Any] = {}
        t0 = time.perf_counter()
        path = Path(str(model)).expanduser()
        if path.is_dir():
            self.module, self.arch, self.cost_only = self._load_dir(path, variant)
        else:
            self.arch = get_arch(str(model))
            self.cost_only = True
            torch.manual_seed(seed)
            from transformers import AutoModelForCausalLM

            self.module = AutoModelForCausalLM.from_config(hf_config(self.arch), dtype=getattr(torch, _DTYPES[variant]))
            self.notes["weights"] = f"random (seed {seed}), built from the public config: cost-only"
        self.module.eval()
        self.build_s = time.perf_counter() - t0
        self.quantise_s = 0.0
        if variant == INT8:
            t1 = time.perf_counter()
            with warnings.catch_warnings():  # deprecated in torch 2.x, still the fast CPU path (bench.variants.int8)
                warnings.simplefilter("ignore")
                self.module = torch.ao.quantization.quantize_dynamic(
                    self.module, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8
                )
            self.quantise_s = time.perf_counter() - t1
            self.notes[INT8] = (
                "torch.ao.quantization.quantize_dynamic: every nn.Linear int8 (per-channel "
                "weights, activations quantised per call); embeddings and KV cache fp32"
            )
        self.base = self.module.base_model
        self.head = self.module.get_output_embeddings()

    @staticmethod
    def _load_dir(path: Path, variant: str):
        import json

        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(path, local_files_only=True)
        try:
            meta = json.loads((path / "recbench.json").read_text())
        except (OSError, ValueError):
            meta = {}
        arch = arch_from_hf_config(config, str(meta.get("name") or path.name), str(path))
        module = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=getattr(torch, _DTYPES[variant])
        )
        return module, arch, bool(meta.get("cost_only", False))

    # ------------------------------------------------------------------------------------------- facts
    @property
    def vocab(self) -> int:
        return self.arch.vocab

    def footprint(self) -> int:
        """Bytes of the weights as held (quantised Linear layers report their packed int8 weights)."""
        import io

        import torch

        if self.variant == INT8:
            buffer = io.BytesIO()
            torch.save(self.module.state_dict(), buffer)
            return buffer.getbuffer().nbytes
        tensors = list(self.module.parameters()) + list(self.module.buffers())
        return int(sum(t.numel() * t.element_size() for t in tensors))  # tied weights appear once

    def check_length(self, tokens: int, what: str) -> None:
        if tokens > self.arch.max_positions:
            raise ConfigError(
                f"{what} of {tokens} tokens exceeds {self.arch.name}'s {self.arch.max_positions} "
                "positions: lower history_len or the number of candidates"
            )

    # ------------------------------------------------------------------------------------------- scoring
    def _answer_logprobs(self, rows, answer_id: int) -> np.ndarray:
        """log P(answer) from the hidden states of each prompt's last real token (no logits for other positions)."""
        import torch

        logits = self.head(rows).float()
        return torch.log_softmax(logits, dim=-1)[:, answer_id].double().numpy()

    def score_pointwise(
        self, prefix: np.ndarray, suffixes: Sequence[np.ndarray], answer_id: int, batch_size: int
    ) -> np.ndarray:
        """Naive: every prompt (prefix + suffix) in full, `batch_size` prompts per right-padded pass."""
        import torch

        out = np.empty(len(suffixes), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(suffixes), batch_size):
                seqs = [np.concatenate([prefix, s]) for s in suffixes[start : start + batch_size]]
                ids, mask, last = _right_pad(seqs)
                positions = torch.arange(ids.shape[1])[None, :].expand(ids.shape[0], -1)
                hidden = self.base(
                    input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
                ).last_hidden_state
                rows = hidden[torch.arange(hidden.shape[0]), last]
                out[start : start + len(seqs)] = self._answer_logprobs(rows, answer_id)
        return out

    def score_shared_prefix(
        self,
        prefix: np.ndarray,
        suffixes: Sequence[np.ndarray],
        answer_id: int,
        batch_size: int,
        marks: Marks | None = None,
    ) -> np.ndarray:
        """The prefix once (KV cache), then up to `batch_size` suffixes per pass over that one cached prefix.

        A pass packs its suffixes into one row, no padding: each suffix token attends to the whole prefix and to
        the earlier tokens of its own suffix only (a block-diagonal causal mask after the prefix columns), with
        positions continuing from the prefix for every suffix. The pass appends the suffixes' keys and values to
        the cache; cropping back to the prefix leaves it clean for the next pass.
        """
        import torch
        from transformers import DynamicCache

        out = np.empty(len(suffixes), dtype=np.float64)
        p = int(prefix.size)
        with torch.inference_mode():
            cache = DynamicCache()
            self.base(input_ids=torch.from_numpy(prefix)[None, :], use_cache=True, past_key_values=cache)
            if marks is not None:
                marks.prefill_done_ns = time.perf_counter_ns()
            for start in range(0, len(suffixes), batch_size):
                batch = suffixes[start : start + batch_size]
                ids, mask, positions, last = _packed(
                    batch, p, torch.bfloat16 if self.variant == BF16 else torch.float32
                )
                hidden = self.base(
                    input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
                ).last_hidden_state
                out[start : start + len(batch)] = self._answer_logprobs(hidden[0, last], answer_id)
                cache.crop(p)
        return out

    # ------------------------------------------------------------------------------------------- generation
    def generate(self, prompt: np.ndarray, new_tokens: int, marks: Marks | None = None) -> np.ndarray:
        """Greedy, KV cache, exactly `new_tokens` tokens (no early stop: random weights would stop by chance)."""
        import torch

        out = np.empty(new_tokens, dtype=np.int64)
        with torch.inference_mode():
            step = self.module(input_ids=torch.from_numpy(prompt)[None, :], use_cache=True, logits_to_keep=1)
            token = step.logits[:, -1, :].argmax(dim=-1)
            out[0] = int(token)
            if marks is not None:
                marks.prefill_done_ns = time.perf_counter_ns()
            past = step.past_key_values
            for i in range(1, new_tokens):
                step = self.module(input_ids=token[:, None], past_key_values=past, use_cache=True)
                past = step.past_key_values
                token = step.logits[:, -1, :].argmax(dim=-1)
                out[i] = int(token)
        return out


def _packed(suffixes: Sequence[np.ndarray], prefix_len: int, dtype):
    """One row holding every suffix: ids (1, S), a 4-D additive mask (1, 1, S, prefix_len + S) letting each token
    see the prefix and its own suffix's earlier tokens, positions (1, S) restarting after the prefix for each
    suffix, and the index of each suffix's last token."""
    import torch

    lengths = np.fromiter((len(s) for s in suffixes), dtype=np.int64, count=len(suffixes))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    total = int(ends[-1])
    owner = np.repeat(np.arange(len(suffixes)), lengths)  # which suffix each packed token belongs to
    offset = np.arange(total) - np.repeat(starts, lengths)
    visible = (owner[:, None] == owner[None, :]) & (offset[:, None] >= offset[None, :])
    allowed = np.concatenate([np.ones((total, prefix_len), dtype=bool), visible], axis=1)
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask[~torch.from_numpy(allowed)] = torch.finfo(dtype).min
    ids = torch.from_numpy(np.concatenate(suffixes).astype(np.int64))[None, :]
    positions = torch.from_numpy(prefix_len + offset)[None, :]
    return ids, mask[None, None], positions, torch.from_numpy(ends - 1)


def _right_pad(seqs: Sequence[np.ndarray]):
    """(ids, attention mask, index of each row's last real token), padding on the right with id 0."""
    import torch

    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    ids = np.zeros((len(seqs), int(lengths.max())), dtype=np.int64)
    mask = np.zeros_like(ids)
    for j, s in enumerate(seqs):
        ids[j, : len(s)] = s
        mask[j, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(lengths - 1)


def save_random_decoder(directory: Path, arch: DecoderArch, seed: int = 0) -> Path:
    """A causal LM of `arch` with seeded random weights, written with save_pretrained (plus a recbench.json that
    names it and marks it cost-only): the local-directory path `DecoderEngine(model=directory)` loads."""
    import json

    import torch
    from transformers import AutoModelForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(hf_config(arch)).save_pretrained(directory, safe_serialization=True)
    (directory / "recbench.json").write_text(json.dumps({"name": arch.name, "cost_only": True, "seed": seed}))
    return directory
