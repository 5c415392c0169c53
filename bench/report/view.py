"""What a report shows of each cell: short unique names, the headline figures, and number formatting.

Reads a RunResult only; knows nothing of how figures were measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench import metrics
from bench.analysis.paired import QUALITY, Comparison, compare_cells
from bench.measure.load_registry import OFFLINE, SERVER, SINGLE_STREAM
from bench.results import (
    HOSTED_DEVICE,
    HOSTED_RECOMMENDER,
    CellResult,
    HostedLine,
    MetricRow,
    RunResult,
    best_throughput,
    with_derived,
)
from bench.variants.registry import FP32, NO_VARIANT

QUALITY_LABEL = "NDCG@10"
REFERENCE_VARIANT = FP32
PREFERRED_CLASSIC = "ease"  # the classic reference of headline comparisons when present


#: the figures a view holds as one row each (CellView.row)
FigureName = Literal[
    "quality",
    "recall",
    "throughput",
    "usd",
    "usd_server",
    "hosted_usd",
    "peak_rss",
    "footprint",
    "one_time_usd",
    "one_time_per_1k",
]


@dataclass
class CellView:
    cell: CellResult
    name: str  # short, unique within the run
    family: str  # classic | llm | hosted | test | other
    quality: MetricRow | None = None
    recall: MetricRow | None = None
    throughput: MetricRow | None = None  # best offline
    usd: MetricRow | None = None  # measured, offline load
    usd_server: MetricRow | None = None
    hosted_usd: MetricRow | None = None
    latency: dict[str, MetricRow] = field(default_factory=dict)  # p50/p90/p99 single-stream
    latency_samples_ms: np.ndarray | None = None
    peak_rss: MetricRow | None = None
    footprint: MetricRow | None = None
    one_time_usd: MetricRow | None = None
    one_time_per_1k: MetricRow | None = None
    projected: dict[str, MetricRow] = field(default_factory=dict)  # instance -> row

    @property
    def ok(self) -> bool:
        return self.cell.status == "ok"

    @property
    def status_text(self) -> str:
        """The cell's status, with the reason where it has one (failed, gated)."""
        return f"{self.cell.status}: {self.cell.error}" if self.cell.error else self.cell.status

    @property
    def cost_only(self) -> bool:
        return self.cell.label == "cost-only"

    @property
    def has_quality(self) -> bool:
        return self.quality is not None and not self.cost_only and self.family != "hosted"

    @property
    def recommender(self) -> str:
        return self.cell.recommender

    def row(self, figure: FigureName) -> MetricRow:
        """One of the view's figures, for a caller that selected views having it (`v.usd is not None`,
        `v.has_quality`): a missing one is a bug there, raised as a LookupError naming the view and the figure."""
        row = getattr(self, figure)
        if not isinstance(row, MetricRow):
            raise LookupError(f"{self.name}: no {figure} figure")
        return row

    @property
    def variant(self) -> str:
        return self.cell.variant


def family_of(cell: CellResult) -> str:
    """classic | llm | test as the results record it (from the recommender's registry entry when the cell ran);
    "other" for a cell without one (it failed before its recommender was built)."""
    return cell.family or "other"


def hosted_as_cell(line: HostedLine) -> CellResult:
    """A hosted-API line drawn with the same machinery as cells (tables, charts, headlines): a view of the run's
    derived section for rendering only, never one of its cells."""
    return CellResult(
        cell=line.name,
        dataset=line.dataset,
        split=line.split,
        recommender=HOSTED_RECOMMENDER,
        variant=line.entry,
        device=HOSTED_DEVICE,
        label=line.label,
        family="hosted",
        metrics=list(line.metrics),
        extras={"hosted": line.workload, "cost": line.cost},
    )


def _finite(row: MetricRow | None) -> MetricRow | None:
    return row if row is not None and row.value is not None and math.isfinite(row.value) else None


def _rec_name(cell: CellResult) -> str:
    parts = cell.cell.split("/")
    return parts[2] if len(parts) >= 5 else cell.recommender  # keeps a [tag]


