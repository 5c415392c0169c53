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

What this module adds to a run (idempotent: its earlier rows and cells are replaced):
- one derived cell per group with at least two sizes: recommender `size-fit`, tag = the fitted recommender,
  label `projected`, with rows
      size_fit_exponent@{metric}          b, with its 95% interval (label estimated)
      size_fit_r2@{metric}                R^2 of the log-log fit (label estimated)
      size_projected_{metric}@{1B,7B}     a * (N/1e8)^b (label projected)
  and the measured points in extras["size_fit"];
- on a cell reporting `new_tokens_per_rec` (a generating recommender): `output_tokens_per_s` for the offline load,
  its best throughput x the tokens each recommendation generates.
Metric names never start with `projected_usd_per_1k_recs@` (the hardware projections of bench.cost), so the two
kinds of projection never mix.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from bench.errors import ConfigError
from bench.powerlaw import fit_log_log
from bench.results import CellResult, MetricRow, RunResult

SIZE_FIT_RECOMMENDER = "size-fit"
REFERENCE_PARAMETERS = 1e8
#: (metric, load) fitted against parameters; load "" matches rows without a load
FIT_METRICS: tuple[tuple[str, str], ...] = (
    ("usd_per_1k_recs", "offline"),
    ("latency_p50_ms", "single-stream"),
    ("encode_items_s", ""),
    ("footprint_bytes", ""),
)
PROJECT_TO: dict[str, float] = {"1B": 1e9, "7B": 7e9}
BYTES_PER_PARAMETER = {"fp32": 4, "fp16": 2, "int8": 1}
FIT_PREFIXES = ("size_fit_exponent@", "size_fit_r2@", "size_projected_")
GENERATED_TOKENS = "new_tokens_per_rec"
OUTPUT_TOKENS_PER_S = "output_tokens_per_s"


# ====================================================================== parameter counts

def transformer_parameters(kind: str, layers: int, hidden: int, intermediate: int, vocab: int, positions: int,
                           type_vocab: int = 2, pooler: bool = True) -> int:
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


def fit_power_law(parameters: Sequence[float], values: Sequence[float],
                  reference: float = REFERENCE_PARAMETERS) -> PowerLaw:
    """Least squares of log y on log(N / reference). Needs at least two distinct sizes and positive values."""
    x = np.asarray(parameters, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"a size fit needs two 1-D sequences of equal length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ConfigError("a size fit needs finite positive parameter counts and values (log-log axes); drop the "
                          "failed or zero figures first")
    if np.unique(x).size < 2:
        raise ConfigError(f"a size fit needs at least two different model sizes, got {np.unique(x).size}: "
                          "run the scenario with more models")
    line = fit_log_log(x / reference, y)
    b, log_a, n = line.exponent, line.log_coefficient, line.n
    ci = None
    if n > 2:
        from scipy.stats import t as student_t

        se = math.sqrt(line.ss_residual / (n - 2) / line.sxx)
        half = float(student_t.ppf(0.975, n - 2)) * se
        ci = (b - half, b + half)
    return PowerLaw(coefficient=math.exp(log_a), exponent=b, r2=line.r2, n=n, exponent_ci95=ci,
                    min_parameters=float(x.min()), max_parameters=float(x.max()), reference=reference)


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


def _metric_row(cell: CellResult, metric: str, load: str) -> MetricRow | None:
    rows = [m for m in cell.metrics if m.metric == metric and (m.load == load or not load)
            and m.value is not None and math.isfinite(m.value) and m.value > 0]
    return rows[0] if rows else None


def model_family(model: object) -> str:
    """A decoder architecture's family (Llama-style, GPT-2): one fit never mixes families; "" otherwise."""
    from bench.recommenders.generative.archs import ARCHS

    arch = ARCHS.get(str(model))
    return arch.family if arch is not None else ""


#: parameters that change how a cell is measured (how many requests are timed, what is compared), not the
#: request it serves: cells differing only in these and the model share one fit
MEASUREMENT_ONLY_PARAMS = frozenset({"timed_requests", "warmup_requests", "compare_users", "compare_candidates",
                                     "compare_rounds"})


def _group_key(cell: CellResult) -> tuple:
    params = {k: v for k, v in (cell.params or {}).items() if k != "model" and k not in MEASUREMENT_ONLY_PARAMS}
    return (cell.dataset, cell.split, cell.recommender, cell.variant, cell.device,
            json.dumps(params, sort_keys=True, default=str), model_family((cell.params or {}).get("model")))


def memory_flag(parameters: float, variant: str, memory_total_bytes: int | None) -> str:
    from bench.cost import precision_of

    precision = precision_of(variant)
    need = parameters * BYTES_PER_PARAMETER[precision]
    if memory_total_bytes and need > memory_total_bytes:
        return (f"{precision} weights alone need {need / 1e9:.1f} GB, more than this machine's "
                f"{memory_total_bytes / 2**30:.1f} GiB: could not run here")
    return ""


