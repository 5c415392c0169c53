"""The run context: how the cell runs a recommender (variant, device, threads, seed), passed in one way.

The cell builds every recommender (and every online strategy) as `cls.from_context(params, context)`:
`params` are the scenario's hyper-parameters, `context` the cell's `RunContext`. A class whose constructor
takes some of the context's fields names them in `run_context_params`; `from_context` fills exactly those
(a value the scenario sets in `params` wins), so the harness never guesses from a signature. A class that
needs the context some other way overrides `from_context`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from bench.errors import ConfigError

T = TypeVar("T", bound="TakesRunContext")

#: the fields of RunContext a constructor may take
CONTEXT_FIELDS = ("variant", "device", "threads", "seed")


@dataclass(frozen=True)
class RunContext:
    """How one cell runs its recommender."""

    #: the variant string (e.g. "distilled+onnx-int8"), or None for a cell that runs no transformer
    variant: str | None = None
    device: str = "cpu"
    threads: int = 1
    seed: int = 0

    def values(self) -> dict[str, Any]:
        return {"variant": self.variant, "device": self.device, "threads": self.threads, "seed": self.seed}


class TakesRunContext:
    """Declares which run-context fields a class's constructor takes, and builds it from a context."""

    #: constructor parameters filled from the cell's RunContext (a subset of CONTEXT_FIELDS)
    run_context_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_context(cls: type[T], params: dict[str, Any], context: RunContext) -> T:
        """An instance from the scenario's `params` plus the context fields this class declares."""
        unknown = sorted(set(cls.run_context_params) - set(CONTEXT_FIELDS))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}.run_context_params names {unknown}: use only {', '.join(CONTEXT_FIELDS)}"
            )
        given = context.values()
        implied = {k: given[k] for k in cls.run_context_params if k not in params and given[k] is not None}
        return cls(**params, **implied)


def build_in_context(cls: type, params: dict[str, Any], context: RunContext) -> Any:
    """`cls.from_context(params, context)` for a registered class; a class outside the protocol fails in one line."""
    if not (isinstance(cls, type) and issubclass(cls, TakesRunContext)):
        raise ConfigError(
            f"{getattr(cls, '__name__', cls)!r} is not a bench Recommender (or online Strategy): "
            "subclass bench.recommenders.base.Recommender so that the cell can build it"
        )
    return cls.from_context(params, context)
