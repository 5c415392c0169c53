"""Headline sentences written from a run's own figures: one per comparison a reader decides with.

Every number in a sentence is formatted from a figure in the run (kept in `Headline.figures`, unformatted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.analysis.blend import blend_choice
from bench.analysis.paired import compare_cells, frontier
from bench.report.view import (
    QUALITY,
    QUALITY_LABEL,
    CellView,
    comparison_figures,
    fp32_sibling,
    gate_words,
    kept_clause,
    num,
    on_users,
    quality_clause,
    ratio,
    reference_classic,
    share_pct,
    short_diff,
    sig,
    usd,
)


@dataclass
class Headline:
    text: str
    kind: str  # llm-vs-classic | variant | hosted | frontier | blend | status
    figures: dict[str, float] = field(default_factory=dict)


def headlines(views: list[CellView]) -> list[Headline]:
    """Comparisons only ever between cells on the same data (dataset and split): a run over several
    catalogues (scaling) gets one set per catalogue, then one status line for the whole run."""
    groups: dict[tuple[str, str], list[CellView]] = {}
    for v in views:
        groups.setdefault((v.cell.dataset, v.cell.split), []).append(v)
    out = [h for group in groups.values() for h in _on_one_dataset(group)]
    status = _status(views)
    return out + ([status] if status else [])


def _on_one_dataset(views: list[CellView]) -> list[Headline]:
    out: list[Headline] = []
    ref = reference_classic(views)
    llm = [v for v in views if v.ok and v.family == "llm" and v.has_quality and v.usd is not None]

    if ref is not None:
        for v in llm:
            v_usd, ref_usd = v.row("usd").value, ref.row("usd").value
            cost_x = v_usd / ref_usd
            c = compare_cells(v.cell, ref.cell, QUALITY)
            text = f"{v.name} costs {ratio(cost_x)} {ref.name} per 1k recommendations ({usd(v_usd)} vs {usd(ref_usd)}) "
            figures = {"cost_ratio": cost_x, "usd": v_usd, "ref_usd": ref_usd}
            if c is not None and c.comparable and not c.b:  # e.g. cold items, which CF has never seen
                text += f"and reaches {QUALITY_LABEL} {sig(c.a)} where {ref.name} scores 0{on_users(c)}."
            elif c is not None:
                text += quality_clause(c, ref.name, ref.quality) + "."
            figures.update(comparison_figures(c))
            out.append(Headline(text, "llm-vs-classic", figures))

    for v in views:
        sib = fp32_sibling(v, views)
        if (
            sib is None
            or not sib.ok
            or v.cell.status not in ("ok", "gated")
            or v.throughput is None
            or sib.throughput is None
        ):
            continue
        speed = v.throughput.value / sib.throughput.value
        figures = {"speedup": speed, "throughput": v.throughput.value, "ref_throughput": sib.throughput.value}
        text = (
            f"{v.name} runs at {ratio(speed)} the throughput of fp32 "
            f"({num(v.throughput.value)} vs {num(sib.throughput.value)} users/s)"
        )
        c = compare_cells(v.cell, sib.cell, QUALITY) if v.has_quality and sib.has_quality else None
        if c is not None and c.b:
            figures.update(comparison_figures(c), quality_kept=c.ratio)
            text += f" and {kept_clause(c)}"
        elif v.cost_only:
            text += " (cost-only: quality not reported)"
        gate = v.cell.extras.get("quality_gate") or {}
        if v.cell.status == "gated":
            text += ": below the quality gate, so its cost does not count."
        elif gate.get("verdict") == "not distinguishable":
            text += f": {gate_words(gate)}."
        else:
            text += "."
        out.append(Headline(text, "variant", figures))

    # like with like: a hosted API is set against the cheapest local cell doing the same job (re-ranking as many
    # candidates per request), else against the cheapest language-model cell (else the classic reference), said
    # to be a different job. Its quality is not measured, so the line compares cost only.
    local = [v for v in views if v.ok and v.family == "llm" and v.usd is not None]
    for h in (v for v in views if v.family == "hosted" and v.hosted_usd is not None):
        extras = h.cell.extras
        w = extras.get("hosted", {})
        n_cand = w.get("settings", {}).get("n_candidates")
        exact = extras.get("cost", {}).get("tokenizer_is_providers", False)
        tin = h.cell.metric("hosted_input_tokens_per_rec")
        tout = h.cell.metric("hosted_output_tokens_per_rec")
        h_usd = h.row("hosted_usd").value
        figures = {"usd": h_usd}
        text = (
            f"A hosted {h.variant} ranking {n_cand or '?'} candidates per request "
            f"would cost {usd(h_usd)} per 1k recommendations"
        )
        if tin is not None and tout is not None:
            figures.update(input_tokens=tin.value, output_tokens=tout.value)
            text += (
                f" ({num(tin.value)} input + {num(tout.value)} output tokens per request, counted with "
                f"{w.get('tokenizer', 'a tokenizer')}{'' if exact else ' as an estimate of its own tokenizer'})"
            )
        same_job = [
            v for v in local if (row := v.cell.metric("candidates_per_request")) is not None and row.value == n_cand
        ]
        against = min(same_job or local, key=lambda v: v.row("usd").value) if (same_job or local) else ref
        if against is not None:
            r = h_usd / against.row("usd").value
            figures["ratio_to_local"] = r
            job = (
                f", which re-ranks the same {n_cand} candidates per request"
                if same_job
                else " (a different job from ranking a candidate list)"
            )
            text += (
                f": {ratio(r)} {against.name} measured here{job}; cost only, the hosted model's quality is not "
                "measured."
            )
        else:
            text += "."
        out.append(Headline(text, "hosted", figures))

    pts = [v for v in views if v.ok and v.has_quality and v.usd is not None]
    if len(pts) >= 2:
        out.append(_frontier(pts))
    out += [blend for v in views if v.ok and (blend := _blend(v, views)) is not None]
    return out


def _frontier(pts: list[CellView]) -> Headline:
    """Cheapest first; each step says by how much it beats the step before on the users they share."""
    front = frontier([v.cell for v in pts], [v.row("usd").value for v in pts], QUALITY)
    steps, figures = [], {}
    for k, i in enumerate(front.on):
        v = pts[i]
        step = f"{v.name} ({usd(v.row('usd').value)}, {QUALITY_LABEL} {sig(v.row('quality').value)}"
        if k:
            c = compare_cells(v.cell, pts[front.on[k - 1]].cell, QUALITY)
            step += f"; {short_diff(c)} over {pts[front.on[k - 1]].name}" if c is not None else ""
        steps.append(step + ")")
        figures[f"usd:{v.name}"] = v.row("usd").value
    text = (
        f"Quality-cost frontier, cheapest first: {', then '.join(steps)}; every other cell is matched or beaten "
        "by a cheaper one on the users they share"
    )
    compared = [c for _, c in front.beaten_by.values()]
    text += (
        " (by the 95% interval of the paired per-user difference)"
        if any(c.paired for c in compared)
        else " (unpaired means over the same users: this run kept no per-user figures)"
    )
    if front.left_out:
        names = ", ".join(pts[i].name for i in front.left_out)
        text += f". Left out, since no cheaper cell can be compared with them on the same users: {names}"
    return Headline(text + ".", "frontier", figures)


def _blend(v: CellView, views: list[CellView]) -> Headline | None:
    """What a learned re-ranking blend chose, in words; with how it ranks against its retriever's own cell."""
    choice = blend_choice(v.cell)
    if choice is None or not v.has_quality:
        return None
    retriever = next(
        (
            o
            for o in views
            if o.ok
            and o.recommender == choice.retriever
            and o.has_quality
            and (o.cell.dataset, o.cell.split, o.cell.device) == (v.cell.dataset, v.cell.split, v.cell.device)
        ),
        None,
    )
    figures: dict[str, float] = {}
    share, kept = choice.ce_spread_share, choice.order_kept_share
    if share is not None:  # recorded (runs from before the blend's weights were recorded have no share)
        text = f"{v.name}: the learned blend gives the cross-encoder {share_pct(share)} of the score's spread"
        figures["ce_spread_share"] = share
        if kept is not None:
            text += f" and leaves {kept:.0%} of its training lists in {choice.retriever}'s order"
            figures["order_kept_share"] = kept
        if choice.keeps_retriever_order:
            text += ": the blend kept the retriever's order (the cross-encoder's weight is practically 0)"
        elif choice.cross_encoder_silent:
            text += (
                f": the cross-encoder's weight is practically 0, so the blend re-ranks by {choice.retriever}'s own "
                "rank and score only"
            )
    else:
        text = f"{v.name}: this run did not record what the learned blend chose"
        if choice.l2 is not None:
            text += f" (cross-validation put a penalty of {choice.l2:g} on the cross-encoder's weights)"
    c = compare_cells(v.cell, retriever.cell, QUALITY) if retriever is not None else None
    if retriever is not None and c is not None and c.comparable:
        figures.update(comparison_figures(c))
        if c.identical:
            text += (
                f"; for each of the {c.n:,} users both evaluated it scores exactly as {retriever.name} "
                f"({QUALITY_LABEL} {sig(c.a)}): the cross-encoder adds nothing there"
            )
        else:
            text += f"; against {retriever.name}: {QUALITY_LABEL} {sig(c.a)} vs {sig(c.b)}{on_users(c)}"
    elif retriever is not None and c is not None:
        text += (
            f"; its {QUALITY_LABEL} ({sig(c.a)} on {c.n_a:,} sampled users) cannot be set against "
            f"{retriever.name}'s without per-user figures"
        )
    return Headline(text + ".", "blend", figures)


def _status(views: list[CellView]) -> Headline | None:
    failed = [v for v in views if v.cell.status == "failed"]
    gated = [v for v in views if v.cell.status == "gated"]
    if failed or gated:
        bits = []
        if failed:
            bits.append(
                f"{len(failed)} cell{'s' if len(failed) > 1 else ''} failed ({', '.join(v.name for v in failed)})"
            )
        if gated:
            bits.append(
                f"{len(gated)} {'were' if len(gated) > 1 else 'was'} gated ({', '.join(v.name for v in gated)})"
            )
        return Headline(
            " and ".join(bits) + ": see Failed and gated cells.", "status", {"failed": len(failed), "gated": len(gated)}
        )
    return None