def build_views(run: RunResult) -> list[CellView]:
    """One view per cell, with its derived rows (bench.results.with_derived), then one per hosted-API line of the
    run's derived section."""
    run = with_derived(run)
    measured = run.cells
    hosted = [hosted_as_cell(line) for line in run.derived.hosted]
    vary = {attr: len({getattr(c, attr) for c in measured or hosted}) > 1 for attr in ("dataset", "split", "device")}
    vary_hosted = {"dataset": len({c.dataset for c in hosted}) > 1, "split": False}
    views = []
    for c in [*measured, *hosted]:
        is_hosted = c.family == "hosted"
        if is_hosted:
            name = f"hosted {c.variant}"
        else:
            bits = [_rec_name(c)]
            if c.variant and c.variant != NO_VARIANT:
                bits.append(c.variant)
            if vary["device"]:
                bits.append(c.device)
            name = " ".join(bits)
        vary_here = vary_hosted if is_hosted else vary
        prefix = "/".join(getattr(c, a) for a in ("dataset", "split") if vary_here[a])
        if prefix:
            name = f"{prefix} {name}"
        v = CellView(cell=c, name=name, family=family_of(c))
        v.quality = _finite(c.metric(QUALITY))
        v.recall = _finite(c.metric("recall@10"))
        v.throughput = best_throughput(c)
        v.usd = _finite(c.metric(metrics.USD_PER_1K, load=OFFLINE))
        v.usd_server = _finite(c.metric(metrics.USD_PER_1K, load=SERVER))
        v.hosted_usd = _finite(c.metric(metrics.HOSTED_USD))
        for p in ("p50", "p90", "p99"):
            row = _finite(c.metric(f"latency_{p}_ms", load=SINGLE_STREAM) or c.metric(f"latency_{p}_ms"))
            if row is not None:
                v.latency[p] = row
        v.latency_samples_ms = latency_samples(c)
        v.peak_rss = _finite(c.metric("peak_rss_bytes"))
        v.footprint = _finite(c.metric("footprint_bytes"))
        v.one_time_usd = _finite(c.metric(metrics.ONE_TIME_USD))
        v.one_time_per_1k = _finite(c.metric(metrics.ONE_TIME_PER_1K))
        for m in c.metrics:
            inst = metrics.suffix(m.metric, metrics.PROJECTED_PREFIX)
            if inst and _finite(m):
                v.projected[inst] = m
        views.append(v)
    # names must be unique: fall back to the full cell name on a clash
    counts: dict[str, int] = {}
    for v in views:
        counts[v.name] = counts.get(v.name, 0) + 1
    for v in views:
        if counts[v.name] > 1:
            v.name = v.cell.cell
    return views


