"""Shared fixtures: tiny random-weight transformer models, saved and reloaded through the real loading path.

Model fixtures, and the tiny model's keyword arguments and toy split that the language-model recommender
tests share.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory) -> Path:
    """A private cache for exported/quantised/distilled models, so tests never touch the user's cache."""
    return tmp_path_factory.mktemp("recbench-model-cache")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer, written with save_pretrained."""
    from tests.support.models import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("tiny") / "tiny-bert", layers=2, hidden=32, heads=2, intermediate=64, seed=0
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir, model_cache_dir):
    """The tiny model resolved exactly as `--model PATH` would be."""
    from bench.models import resolve_model

    return resolve_model(str(tiny_model_dir), cache_dir=model_cache_dir)


@pytest.fixture(scope="session")
def tiny_texts() -> list[str]:
    """Item-title-like and profile-like texts of varied length (padding and sorting matter)."""
    titles = [
        "Toy Story (1995) Animation|Children's|Comedy",
        "GoldenEye (1995) Action|Adventure|Thriller",
        "Four Rooms (1995) Thriller",
        "Get Shorty (1995) Action|Comedy|Drama",
        "Copycat (1995) Crime|Drama",
        "Twelve Monkeys (1995) Drama|Sci-Fi",
        "Babe (1995) Children's|Comedy|Drama",
        "Dead Man Walking (1995) Drama",
        "Richard III (1995) Drama|War",
        "Seven (Se7en) (1995) Crime|Thriller",
    ]
    profiles = ["liked recently: " + "; ".join(titles[i : i + 4]) for i in range(0, 7)]
    return titles + profiles + ["", "x"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, model_cache_dir):
    """Keyword arguments for a language-model recommender on the shared tiny random BERT, loaded through the
    `--model PATH` path, with a private model cache; torch on one thread."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return {"model": str(tiny_model_dir), "cache_dir": model_cache_dir}


@pytest.fixture(scope="module")
def toy_llm_split():
    """The toy split with item texts that the language-model recommender tests fit on."""
    from tests.support.llm_data import toy_split

    return toy_split()
