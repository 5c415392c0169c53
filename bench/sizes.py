"""How cost grows with model size: power laws fitted over measured sizes, and projections labelled `projected`.

The model, stated wherever a projection is shown:

    y = a * (N / 1e8) ** b        N = parameters of the transformer; least squares on log y = log a + b log(N/1e8)

fitted per group of cells that differ only in their model: same dataset, split, recommender, variant, device and
every other parameter. R^2 is that of the log-log fit. With three sizes the fit keeps one degree of freedom, so
the exponent's 95% interval (Student t with n - 2 degrees of freedom) is wide, and is reported as such.

A projection to 1B or 7B parameters assumes: the same architecture family (a BERT-like encoder, deeper and wider
as from MiniLM-L6 to BERT-base to BERT-large), the same hardware, runtime and threads, the same request shape
(tokens per request), and enough memory: the weights alone need N x bytes per parameter (fp32 4, fp16/bf16 2,
int8 1). A projection whose weights exceed this machine's memory is flagged: it could not run here at all.
Beyond the largest measured size the exponent is an extrapolation (real 1B-7B models change shape, and memory
bandwidth rather than arithmetic bounds them), so the flag says how far beyond.

This module holds the model (parameter counts, the power law, the records of a fit) and reads fits back from a
results file; bench.analysis.sizes fits them over a run's cells, once, at the end of the run. Size-fit metric names
never start with `projected_usd_per_1k_recs@` (the hardware projections of bench.cost), so the two kinds of
projection never mix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.measure.load_registry import OFFLINE, SINGLE_STREAM
from bench.metrics import OUTPUT_TOKENS_PER_S, USD_PER_1K
from bench.powerlaw import fit_log_log
from bench.results import CellResult, RunResult
from bench.variants.registry import FP16, FP32, INT8

__all__ = [
    "OUTPUT_TOKENS_PER_S",
    "PowerLaw",
    "SizeFit",
    "SizePoint",
    "fit_power_law",
    "fits_from_run",
    "model_parameters",
    "parameters_of",
    "size_label",
]

#: the decoder-LLM ranking recommender, whose fits and cells the report shows in a section of their own
DECODER_RANK = "llm-decoder-rank"
REFERENCE_PARAMETERS = 1e8
#: (metric, load) fitted against parameters; load "" matches rows without a load
FIT_METRICS: tuple[tuple[str, str], ...] = (
    (USD_PER_1K, OFFLINE),
    ("latency_p50_ms", SINGLE_STREAM),
    ("encode_items_s", ""),
    ("footprint_bytes", ""),
)
PROJECT_TO: dict[str, float] = {"1B": 1e9, "7B": 7e9}
#: the fewest model sizes a fit is projected from: through two points any line fits exactly, so their exponent is
#: reported (flagged as rough) but projects nothing
MIN_SIZES_TO_PROJECT = 3
#: bytes a weight takes at each peak precision (bf16 variants are held at fp16's: precision_of)
BYTES_PER_PARAMETER = {FP32: 4, FP16: 2, INT8: 1}
FIT_PREFIXES = ("size_fit_exponent@", "size_fit_r2@", "size_projected_")
GENERATED_TOKENS = "new_tokens_per_rec"


# ====================================================================== parameter counts


def transformer_parameters(
    kind: str,
    layers: int,
    hidden: int,
    intermediate: int,
    vocab: int,
    positions: int,
    type_vocab: int = 2,
    pooler: bool = True,
) -> int:
    """Exact parameter count of a Hugging Face BertModel (with pooler) or GPT2Model, from its architecture.

    Per layer both have 4 H^2 + 2 H I weights plus 9 H + I biases and layer-norm parameters. BERT adds token,
    position and token-type embeddings, an embedding layer norm and the pooler; GPT-2 token and position
    embeddings and a final layer norm (its LM head is tied to the token embeddings).
    """
    h, i = int(hidden), int(intermediate)
    per_layer = 4 * h * h + 2 * h * i + 9 * h + i
    if kind == "bert":
        embeddings = (vocab + positions + type_vocab) * h + 2 * h
        return embeddings + layers * per_layer + (h * h + h if pooler else 0)
    if kind == "gpt2":
        return (vocab + positions) * h + layers * per_layer + 2 * h
    raise ConfigError(f"unknown architecture kind {kind!r}: choose bert or gpt2")


def model_parameters(model: str) -> int | None:
    """Parameters of a named model (the cost-only architectures and MiniLM), None for anything else."""
    from bench.models import COST_ONLY, MINILM_ALIASES
    from bench.recommenders.generative.archs import ARCHS

    if model in ARCHS:  # decoder architectures from public configs
        return ARCHS[model].n_parameters()
    name = "minilm-cost-only" if model in MINILM_ALIASES else model
    arch = COST_ONLY.get(name)
    if arch is None:
        return None
    if arch.kind == "bert":
        return transformer_parameters("bert", arch.layers, arch.hidden, arch.intermediate, 30522, 512)
    return transformer_parameters("gpt2", arch.layers, arch.hidden, arch.intermediate, 50257, 1024)


def parameters_of(cell: CellResult) -> int | None:
    """A cell's transformer size: its own `n_parameters` row, else the architecture of its `model` parameter."""
    row = cell.metric("n_parameters")
    if row is not None and row.value and math.isfinite(row.value):
        return int(row.value)
    model = cell.params.get("model") if isinstance(cell.params, dict) else None
    return model_parameters(str(model)) if model is not None else None


