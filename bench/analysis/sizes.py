"""Fitting cost against model size over a run's cells (the model and its assumptions: bench.sizes).

What this adds to a run (idempotent: its earlier rows and groups are replaced):
- `run.derived.size_fits`: one SizeFitGroup per group of cells that differ only in their model, with at least two
  sizes, label `projected`, with rows
      size_fit_exponent@{metric}          b, with its 95% interval (label estimated)
      size_fit_r2@{metric}                R^2 of the log-log fit (label estimated)
      size_projected_{metric}@{1B,7B}     a * (N/1e8)^b (label projected), only from fits over at least
                                          MIN_SIZES_TO_PROJECT sizes (any line fits two points), flagged
                                          interpolated or how far beyond the measured range
  and the measured points in its `fits`;
- on a cell reporting `new_tokens_per_rec` (a generating recommender): `output_tokens_per_s` for the offline load,
  its best throughput x the tokens each recommendation generates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from bench.measure.load_registry import OFFLINE
from bench.metrics import OUTPUT_TOKENS_PER_S
from bench.results import SIZE_FIT_RECOMMENDER, CellResult, MetricRow, RunResult, SizeFitGroup, best_throughput
from bench.sizes import (
    BYTES_PER_PARAMETER,
    FIT_METRICS,
    GENERATED_TOKENS,
    MIN_SIZES_TO_PROJECT,
    PROJECT_TO,
    SizeFit,
    SizePoint,
    fit_power_law,
    parameters_of,
    size_label,
    sizes_of,
)
from bench.variants.registry import precision_of


def _metric_row(cell: CellResult, metric: str, load: str) -> MetricRow | None:
    rows = [
        m
        for m in cell.metrics
        if m.metric == metric
        and (m.load == load or not load)
        and m.value is not None
        and math.isfinite(m.value)
        and m.value > 0
    ]
    return rows[0] if rows else None


def model_family(model: object) -> str:
    """A decoder architecture's family (Llama-style, GPT-2): one fit never mixes families; "" otherwise."""
    from bench.recommenders.generative.archs import ARCHS

    arch = ARCHS.get(str(model))
    return arch.family if arch is not None else ""


#: parameters that change how a cell is measured (how many requests are timed, what is compared), not the
#: request it serves: cells differing only in these and the model share one fit
MEASUREMENT_ONLY_PARAMS = frozenset(
    {"timed_requests", "warmup_requests", "compare_users", "compare_candidates", "compare_rounds"}
)


def _group_key(cell: CellResult) -> tuple:
    params = {k: v for k, v in (cell.params or {}).items() if k != "model" and k not in MEASUREMENT_ONLY_PARAMS}
    return (
        cell.dataset,
        cell.split,
        cell.recommender,
        cell.variant,
        cell.device,
        json.dumps(params, sort_keys=True, default=str),
        model_family((cell.params or {}).get("model")),
    )


def memory_flag(parameters: float, variant: str, memory_total_bytes: int | None) -> str:
    precision = precision_of(variant)
    need = parameters * BYTES_PER_PARAMETER[precision]
    if memory_total_bytes and need > memory_total_bytes:
        return (
            f"{precision} weights alone need {need / 1e9:.1f} GB, more than this machine's "
            f"{memory_total_bytes / 2**30:.1f} GiB: could not run here"
        )
    return ""


def size_fits(
    run: RunResult, metrics: Sequence[tuple[str, str]] = FIT_METRICS, project_to: dict[str, float] = PROJECT_TO
) -> list[SizeFit]:
    """Every (group, metric) with at least two model sizes, fitted; projected where it has at least
    MIN_SIZES_TO_PROJECT."""
    memory = ((run.provenance or {}).get("machine") or {}).get("memory_total_bytes")
    groups: dict[tuple, list[tuple[CellResult, int]]] = {}
    for cell in run.cells:
        if cell.status != "ok":
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
            if sizes_of(points) < 2:
                continue
            fit = fit_power_law([p.parameters for p in points], [p.value for p in points])
            unit = next((m.unit for c, _ in members for m in c.metrics if m.metric == metric), "")
            projections, flags = {}, {}
            targets = project_to if sizes_of(points) >= MIN_SIZES_TO_PROJECT else {}
            for label, size in targets.items():
                projections[label] = float(fit.predict(size))
                if size > fit.max_parameters:
                    where = f"{size / fit.max_parameters:.1f}x beyond the largest"
                elif size < fit.min_parameters:
                    where = f"{fit.min_parameters / size:.1f}x below the smallest"
                else:
                    where = "within the measured range (interpolated; not itself measured)"
                why = [
                    f"power law fitted on {fit.n} sizes ({size_label(fit.min_parameters)}-"
                    f"{size_label(fit.max_parameters)}); {where}"
                ]
                mem = memory_flag(size, key[3], memory)
                if mem:
                    why.append(mem)
                flags[label] = "; ".join(why)
            fits.append(
                SizeFit(
                    dataset=key[0],
                    split=key[1],
                    recommender=key[2],
                    variant=key[3],
                    device=key[4],
                    metric=metric,
                    load=load,
                    unit=unit,
                    points=points,
                    fit=fit,
                    projections=projections,
                    flags=flags,
                    family=key[6],
                )
            )
    return fits


