"""How a cost grows with the catalogue: fit cost = a * n^b by least squares in log-log space.

    fit_power_law(n, y) -> PowerFit                      one curve (b, a, R^2, number of points)
    scaling_points(run, metrics=GROWTH_METRICS) -> list[GrowthPoints]   per (recommender, variant, metric)
    fit_run(run) -> list[GrowthFit]                      the fits (bench.analysis records them in the results)
    fits_of(run) -> list[GrowthFit]                      the recorded fits, which the report draws and tabulates

A straight line through (log n, log y) has slope b, the growth exponent: b = 1 is linear in the catalogue,
b = 2 quadratic (e.g. a dense item x item model), b = 0 flat, b < 0 falls with n (throughput). R^2 is the
share of the log-variance the line explains, so it says how well one power law describes the points.
A fit needs at least two points with positive values; R^2 is only reported from three points on (through
two points any line fits exactly, which says nothing).

Reads a RunResult only: the catalogue size of each cell comes from its provenance (`n_items`), written by
the cell from the dataset it loaded, so any dataset family that varies in size can be fitted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.measure.load_registry import OFFLINE
from bench.metrics import USD_PER_1K
from bench.powerlaw import fit_log_log
from bench.results import CellResult, MetricRow, RunResult
from bench.variants.registry import NO_VARIANT

#: (metric, load, how to pick the row) drawn against n_items by the report; units come from the rows
GROWTH_METRICS: tuple[tuple[str, str | None], ...] = (
    ("fit_s", None),
    ("encode_items_s", None),
    ("throughput_users_per_s", OFFLINE),
    ("peak_rss_bytes", None),
    (USD_PER_1K, OFFLINE),
)
#: a run has a scaling dimension when one (recommender, variant) ran on at least this many catalogue sizes
MIN_SIZES_FOR_SCALING = 3


@dataclass(frozen=True)
class PowerFit:
    """y = a * n^b fitted on log-log axes. `r2` is None with fewer than three points."""

    exponent: float  # b
    coefficient: float  # a
    r2: float | None
    n_points: int

    def predict(self, n: float | np.ndarray) -> np.ndarray:
        return self.coefficient * np.asarray(n, dtype=np.float64) ** self.exponent

    def describe(self) -> str:
        r2 = "n/a" if self.r2 is None else f"{self.r2:.3f}"
        return f"b={self.exponent:.2f}, R²={r2}, {self.n_points} pts"


def fit_power_law(n: Sequence[float], y: Sequence[float]) -> PowerFit:
    """Least squares of log y = log a + b log n. Raises ConfigError on fewer than two usable points.

    Points with n <= 0 or y <= 0 (or not finite) cannot sit on log axes and are dropped; at least two
    distinct n must remain.
    """
    n_arr = np.asarray(n, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.float64)
    if n_arr.shape != y_arr.shape or n_arr.ndim != 1:
        raise ConfigError(f"fit_power_law needs two 1-D sequences of equal length, got {n_arr.shape} and {y_arr.shape}")
    ok = np.isfinite(n_arr) & np.isfinite(y_arr) & (n_arr > 0) & (y_arr > 0)
    if np.unique(n_arr[ok]).size < 2:
        raise ConfigError(
            f"a growth fit needs positive values at two or more sizes, got {int(ok.sum())} usable "
            "point(s); run the scenario at more sizes"
        )
    line = fit_log_log(n_arr[ok], y_arr[ok])
    return PowerFit(line.exponent, math.exp(line.log_coefficient), line.r2, line.n)


@dataclass
class GrowthPoints:
    """One curve's raw points: (n_items, value) per cell, in increasing n."""

    recommender: str  # includes a [tag] when the cell had one
    variant: str
    metric: str
    unit: str
    n_items: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # measured / estimated / cost-only, per point
    cells: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.recommender if self.variant in ("", NO_VARIANT) else f"{self.recommender} {self.variant}"


@dataclass
class GrowthFit:
    points: GrowthPoints
    fit: PowerFit | None  # None when fewer than two usable points
    #: catalogue sizes where this (recommender, variant) failed or did not run, with the reason
    missing: dict[int, str] = field(default_factory=dict)


def _n_items(cell: CellResult) -> int | None:
    prov = cell.provenance if isinstance(cell.provenance, dict) else {}
    value = prov.get("n_items")
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    return _n_items_from_name(cell.dataset)


def _n_items_from_name(dataset: str) -> int | None:
    """A failed cell has no provenance: read the size from a synthetic spec (synthetic:...,items=N,...)."""
    if not dataset.startswith("synthetic:"):
        return None
    from bench.data.synthetic import parse_spec

    try:
        return parse_spec(dataset).n_items
    except ConfigError:  # a malformed spec names no size
        return None


def _recommender_key(cell: CellResult) -> str:
    parts = cell.cell.split("/")
    return parts[2] if len(parts) >= 5 else cell.recommender  # keeps a [tag]


def _row(cell: CellResult, metric: str, load: str | None) -> MetricRow | None:
    rows = [
        m
        for m in cell.metrics
        if m.metric == metric
        and (load is None or m.load in (load, ""))
        and m.value is not None
        and math.isfinite(m.value)
    ]
    if not rows:
        return None
    # throughput: the offline sweep's best batch (what cost is computed from); others have one row
    return max(rows, key=lambda m: m.value) if metric.startswith("throughput") else rows[0]