def size_label(parameters: float) -> str:
    """22.7M, 110M, 1B, 7B."""
    if parameters >= 1e9:
        return f"{parameters / 1e9:.3g}B"
    return f"{parameters / 1e6:.3g}M"


# ====================================================================== the fit


@dataclass(frozen=True)
class PowerLaw:
    """y = coefficient * (N / reference) ** exponent, fitted in log-log space."""

    coefficient: float
    exponent: float
    r2: float | None  # None with two sizes (a line through two points always fits)
    n: int
    exponent_ci95: tuple[float, float] | None  # None with two points (no degree of freedom left)
    min_parameters: float
    max_parameters: float
    reference: float = REFERENCE_PARAMETERS

    def predict(self, parameters: float | np.ndarray) -> np.ndarray:
        return self.coefficient * (np.asarray(parameters, dtype=np.float64) / self.reference) ** self.exponent

    def formula(self, unit: str = "") -> str:
        return f"{self.coefficient:.4g}{(' ' + unit) if unit else ''} x (N / {self.reference:.0e})^{self.exponent:.3f}"


def fit_power_law(
    parameters: Sequence[float], values: Sequence[float], reference: float = REFERENCE_PARAMETERS
) -> PowerLaw:
    """Least squares of log y on log(N / reference). Needs at least two distinct sizes and positive values."""
    x = np.asarray(parameters, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"a size fit needs two 1-D sequences of equal length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ConfigError(
            "a size fit needs finite positive parameter counts and values (log-log axes); drop the "
            "failed or zero figures first"
        )
    if np.unique(x).size < 2:
        raise ConfigError(
            f"a size fit needs at least two different model sizes, got {np.unique(x).size}: "
            "run the scenario with more models"
        )
    line = fit_log_log(x / reference, y)
    b, log_a, n = line.exponent, line.log_coefficient, line.n
    ci = None
    if n > 2:
        from scipy.stats import t as student_t

        se = math.sqrt(line.ss_residual / (n - 2) / line.sxx)
        half = float(student_t.ppf(0.975, n - 2)) * se
        ci = (b - half, b + half)
    return PowerLaw(
        coefficient=math.exp(log_a),
        exponent=b,
        r2=line.r2,
        n=n,
        exponent_ci95=ci,
        min_parameters=float(x.min()),
        max_parameters=float(x.max()),
        reference=reference,
    )


# ====================================================================== over a run


@dataclass
class SizePoint:
    cell: str
    model: str
    parameters: int
    value: float
    label: str


@dataclass
class SizeFit:
    """One fitted metric of one group, with its points and projections."""

    dataset: str
    split: str
    recommender: str
    variant: str
    device: str
    metric: str
    load: str
    unit: str
    points: list[SizePoint]
    fit: PowerLaw
    projections: dict[str, float]  # size label -> projected value
    flags: dict[str, str]  # size label -> why the projection needs care
    family: str = ""  # decoder architecture family ("llama-style", "gpt2"); "" for encoders

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sizes_of(points: Sequence[SizePoint]) -> int:
    """How many different model sizes the points measure."""
    return len({p.parameters for p in points})


def fits_from_run(run: RunResult) -> list[SizeFit]:
    """The fits recorded in a run's derived section (for reports of a results file). A fit over fewer than
    MIN_SIZES_TO_PROJECT sizes comes back without projections, also from a file written before that rule."""
    out = []
    for group in run.derived.size_fits:
        for d in group.fits:
            fit = PowerLaw(
                **{
                    **d["fit"],
                    "exponent_ci95": tuple(d["fit"]["exponent_ci95"]) if d["fit"].get("exponent_ci95") else None,
                }
            )
            f = SizeFit(**{**d, "points": [SizePoint(**p) for p in d["points"]], "fit": fit})
            if sizes_of(f.points) < MIN_SIZES_TO_PROJECT:
                f.projections, f.flags = {}, {}
            out.append(f)
    return out
