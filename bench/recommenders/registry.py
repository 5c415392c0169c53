"""Name -> recommender factory. A new recommender is one module plus one line here, or, from outside the
package, one `register(Entry(...))` call in a plugin module (see bench.plugins).

Factories import lazily so that running classic CF never imports torch.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from bench.errors import ConfigError
from bench.recommenders.context import RunContext, build_in_context


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:Class"
    family: str  # "classic" | "llm" | "test"
    summary: str

    def cls(self) -> type[Any]:
        """The class `target` names (build_in_context checks that it follows the Recommender protocol)."""
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)

    def parameters(self) -> list[str]:
        """The hyper-parameters its constructor takes."""
        return [p for p in inspect.signature(self.cls().__init__).parameters if p != "self"]

    def check_params(self, params: dict[str, Any]) -> None:
        unknown = sorted(set(params) - set(self.parameters()))
        if unknown:
            raise ConfigError(
                f"recommender {self.name!r} has no parameter {', '.join(map(repr, unknown))}: "
                f"its parameters are {', '.join(self.parameters()) or '(none)'}"
            )

    def build(self, **params: Any) -> Any:
        self.check_params(params)
        return self.cls()(**params)

    def build_in(self, context: RunContext, params: dict[str, Any]) -> Any:
        """The recommender as a cell runs it: the scenario's params plus the run context's declared fields."""
        self.check_params(params)
        return build_in_context(self.cls(), params, context)


REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("pop", "bench.recommenders.classic.pop:Pop", "classic", "most popular unseen items"),
        Entry("itemknn", "bench.recommenders.classic.itemknn:ItemKNN", "classic", "item-item cosine, k neighbours"),
        Entry("userknn", "bench.recommenders.classic.userknn:UserKNN", "classic", "user-user cosine, k neighbours"),
        Entry(
            "biasedmf",
            "bench.recommenders.classic.biasedmf:BiasedMF",
            "classic",
            "mu + b_u + b_i + p_u.q_i, trained on ratings (MSE)",
        ),
        Entry("ease", "bench.recommenders.classic.ease:EASE", "classic", "EASE^R closed form, lambda"),
        Entry("ials", "bench.recommenders.classic.ials:IALS", "classic", "implicit ALS via the `implicit` library"),
        Entry(
            "llm-two-tower",
            "bench.recommenders.llm.two_tower:TwoTower",
            "llm",
            "user-profile and item-text towers, similarity top-k",
        ),
        Entry(
            "llm-pairwise",
            "bench.recommenders.llm.pairwise:Pairwise",
            "llm",
            "the article's BERT two-tower rating model (MSE), naive or cached execution",
        ),
        Entry(
            "llm-rerank",
            "bench.recommenders.llm.rerank:Rerank",
            "llm",
            "classic retrieval of top N, cross-encoder re-ranking",
        ),
        Entry(
            "llm-hybrid",
            "bench.recommenders.llm.hybrid:Hybrid",
            "llm",
            "CF (EASE) for items with history, the two-tower language model for cold items",
        ),
        Entry(
            "llm-explain",
            "bench.recommenders.llm.explain:Explain",
            "llm",
            "classic retrieval of top k, then a decoder generates a fixed-length explanation per list",
        ),
        Entry(
            "llm-generative",
            "bench.recommenders.generative.trained:TrainedGenerative",
            "llm",
            "a small causal transformer trained here on item sequences: next item over the whole catalogue",
        ),
        Entry(
            "llm-decoder-rank",
            "bench.recommenders.generative.rank:DecoderRank",
            "llm",
            "classic retrieval of N candidates, a decoder LLM ranks them (pointwise, shared-prefix or listwise)",
        ),
        # a measurement probe, not a test double: production scenarios time the harness with it
        Entry("noop", "bench.recommenders.probe:NoOp", "test", "does nothing: measures the harness itself"),
    ]
}


def register(entry: Entry) -> Entry:
    """Add a recommender (a plugin module calls this at import). Registering the same class again (the plugin
    imported under another module name) is a no-op; another class under a taken name fails in one line."""
    known = REGISTRY.get(entry.name)
    if known is not None and known.target.split(":")[-1] != entry.target.split(":")[-1]:
        raise ConfigError(f"recommender {entry.name!r} is already registered ({known.target}); pick another name")
    REGISTRY.setdefault(entry.name, entry)
    return REGISTRY[entry.name]


def get(name: str) -> Entry:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(n for n, e in REGISTRY.items() if e.family != "test"))
        raise ConfigError(f"unknown recommender {name!r}: choose one of {known} (see `recbench list`)") from None