def _fit_group(fits: list[SizeFit]) -> SizeFitGroup:
    f0 = fits[0]
    tag = f0.recommender + (f" {f0.family}" if f0.family else "")
    rows: list[MetricRow] = []
    for f in fits:
        ci = f.fit.exponent_ci95
        rows.append(
            MetricRow(
                f"size_fit_exponent@{f.metric}",
                f.fit.exponent,
                "",
                load=f.load,
                n=f.fit.n,
                label="estimated",
                ci95_low=ci[0] if ci else None,
                ci95_high=ci[1] if ci else None,
                flag="" if f.fit.n > 3 else f"{f.fit.n} sizes: {f.fit.n - 2} degree(s) of freedom, a rough exponent",
            )
        )
        if f.fit.r2 is not None:
            rows.append(
                MetricRow(
                    f"size_fit_r2@{f.metric}",
                    f.fit.r2,
                    "",
                    load=f.load,
                    n=f.fit.n,
                    label="estimated",
                    flag="" if f.fit.n > 2 else "two points: any line fits exactly",
                )
            )
        for label, value in f.projections.items():
            rows.append(
                MetricRow(
                    f"size_projected_{f.metric}@{label}",
                    value,
                    f.unit,
                    load=f.load,
                    label="projected",
                    flag=f.flags[label],
                )
            )
    return SizeFitGroup(
        name=f"{f0.dataset}/{f0.split}/{SIZE_FIT_RECOMMENDER}[{tag}]/{f0.variant}/{f0.device}",
        dataset=f0.dataset,
        split=f0.split,
        recommender=f0.recommender,
        family=f0.family,
        variant=f0.variant,
        device=f0.device,
        label="projected",
        metrics=rows,
        model="y = a * (N / 1e8)^b, least squares in log-log space; N = transformer parameters",
        assumptions=(
            "same architecture family, hardware, runtime, threads and request shape; memory permitting "
            "(weights need N x 4 bytes in fp32, 2 in fp16/bf16, 1 in int8)"
        ),
        fits=[f.to_dict() for f in fits],
    )


def _add_generation_rates(run: RunResult) -> None:
    """output_tokens_per_s (offline) = best offline throughput x new tokens per recommendation."""
    for cell in run.cells:
        tokens = cell.metric(GENERATED_TOKENS)
        if cell.status == "failed" or tokens is None or not tokens.value:
            continue
        cell.metrics[:] = [m for m in cell.metrics if not (m.metric == OUTPUT_TOKENS_PER_S and m.load == OFFLINE)]
        throughput = best_throughput(cell)
        if throughput is None:
            continue
        scale = tokens.value
        cell.metrics.append(
            MetricRow(
                OUTPUT_TOKENS_PER_S,
                throughput.value * scale,
                "tokens/s",
                load=OFFLINE,
                n=throughput.n,
                ci95_low=throughput.ci95_low * scale if throughput.ci95_low else None,
                ci95_high=throughput.ci95_high * scale if throughput.ci95_high else None,
                flag=f"best offline throughput x {scale:g} new tokens per recommendation",
                label=throughput.label,
            )
        )


def add_size_figures(run: RunResult) -> list[SizeFit]:
    """Replace this module's rows and size-fit groups in `run` with fresh ones (see the module docstring)."""
    _add_generation_rates(run)
    fits = size_fits(run)
    groups: dict[tuple, list[SizeFit]] = {}
    for f in fits:
        groups.setdefault((f.dataset, f.split, f.recommender, f.variant, f.device, f.family), []).append(f)
    run.derived.size_fits = [_fit_group(members) for members in groups.values()]
    return fits
