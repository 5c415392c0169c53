"""Per-cell figures derived after the cells ran: utilisation and roofline against the machine's measured peaks,
the harness's own overhead, and the quality gate. Each function adds its rows (and records) to the cells of the
run it is given; bench.analysis.derive runs them on a copy and files what they add under the run's `derived`."""

from __future__ import annotations

import math

from bench.measure.load_registry import OFFLINE, SINGLE_STREAM
from bench.metrics import QUALITY_RETAINED
from bench.results import CellResult, RunResult, best_throughput
from bench.scenario import NO_VARIANT
from bench.variants.registry import FP32, INT8, kernels_of, precision_of

GATE_METRIC = "ndcg@10"
REFERENCE_VARIANT = FP32


def _best_throughput(cell: CellResult) -> float | None:
    row = best_throughput(cell)
    return row.value if row is not None else None


def _own_peak(run: RunResult, cell: CellResult) -> tuple[float | None, str, str]:
    """The peak of the cell's own precision on its node, run by its variant's own kernels (an int8 cell meets its
    runtime's int8 GEMM)."""
    from bench.measure.roofline import peak_for

    precision = precision_of(cell.variant)
    peak, source = peak_for(run.machine_of(cell) or {}, precision, kernels_of(cell.variant), cell.device)
    return peak, source, precision


def add_utilisation(run: RunResult) -> None:
    """achieved GFLOP/s = flops_per_rec x best offline throughput; percent of the peak of the cell's own
    precision measured at run start on the node that ran the cell (an int8 cell against its runtime's int8
    GEMM, never the fp32 one)."""
    for cell in run.cells:
        per_rec = cell.metric("flops_per_rec")
        throughput = _best_throughput(cell)
        if cell.status == "failed" or per_rec is None or not throughput:
            continue
        achieved_gflops = per_rec.value * throughput / 1e9
        cell.add(
            "achieved_gflops",
            achieved_gflops,
            "GFLOP/s",
            load=OFFLINE,
            label="estimated",
            flag="analytic FLOPs x measured throughput",
        )
        peak, source, precision = _own_peak(run, cell)
        if peak:
            cell.add(
                "utilisation_pct_of_peak",
                100.0 * achieved_gflops * 1e9 / peak,
                "%",
                load=OFFLINE,
                label="estimated",
                flag=f"of {peak / 1e9:.1f} G{'OP' if precision == INT8 else 'FLOP'}/s: {source}",
            )


def add_roofline(run: RunResult) -> None:
    """Each cell's bound (compute or bandwidth, by arithmetic intensity against the machine balance) and how
    close its best offline throughput runs to it (`pct_of_bound`), from analytic FLOPs and bytes per request."""
    from bench.measure.roofline import bandwidth_for, roofline

    for cell in run.cells:
        throughput = _best_throughput(cell)
        flops, nbytes = cell.metric("flops_per_rec"), cell.metric("bytes_per_rec")
        if cell.status == "failed" or not throughput or nbytes is None:
            continue
        # bytes_per_rec counts a request alone; at the best throughput's batch size a dense model state that one
        # GEMM multiplies the whole batch with is read once for the batch, not once per request
        batch = int((cell.extras.get("offline_sweep") or {}).get("best_batch_size") or 1)
        shared = cell.metric("bytes_shared_per_call")
        shared_bytes = min(shared.value, nbytes.value) if shared is not None else 0.0
        bytes_at_batch = nbytes.value - shared_bytes + shared_bytes / batch
        peak, peak_source, precision = _own_peak(run, cell)
        footprint = cell.metric("footprint_bytes")
        bw, level = bandwidth_for(run.machine_of(cell) or {}, footprint.value if footprint else None)
        roof = roofline(
            flops.value if flops else 0.0,
            bytes_at_batch,
            throughput,
            peak,
            bw,
            peak_source=peak_source,
            bandwidth_level=level,
        )
        if roof is None:
            continue
        record = {
            **roof.to_dict(),
            "precision": precision,
            "runtime": kernels_of(cell.variant),
            "batch_size": batch,
            "bytes_shared_per_call": shared_bytes,
            "label": "estimated: analytic FLOPs and bytes per request (at the best batch size) x measured best "
            "offline throughput",
        }
        cell.extras["roofline"] = record
        if math.isfinite(roof.arithmetic_intensity):
            cell.add(
                "arithmetic_intensity_flop_per_byte",
                roof.arithmetic_intensity,
                "FLOP/byte",
                label="estimated",
                flag="analytic",
            )
        cell.add(
            "achieved_gbs",
            roof.achieved_bytes_per_s / 1e9,
            "GB/s",
            load=OFFLINE,
            label="estimated",
            flag="analytic bytes x measured throughput",
        )
        if roof.bound == "bandwidth":
            what = f"bandwidth-bound: of {roof.attainable_per_s / 1e9:.1f} GB/s measured ({level} copy)"
        else:
            what = f"compute-bound: of {roof.attainable_per_s / 1e9:.1f} G{'OP' if precision == INT8 else 'FLOP'}/s ({peak_source})"
        cell.add("pct_of_bound", roof.pct_of_bound, "%", load=OFFLINE, label="estimated", flag=what)


