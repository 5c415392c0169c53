"""Tiny random transformer models for tests, saved and reloaded through the library's own loading path."""

from __future__ import annotations

from pathlib import Path

from bench.errors import ConfigError
from bench.models import _save_random_model, minilm_dir


def build_tiny_model(
    directory: Path,
    layers: int = 2,
    hidden: int = 32,
    heads: int = 2,
    intermediate: int = 64,
    seed: int = 0,
    tokenizer: bool = True,
    kind: str = "bert",
    name: str = "tiny-bert",
    vocab_size: int = 30522,
    initializer_range: float = 0.02,
) -> Path:
    """A tiny random model saved with `save_pretrained` (plus MiniLM's tokenizer unless `tokenizer=False`).

    Tests load it through `resolve_model(path)`, i.e. the same path a user's `--model PATH` takes.
    A larger `initializer_range` makes every layer change the output a lot (BERT's 0.02 leaves a random
    model close to its embeddings), which distillation tests need.
    """
    directory = Path(directory)
    if kind == "bert":
        from transformers import BertConfig

        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            max_position_embeddings=512,
            initializer_range=initializer_range,
        )
    elif kind == "gpt2":
        from transformers import GPT2Config

        config = GPT2Config(
            vocab_size=vocab_size,
            n_layer=layers,
            n_embd=hidden,
            n_head=heads,
            n_inner=intermediate,
            n_positions=512,
            initializer_range=initializer_range,
        )
    else:
        raise ConfigError(f"unknown tiny model kind {kind!r}: choose bert or gpt2")
    meta = {"name": name, "cost_only": True, "seed": seed, "notes": {"weights": "random (seeded), test model"}}
    _save_random_model(directory, config, seed, meta, minilm_dir() if tokenizer else None)
    return directory