def latency_samples(cell: CellResult) -> np.ndarray | None:
    """Raw single-stream latencies (ms): the warm timing with the most samples."""
    best = None
    for t in cell.timings:
        if not isinstance(t, dict) or t.get("load") != SINGLE_STREAM or "cold" in str(t.get("name", "")):
            continue
        samples = t.get("samples_ms")
        if samples and (best is None or len(samples) > len(best)):
            best = samples
    if not best:
        return None
    arr = np.asarray([s for s in best if s is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return arr if arr.size else None


def reference_classic(views: list[CellView]) -> CellView | None:
    """EASE when it ran and has quality and cost, else the classic cell with the best quality."""
    classic = [v for v in views if v.ok and v.family == "classic" and v.has_quality and v.usd is not None]
    preferred = [v for v in classic if v.recommender == PREFERRED_CLASSIC]
    if preferred:
        return preferred[0]
    return max(classic, key=lambda v: v.row("quality").value) if classic else None


def fp32_sibling(v: CellView, views: list[CellView]) -> CellView | None:
    if v.variant in (REFERENCE_VARIANT, NO_VARIANT, "") or v.family == "hosted":
        return None
    key = v.cell.model_key()
    for o in views:
        if o.variant == REFERENCE_VARIANT and o.cell.model_key() == key:
            return o
    return None


# ---------------------------------------------------------------- paired comparisons, in words
# (bench.analysis.paired computes them; these only phrase them, the same way everywhere)


def on_users(c: Comparison | None) -> str:
    """' on the same 943 users (paired difference ..., 95% interval ...)' and the like: what a difference rests on."""
    if c is None:
        return ""
    if not c.comparable:
        return f" (not comparable: {c.n_a or '?'} vs {c.n_b or '?'} users, no per-user figures to pair them)"
    users = (
        (f"the same {c.n:,} users" if c.same_users else f"the {c.n:,} users both evaluated")
        if c.n
        else "the same test users"
    )
    if not c.paired:
        return f" on {users} (unpaired)"
    if c.identical:
        return f" on {users} (identical for each of them)"
    assert c.diff_ci95 is not None  # a comparable paired comparison rests on n > 0 users: it has its interval
    low, high = c.diff_ci95
    return (
        f" on {users} (paired difference {c.diff:+.4f}, 95% interval {low:+.4f} to {high:+.4f}: "
        f"{VERDICT_WORDS[c.verdict]})"
    )


def short_diff(c: Comparison) -> str:
    """'+0.0143 (95% interval +0.0080 to +0.0206, n=943)', or the bare difference when unpaired."""
    if not c.paired or c.diff_ci95 is None:
        return f"{c.diff:+.4f}"
    return f"{c.diff:+.4f} (95% interval {c.diff_ci95[0]:+.4f} to {c.diff_ci95[1]:+.4f}, n={c.n:,})"


VERDICT_WORDS = {"better": "clearly higher", "worse": "clearly lower", "not distinguishable": "not distinguishable"}


def quality_clause(c: Comparison, ref_name: str, ref_row: MetricRow | None) -> str:
    """'at 100% of its NDCG@10 (0.344 vs 0.344) on the 100 users both evaluated (identical for each of them); ease
    on all its 943 users: 0.330'; or why the two cannot be compared."""
    if not c.comparable:
        return (
            f"with {QUALITY_LABEL} {sig(c.a)} on {c.n_a or '?'} sampled users, not comparable with {ref_name}'s "
            f"{sig(c.b)} on {c.n_b or '?'}: different users and no per-user figures to pair them"
        )
    text = f"at {pct(c.ratio)} of its {QUALITY_LABEL} ({sig(c.a)} vs {sig(c.b)}){on_users(c)}"
    if c.paired and c.n_b and c.n is not None and c.n < c.n_b and ref_row is not None:
        text += f"; {ref_name} on all its {c.n_b:,} users: {sig(ref_row.value)}"
    return text


def kept_clause(c: Comparison) -> str:
    """'keeps 99% of its NDCG@10 (95% interval 98%–100%, n=943)' against an fp32 sibling."""
    if not c.comparable:
        return f"its {QUALITY_LABEL} is on other users than fp32's ({c.n_a or '?'} vs {c.n_b or '?'}): not compared"
    if c.paired and c.identical:
        return f"keeps {pct(c.ratio)} of its {QUALITY_LABEL} (identical for each of the {c.n:,} users)"
    if c.paired and c.ratio_ci95 is not None:
        low, high = c.ratio_ci95
        return f"keeps {pct(c.ratio)} of its {QUALITY_LABEL} (95% interval {low:.1%}–{high:.1%}, n={c.n:,}, paired)"
    return f"keeps {pct(c.ratio)} of its {QUALITY_LABEL}{on_users(c)}"


def same_sample_note(v: CellView, views: list[CellView]) -> str:
    """For a cell evaluated on a sample of users: the classic reference's figure on that same sample, which is
    what its own figure must be read against ('' for other cells, or where the run kept no per-user figures)."""
    if v.quality is None or "sampled users" not in (v.quality.flag or "") or not v.has_quality:
        return ""
    ref = reference_classic([o for o in views if (o.cell.dataset, o.cell.split) == (v.cell.dataset, v.cell.split)])
    c = compare_cells(v.cell, ref.cell, QUALITY) if ref is not None and ref is not v else None
    if ref is None or c is None or not c.paired or not c.comparable:
        return ""
    return f"{ref.name} on the same {c.n:,} users: {sig(c.b)}"


def gate_words(gate: dict) -> str:
    """The quality gate's verdict where it could not decide."""
    if gate.get("reference_ci95") and gate["reference_ci95"][0] <= 0:
        return "the quality gate cannot decide, since fp32's own figure is not clear of zero (not distinguishable)"
    return (
        f"not distinguishable from the {gate.get('required', 0):.0%} quality gate, so its cost counts, with that caveat"
    )


def comparison_figures(c: Comparison | None) -> dict[str, float]:
    """A comparison's numbers for Headline.figures (unformatted)."""
    if c is None:
        return {}
    out = {"quality": c.a, "ref_quality": c.b, "quality_share": c.ratio, "paired": float(c.paired)}
    if c.n is not None:
        out["n"] = c.n
    if c.diff_ci95 is not None:
        out.update(diff=c.diff, diff_ci95_low=c.diff_ci95[0], diff_ci95_high=c.diff_ci95[1])
    return out


# ---------------------------------------------------------------- formatting


def sig(x: float, digits: int = 3) -> str:
    """`digits` significant digits, never in scientific notation (0.0000123 -> '0.0000123')."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    if decimals > 0:
        return f"{x:.{decimals}f}"
    return f"{round(x, decimals):.0f}"


def usd(x: float | None) -> str:
    """Dollars with 3 significant digits; below $0.0001 in scientific form ($3.02e-6), which reads easier
    than a run of zeros."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if 0 < abs(x) < 1e-4:
        mantissa, exponent = f"{x:.2e}".split("e")
        return f"${mantissa}e{int(exponent)}"
    return "$" + sig(x)


def share_pct(x: float) -> str:
    """A share as a percentage that never rounds a small non-zero share to 0 (0.0001 -> '0.01%')."""
    if x and abs(x) < 0.001:
        return f"{x * 100:.1g}%"
    return f"{x:.1%}"


def ratio(r: float) -> str:
    if r >= 10:
        return f"{r:,.0f}x"
    if r >= 1:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def num(x: float | None, unit: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    s = f"{x:,.0f}" if abs(x) >= 1000 else sig(x)
    return f"{s} {unit}".strip()


def mib(n_bytes: float | None) -> str:
    if n_bytes is None:
        return "n/a"
    if n_bytes >= 1024**3:
        return f"{n_bytes / 1024**3:.2f} GiB"
    if n_bytes >= 1024**2:
        return f"{n_bytes / 1024**2:.1f} MiB"
    return f"{n_bytes / 1024:.1f} KiB"