def size_fits(run: RunResult, metrics: Sequence[tuple[str, str]] = FIT_METRICS,
              project_to: dict[str, float] = PROJECT_TO) -> list[SizeFit]:
    """Every (group, metric) with at least two model sizes, fitted and projected."""
    memory = ((run.provenance or {}).get("machine") or {}).get("memory_total_bytes")
    groups: dict[tuple, list[tuple[CellResult, int]]] = {}
    for cell in run.cells:
        if cell.status != "ok" or cell.recommender == SIZE_FIT_RECOMMENDER:
            continue
        n = parameters_of(cell)
        if n is not None:
            groups.setdefault(_group_key(cell), []).append((cell, n))
    fits = []
    for key, members in groups.items():
        if len({n for _, n in members}) < 2:
            continue
        for metric, load in metrics:
            points = []
            for cell, n in sorted(members, key=lambda m: m[1]):
                row = _metric_row(cell, metric, load)
                if row is not None:
                    points.append(SizePoint(cell.cell, str(cell.params.get("model", "")), n, row.value, row.label))
            if len({p.parameters for p in points}) < 2:
                continue
            fit = fit_power_law([p.parameters for p in points], [p.value for p in points])
            unit = next((m.unit for c, _ in members for m in c.metrics if m.metric == metric), "")
            projections, flags = {}, {}
            for label, size in project_to.items():
                projections[label] = float(fit.predict(size))
                where = (f"{size / fit.max_parameters:.1f}x beyond the largest" if size > fit.max_parameters
                         else "within the measured range (interpolated; not itself measured)")
                why = [f"power law fitted on {fit.n} sizes ({size_label(fit.min_parameters)}-"
                       f"{size_label(fit.max_parameters)}); {where}"]
                mem = memory_flag(size, key[3], memory)
                if mem:
                    why.append(mem)
                flags[label] = "; ".join(why)
            fits.append(SizeFit(dataset=key[0], split=key[1], recommender=key[2], variant=key[3], device=key[4],
                                metric=metric, load=load, unit=unit, points=points, fit=fit,
                                projections=projections, flags=flags, family=key[6]))
    return fits


def _fit_cell(fits: list[SizeFit]) -> CellResult:
    f0 = fits[0]
    tag = f0.recommender + (f" {f0.family}" if f0.family else "")
    cell = CellResult(cell=f"{f0.dataset}/{f0.split}/{SIZE_FIT_RECOMMENDER}[{tag}]/{f0.variant}/{f0.device}",
                      dataset=f0.dataset, split=f0.split, recommender=SIZE_FIT_RECOMMENDER, variant=f0.variant,
                      device=f0.device, label="projected",
                      params={"fitted_recommender": f0.recommender, **({"family": f0.family} if f0.family else {})})
    for f in fits:
        ci = f.fit.exponent_ci95
        cell.add(f"size_fit_exponent@{f.metric}", f.fit.exponent, "", load=f.load, n=f.fit.n, label="estimated",
                 ci95_low=ci[0] if ci else None, ci95_high=ci[1] if ci else None,
                 flag="" if f.fit.n > 3 else f"{f.fit.n} sizes: {f.fit.n - 2} degree(s) of freedom, a rough exponent")
        if f.fit.r2 is not None:
            cell.add(f"size_fit_r2@{f.metric}", f.fit.r2, "", load=f.load, n=f.fit.n, label="estimated",
                     flag="" if f.fit.n > 2 else "two points: any line fits exactly")
        for label, value in f.projections.items():
            cell.add(f"size_projected_{f.metric}@{label}", value, f.unit, load=f.load, label="projected",
                     flag=f.flags[label])
    cell.extras["size_fit"] = {
        "model": "y = a * (N / 1e8)^b, least squares in log-log space; N = transformer parameters",
        "assumptions": ("same architecture family, hardware, runtime, threads and request shape; memory permitting "
                        "(weights need N x 4 bytes in fp32, 2 in fp16/bf16, 1 in int8)"),
        "fits": [f.to_dict() for f in fits]}
    return cell


def _add_generation_rates(run: RunResult) -> None:
    """output_tokens_per_s (offline) = best offline throughput x new tokens per recommendation."""
    from bench.cost import best_throughput

    for cell in run.cells:
        tokens = cell.metric(GENERATED_TOKENS)
        if cell.status == "failed" or tokens is None or not tokens.value:
            continue
        cell.metrics[:] = [m for m in cell.metrics if not (m.metric == OUTPUT_TOKENS_PER_S and m.load == "offline")]
        throughput = best_throughput(cell)
        if throughput is None:
            continue
        scale = tokens.value
        cell.metrics.append(MetricRow(
            OUTPUT_TOKENS_PER_S, throughput.value * scale, "tokens/s", load="offline", n=throughput.n,
            ci95_low=throughput.ci95_low * scale if throughput.ci95_low else None,
            ci95_high=throughput.ci95_high * scale if throughput.ci95_high else None,
            flag=f"best offline throughput x {scale:g} new tokens per recommendation", label=throughput.label))


def add_size_figures(run: RunResult) -> list[SizeFit]:
    """Replace this module's rows and cells in `run` with fresh ones (see the module docstring)."""
    run.cells[:] = [c for c in run.cells if c.recommender != SIZE_FIT_RECOMMENDER]
    _add_generation_rates(run)
    fits = size_fits(run)
    groups: dict[tuple, list[SizeFit]] = {}
    for f in fits:
        groups.setdefault((f.dataset, f.split, f.recommender, f.variant, f.device, f.family), []).append(f)
    for members in groups.values():
        run.cells.append(_fit_cell(members))
    return fits


def fits_from_run(run: RunResult) -> list[SizeFit]:
    """The fits recorded in a run's size-fit cells (for reports of a results file)."""
    out = []
    for cell in run.cells:
        if cell.recommender != SIZE_FIT_RECOMMENDER:
            continue
        for d in cell.extras.get("size_fit", {}).get("fits", []):
            fit = PowerLaw(**{**d["fit"], "exponent_ci95": tuple(d["fit"]["exponent_ci95"])
                              if d["fit"].get("exponent_ci95") else None})
            out.append(SizeFit(**{**d, "points": [SizePoint(**p) for p in d["points"]], "fit": fit}))
    return out
