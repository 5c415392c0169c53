"""One entry point: a run's measured cells -> its `derived` section (bench.results.Derived).

    derive(run, AnalysisOptions(prices=..., instance=..., quality_gate=...)) -> Derived

Called once by the runner at the end of a run, and by `recbench report --prices/--instance` to re-price a results
file (`reprice`), which reuses the run's hosted-API token counts and never loads a dataset. The run passed in is
not changed: the per-cell analysis functions (bench.analysis.cells, bench.cost, bench.analysis.decoders,
bench.analysis.sizes, bench.online) work on a copy of its cells, and what they add is filed under `derived`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bench import cost
from bench.analysis.cells import add_harness_overhead, add_roofline, add_utilisation, apply_quality_gate
from bench.analysis.decoders import add_hosted_same_prompt
from bench.analysis.paired import DEFAULT_QUALITY_GATE
from bench.analysis.sizes import add_size_figures
from bench.growth import fit_run, has_scaling_dimension, to_records
from bench.results import Derived, RunResult, split_derived


@dataclass(frozen=True)
class AnalysisOptions:
    prices: cost.PriceSheet
    #: the instance this machine is priced as (None: a vCPU share of the sheet's default instance)
    instance: str | None = None
    #: node name -> instance, for runs across machines
    node_instances: dict[str, str] = field(default_factory=dict)
    #: threads the run's cells were pinned to (where a cell did not record its own)
    threads_used: int | None = None
    #: share of fp32's NDCG@10 a variant must keep for its cost to count
    quality_gate: float = DEFAULT_QUALITY_GATE
    #: hosted-API workloads: "auto" builds prompts from the run's datasets (the runner only), or given ones, or None
    hosted: Sequence[cost.HostedWorkload] | Literal["auto"] | None = "auto"
    amortise_over_recs: int | None = None


def derive(run: RunResult, options: AnalysisOptions) -> Derived:
    """Every derived figure of `run` from its measured cells (any derived part it already has is recomputed)."""
    scratch = RunResult(
        run_id=run.run_id,
        scenario=run.scenario,
        provenance=run.provenance,
        cells=copy.deepcopy(split_derived(run.cells)[0]),
        created_at=run.created_at,
        machine=run.machine,
        derived=Derived(hosted=list(run.derived.hosted)),
    )
    add_utilisation(scratch)
    add_roofline(scratch)
    add_harness_overhead(scratch)
    apply_quality_gate(scratch, options.quality_gate)
    cost.add_costs(
        scratch,
        options.prices,
        options.instance,
        options.threads_used,
        node_instances=options.node_instances,
        hosted=options.hosted,
        amortise_over_recs=options.amortise_over_recs,
    )
    add_hosted_same_prompt(scratch)  # decoder cells' own requests at the hosted prices just applied
    add_size_figures(scratch)  # cost against model size: needs the costs above; nothing when one size ran
    # cost against catalogue size, from the cells as readers see them (with cost rows and the gate's status)
    growth = to_records(fit_run(scratch)) if has_scaling_dimension(scratch) else []
    _, per_cell = split_derived(scratch.cells)
    return Derived(
        pricing=scratch.derived.pricing,
        cells=per_cell,
        hosted=scratch.derived.hosted,
        size_fits=scratch.derived.size_fits,
        growth=growth,
    )


def reprice(
    run: RunResult, prices: cost.PriceSheet, instance: str | None = None, amortise_over_recs: int | None = None
) -> Derived:
    """`run`'s derived section again with another price sheet or instance: the mapping, threads, gate share and
    hosted-API token counts the run was analysed with are kept (an instance given here replaces its mapping)."""
    pricing = run.derived.pricing
    settings = run.scenario.get("settings", {}) if isinstance(run.scenario, dict) else {}
    gate = settings.get("quality_gate") if isinstance(settings, dict) else None
    return derive(
        run,
        AnalysisOptions(
            prices=prices,
            instance=instance if instance is not None else (pricing.instance if pricing else None),
            node_instances=dict(pricing.node_instances) if pricing else {},
            threads_used=pricing.threads_used if pricing else None,
            quality_gate=float(gate)
            if isinstance(gate, (int, float)) and not isinstance(gate, bool)
            else DEFAULT_QUALITY_GATE,
            hosted=cost.previous_workloads(run),
            amortise_over_recs=amortise_over_recs,
        ),
    )
