"""Decoder architectures from their public configs, as plain data: built in code with random weights (cost-only).

Each entry copies the shape fields of the model's published `config.json` (hidden size, layers, heads, key/value
heads, MLP width, vocabulary, tied embeddings, positions). Nothing is downloaded: `build_module` builds the
transformers model from the config with seeded random weights, so the cost is real and the quality meaningless
(every figure of such a model is labelled cost-only).

Pure Python (no torch at import): the memory pre-check and the size fits read the analytic figures here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.errors import ConfigError
from bench.variants.registry import BF16, FP16, FP32, INT8

#: bytes per parameter (weights) and per cached key/value element, by variant
BYTES_PER_ELEMENT = {FP32: 4, BF16: 2, FP16: 2, INT8: 1}
#: int8 (dynamic quantisation) keeps activations and the KV cache in fp32
KV_BYTES_PER_ELEMENT = {FP32: 4, BF16: 2, FP16: 2, INT8: 4}


@dataclass(frozen=True)
class DecoderArch:
    """The shape of a causal decoder. kind: "llama" / "qwen2" (gated SiLU MLP, RoPE, grouped-query attention)
    or "gpt2" (GELU MLP, learned positions, full multi-head attention)."""

    name: str
    kind: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    max_positions: int
    source: str  # where the public config is published
    rope_theta: float = 10000.0

    @property
    def family(self) -> str:
        """Size fits group models of one family: Llama-style decoders apart from GPT-2."""
        return "gpt2" if self.kind == "gpt2" else "llama-style"

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def gated_mlp(self) -> bool:
        return self.kind != "gpt2"

    def n_parameters(self) -> int:
        """Exact parameter count of the transformers model (LlamaForCausalLM / Qwen2ForCausalLM / GPT2LMHeadModel)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        if self.kind == "gpt2":
            per_layer = 4 * h * h + 2 * h * i + 9 * h + i  # qkv, proj, fc, fc-proj weights+biases, 2 layer norms
            return (self.vocab + self.max_positions) * h + self.layers * per_layer + 2 * h
        attention = h * h + 2 * h * kv + h * h  # q, k, v, o weights
        if self.kind == "qwen2":
            attention += h + 2 * kv  # Qwen2 has q/k/v biases
        per_layer = attention + 3 * h * i + 2 * h  # gate, up, down; two RMS norms
        embeddings = self.vocab * h * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * per_layer + h

    def weight_bytes(self, variant: str) -> int:
        """Bytes of the weights under `variant` (int8: dynamic quantisation keeps embeddings in fp32)."""
        if variant == INT8:
            embeddings = self.vocab * self.hidden * 4
            return embeddings + (self.n_parameters() - self.vocab * self.hidden)
        return self.n_parameters() * BYTES_PER_ELEMENT[check_variant(variant)]

    def kv_bytes_per_token(self, variant: str) -> int:
        """Keys and values cached per token: 2 x layers x kv_heads x head_dim x bytes per element."""
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES_PER_ELEMENT[check_variant(variant)]

    def flops_config(self) -> dict[str, Any]:
        """What bench.measure.flops.decoder_pass_flops reads."""
        return {
            "layers": self.layers,
            "hidden": self.hidden,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "intermediate": self.intermediate,
            "vocab": self.vocab,
            "gated_mlp": self.gated_mlp,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_parameters": self.n_parameters(), "family": self.family}


def check_variant(variant: str) -> str:
    if variant not in BYTES_PER_ELEMENT:
        raise ConfigError(f"decoder variant {variant!r} is not available: choose one of {', '.join(BYTES_PER_ELEMENT)}")
    return variant


_HF = "https://huggingface.co/{}/blob/main/config.json"

#: public configs (shape fields only); sizes from ~0.1B to 7B
ARCHS: dict[str, DecoderArch] = {
    a.name: a
    for a in [
        DecoderArch(
            "smollm-135m", "llama", 576, 30, 9, 3, 1536, 49152, True, 2048, _HF.format("HuggingFaceTB/SmolLM-135M")
        ),
        DecoderArch(
            "smollm2-360m",
            "llama",
            960,
            32,
            15,
            5,
            2560,
            49152,
            True,
            8192,
            _HF.format("HuggingFaceTB/SmolLM2-360M"),
            rope_theta=100000.0,
        ),
        DecoderArch(
            "qwen2.5-0.5b",
            "qwen2",
            896,
            24,
            14,
            2,
            4864,
            151936,
            True,
            32768,
            _HF.format("Qwen/Qwen2.5-0.5B"),
            rope_theta=1000000.0,
        ),
        DecoderArch(
            "qwen2.5-1.5b",
            "qwen2",
            1536,
            28,
            12,
            2,
            8960,
            151936,
            True,
            32768,
            _HF.format("Qwen/Qwen2.5-1.5B"),
            rope_theta=1000000.0,
        ),
        DecoderArch(
            "qwen2.5-7b",
            "qwen2",
            3584,
            28,
            28,
            4,
            18944,
            152064,
            False,
            32768,
            _HF.format("Qwen/Qwen2.5-7B"),
            rope_theta=1000000.0,
        ),
        DecoderArch(
            "llama-3.1-8b",
            "llama",
            4096,
            32,
            32,
            8,
            14336,
            128256,
            False,
            131072,
            _HF.format("meta-llama/Llama-3.1-8B"),
            rope_theta=500000.0,
        ),
        DecoderArch("gpt2", "gpt2", 768, 12, 12, 12, 3072, 50257, True, 1024, _HF.format("openai-community/gpt2")),
        DecoderArch(
            "gpt2-medium", "gpt2", 1024, 24, 16, 16, 4096, 50257, True, 1024, _HF.format("openai-community/gpt2-medium")
        ),
        DecoderArch(
            "gpt2-large", "gpt2", 1280, 36, 20, 20, 5120, 50257, True, 1024, _HF.format("openai-community/gpt2-large")
        ),
        DecoderArch(
            "gpt2-xl", "gpt2", 1600, 48, 25, 25, 6400, 50257, True, 1024, _HF.format("openai-community/gpt2-xl")
        ),
    ]
}


def get_arch(name: str) -> DecoderArch:
    try:
        return ARCHS[name]
    except KeyError:
        raise ConfigError(
            f"unknown decoder architecture {name!r}: choose one of {', '.join(ARCHS)} or pass a local model directory"
        ) from None


def arch_from_hf_config(config: Any, name: str, source: str) -> DecoderArch:
    """The shape of a model loaded from a directory (its transformers config)."""
    kind = getattr(config, "model_type", "")
    if kind == "gpt2":
        return DecoderArch(
            name,
            "gpt2",
            config.n_embd,
            config.n_layer,
            config.n_head,
            config.n_head,
            config.n_inner or 4 * config.n_embd,
            config.vocab_size,
            True,
            config.n_positions,
            source,
        )
    if kind in ("llama", "qwen2"):
        return DecoderArch(
            name,
            kind,
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
            config.intermediate_size,
            config.vocab_size,
            bool(config.tie_word_embeddings),
            config.max_position_embeddings,
            source,
            float(getattr(config, "rope_theta", 10000.0)),
        )
    raise ConfigError(
        f"model {name!r} is a {kind or 'unknown'} model: llm-decoder-rank runs llama, qwen2 or gpt2 decoders"
    )


def hf_config(arch: DecoderArch) -> Any:
    """The transformers config object for an architecture (imports transformers)."""
    if arch.kind == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=arch.vocab,
            n_positions=arch.max_positions,
            n_embd=arch.hidden,
            n_layer=arch.layers,
            n_head=arch.heads,
            n_inner=arch.intermediate,
        )
    common = dict(
        vocab_size=arch.vocab,
        hidden_size=arch.hidden,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads,
        intermediate_size=arch.intermediate,
        max_position_embeddings=arch.max_positions,
        tie_word_embeddings=arch.tied_embeddings,
        rope_theta=arch.rope_theta,
    )
    if arch.kind == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**common)
    from transformers import LlamaConfig

    return LlamaConfig(**common)