HARNESS_RECOMMENDER = "noop"


def add_harness_overhead(run: RunResult) -> None:
    """The no-op cell's single-stream p50 is the harness's own cost per call (timer, dispatch, payload).

    Set beside every other cell's single-user p50 as a percentage; above 1% the row is flagged, so the
    results say by how much the harness is not negligible for that cell.
    """
    noop = next((c for c in run.cells if c.recommender == HARNESS_RECOMMENDER and c.status == "ok"), None)
    base = noop.metric("latency_p50_ms", SINGLE_STREAM) if noop is not None else None
    if noop is None or base is None:
        return
    noop.add("harness_overhead_per_call_ms", base.value, "ms", load=SINGLE_STREAM, n=base.n)
    for cell in run.cells:
        p50 = cell.metric("latency_p50_ms", SINGLE_STREAM)
        if cell is noop or cell.status == "failed" or p50 is None or not p50.value:
            continue
        pct = 100.0 * base.value / p50.value
        cell.add(
            "harness_overhead_pct",
            pct,
            "%",
            load=SINGLE_STREAM,
            flag="" if pct < 1.0 else f"harness overhead {pct:.2g}% of this cell's single-user p50 (over 1%)",
        )


def apply_quality_gate(run: RunResult, share: float, metric: str = GATE_METRIC) -> None:
    """MLPerf's idea: a variant's cost counts only where it keeps `share` of its fp32 model's quality.

    The reference is the fp32 cell with the same model (`CellResult.model_key`). The two are compared on the
    users both evaluated, paired (bench.analysis.paired): the retained share is the ratio of their means there,
    with its bootstrap 95% interval. Passed when the whole interval is at or above `share`, gated when it lies
    below; "not distinguishable" (not gated, and said so) when it straddles `share` or when fp32's own figure is
    not clear of zero, where a share of noise decides nothing. Without per-user figures the point ratio decides.
    """
    from bench.analysis.paired import compare_cells, gate_verdict

    by_key = {}
    for cell in run.cells:
        if cell.variant == REFERENCE_VARIANT and cell.status == "ok":
            by_key[cell.model_key()] = cell
    for cell in run.cells:
        if cell.status != "ok" or cell.variant in (REFERENCE_VARIANT, NO_VARIANT) or cell.label == "cost-only":
            continue
        ref = by_key.get(cell.model_key())
        c = compare_cells(cell, ref, metric) if ref is not None else None
        why = None
        if c is None:
            why = f"no fp32 reference {metric} in this run"
        elif not c.comparable:
            why = f"fp32's {metric} is on other users ({c.n_b}) than this cell's ({c.n_a}), without per-user figures"
        elif not c.paired and not c.b:
            why = f"fp32's {metric} is 0 and this run kept no per-user figures: no share to judge"
        if ref is None or c is None or why:  # c is None exactly when there is no reference: `why` says so
            cell.extras["quality_gate"] = {"checked": False, "why": why}
            continue
        verdict = gate_verdict(c, share)
        ci = c.ratio_ci95 or (None, None)
        cell.extras["quality_gate"] = {
            "checked": True,
            "metric": metric,
            "retained": c.ratio if c.b else None,
            "retained_ci95": c.ratio_ci95,
            "difference": c.diff,
            "difference_ci95": c.diff_ci95,
            "reference_ci95": c.b_ci95,
            "n": c.n,
            "paired": c.paired,
            "required": share,
            "reference_cell": ref.cell,
            "verdict": verdict,
            "passed": {"passed": True, "failed": False}.get(verdict),
        }
        flag = {
            "passed": "",
            "failed": f"below the {share:.0%} gate",
            "not distinguishable": f"not distinguishable from the {share:.0%} gate",
        }[verdict]
        if verdict == "not distinguishable" and c.b_ci95 is not None and c.b_ci95[0] <= 0:
            flag = f"fp32's {metric} is not clear of zero: the gate cannot decide"
        if c.b:  # a share of an fp32 figure of 0 is undefined: the extras say why the gate could not decide
            cell.add(QUALITY_RETAINED, c.ratio, "ratio", n=c.n, ci95_low=ci[0], ci95_high=ci[1], flag=flag)
        if verdict == "failed":
            cell.status = "gated"
            on = f" on the {c.n:,} users both evaluated (95% interval {ci[0]:.1%}–{ci[1]:.1%})" if c.ratio_ci95 else ""
            cell.error = (
                f"{metric} {c.a:.4f} is {c.ratio:.1%} of fp32's {c.b:.4f}{on}, "
                f"below the {share:.0%} quality gate: its cost does not count"
            )