#: statuses whose figures are measured: a gated cell (a variant below the quality gate) was measured like
#: any other; only its cost does not count, and the cost rows are absent from it already
MEASURED_STATUSES = ("ok", "gated")


def scaling_points(run: RunResult, metrics: Iterable[tuple[str, str | None]] = GROWTH_METRICS) -> list[GrowthPoints]:
    """Every (recommender, variant, metric) with its points over catalogue sizes, measured cells only."""
    curves: dict[tuple[str, str, str], GrowthPoints] = {}
    for cell in run.cells:
        if cell.status not in MEASURED_STATUSES or cell.device == "api":
            continue
        n = _n_items(cell)
        if n is None:
            continue
        for metric, load in metrics:
            row = _row(cell, metric, load)
            if row is None:
                continue
            key = (_recommender_key(cell), cell.variant, metric)
            pts = curves.setdefault(key, GrowthPoints(key[0], cell.variant, metric, row.unit))
            pts.n_items.append(n)
            pts.values.append(float(row.value))
            pts.labels.append(row.label)
            pts.cells.append(cell.cell)
    for pts in curves.values():
        order = np.argsort(pts.n_items, kind="stable")
        for attr in ("n_items", "values", "labels", "cells"):
            setattr(pts, attr, [getattr(pts, attr)[i] for i in order])
    return list(curves.values())


#: metrics a gated cell has no figure for (its cost does not count)
COST_METRICS = (USD_PER_1K,)


def _missing_sizes(run: RunResult, statuses: tuple[str, ...]) -> dict[tuple[str, str], dict[int, str]]:
    """(recommender, variant) -> {n_items: why no figure} for cells with one of these statuses."""
    out: dict[tuple[str, str], dict[int, str]] = {}
    for cell in run.cells:
        if cell.status not in statuses:
            continue
        n = _n_items(cell)
        if n is not None:
            out.setdefault((_recommender_key(cell), cell.variant), {})[n] = f"{cell.status}: {cell.error or ''}".strip()
    return out


def fit_run(run: RunResult, metrics: Iterable[tuple[str, str | None]] = GROWTH_METRICS) -> list[GrowthFit]:
    """A power-law fit per curve of `scaling_points`; curves with one usable point keep fit=None.

    `missing` holds the failed sizes of every curve, and for cost curves also the gated sizes."""
    failed = _missing_sizes(run, ("failed",))
    failed_or_gated = _missing_sizes(run, ("failed", "gated"))
    fits = []
    for pts in scaling_points(run, metrics):
        try:
            fit = fit_power_law(pts.n_items, pts.values)
        except ConfigError:
            fit = None
        missing = failed_or_gated if pts.metric in COST_METRICS else failed
        fits.append(GrowthFit(pts, fit, dict(missing.get((pts.recommender, pts.variant), {}))))
    return fits


def to_records(fits: list[GrowthFit]) -> list[dict[str, Any]]:
    """The fits as plain records, for the results file's derived section."""
    return [asdict(f) for f in fits]


def from_records(records: list[dict[str, Any]]) -> list[GrowthFit]:
    """The fits a results file recorded (JSON turned the sizes of `missing` into strings: back to integers)."""
    return [
        GrowthFit(
            points=GrowthPoints(**r["points"]),
            fit=PowerFit(**r["fit"]) if r.get("fit") else None,
            missing={int(n): why for n, why in (r.get("missing") or {}).items()},
        )
        for r in records
    ]


def fits_of(run: RunResult) -> list[GrowthFit]:
    """The run's growth fits as its analysis step recorded them; a file from before they were recorded (schema 1)
    has them made from its cells here, by the same function."""
    return from_records(run.derived.growth) if run.derived.growth is not None else fit_run(run)


def catalogue_sizes(run: RunResult) -> list[int]:
    """Distinct catalogue sizes of the run's cells (failed cells included), ascending."""
    return sorted({n for c in run.cells if c.device != "api" and (n := _n_items(c)) is not None})


def has_scaling_dimension(run: RunResult) -> bool:
    """True when some (recommender, variant) was measured at MIN_SIZES_FOR_SCALING or more catalogue sizes."""
    sizes: dict[tuple[str, str], set[int]] = {}
    for cell in run.cells:
        n = _n_items(cell)
        if cell.status in MEASURED_STATUSES and cell.device != "api" and n is not None:
            sizes.setdefault((_recommender_key(cell), cell.variant), set()).add(n)
    return any(len(s) >= MIN_SIZES_FOR_SCALING for s in sizes.values())


def check_sizes(sizes: Sequence[int], what: str = "catalogue sizes") -> tuple[int, ...]:
    """A scenario's size list: non-empty, positive integers, strictly increasing; else one ConfigError line."""
    values = tuple(sizes) if sizes is not None else ()
    if not values:
        raise ConfigError(f"{what} list is empty: give at least one size, e.g. (1000, 3000, 10000)")
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0 for v in values):
        raise ConfigError(f"{what} {list(values)} must be positive integers, e.g. (1000, 3000, 10000)")
    bad = next((i for i in range(1, len(values)) if values[i] <= values[i - 1]), None)
    if bad is not None:
        raise ConfigError(
            f"{what} {list(values)} are not strictly increasing ({values[bad - 1]} then "
            f"{values[bad]}): list each size once, smallest first"
        )
    return tuple(int(v) for v in values)
