"""Headline sentences written from a run's own figures: one per comparison a reader decides with.

Every number in a sentence is formatted from a figure in the run (kept in `Headline.figures`, unformatted).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.report.view import (QUALITY_LABEL, CellView, fp32_sibling, num, pareto_front, pct, ratio,
                               reference_classic, sig, usd)


@dataclass
class Headline:
    text: str
    kind: str  # llm-vs-classic | variant | hosted | frontier | status
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
            cost_x = v.usd.value / ref.usd.value
            share = v.quality.value / ref.quality.value if ref.quality.value else float("nan")
            text = (f"{v.name} costs {ratio(cost_x)} {ref.name} per 1k recommendations "
                    f"({usd(v.usd.value)} vs {usd(ref.usd.value)}) ")
            if ref.quality.value:
                text += f"at {pct(share)} of its {QUALITY_LABEL} ({sig(v.quality.value)} vs {sig(ref.quality.value)})."
            else:  # e.g. on cold items, which CF has never seen: no share of zero to state
                text += f"and reaches {QUALITY_LABEL} {sig(v.quality.value)} where {ref.name} scores 0."
            out.append(Headline(text, "llm-vs-classic", {"cost_ratio": cost_x, "quality_share": share,
                                                         "usd": v.usd.value, "ref_usd": ref.usd.value,
                                                         "quality": v.quality.value, "ref_quality": ref.quality.value}))

    for v in views:
        sib = fp32_sibling(v, views)
        if sib is None or not sib.ok or v.cell.status not in ("ok", "gated") or v.throughput is None \
                or sib.throughput is None:
            continue
        speed = v.throughput.value / sib.throughput.value
        figures = {"speedup": speed, "throughput": v.throughput.value, "ref_throughput": sib.throughput.value}
        text = (f"{v.name} runs at {ratio(speed)} the throughput of fp32 "
                f"({num(v.throughput.value)} vs {num(sib.throughput.value)} users/s)")
        if v.has_quality and sib.has_quality and sib.quality.value:
            kept = v.quality.value / sib.quality.value
            figures["quality_kept"] = kept
            text += f" and keeps {pct(kept)} of its {QUALITY_LABEL}"
        elif v.cost_only:
            text += " (cost-only: quality not reported)"
        if v.cell.status == "gated":
            text += ": below the quality gate, so its cost does not count."
        else:
            text += "."
        out.append(Headline(text, "variant", figures))

    # hosted APIs are set against the cheapest language-model cell measured here, else the classic reference
    local = [v for v in views if v.ok and v.family == "llm" and v.usd is not None]
    cheapest = min(local, key=lambda v: v.usd.value) if local else ref
    for h in (v for v in views if v.family == "hosted" and v.hosted_usd is not None):
        extras = h.cell.extras
        w = extras.get("hosted", {})
        exact = extras.get("cost", {}).get("tokenizer_is_providers", False)
        tin = h.cell.metric("hosted_input_tokens_per_rec")
        tout = h.cell.metric("hosted_output_tokens_per_rec")
        figures = {"usd": h.hosted_usd.value}
        text = (f"A hosted {h.variant} ranking {w.get('settings', {}).get('n_candidates', '?')} candidates per request "
                f"would cost {usd(h.hosted_usd.value)} per 1k recommendations")
        if tin is not None and tout is not None:
            figures.update(input_tokens=tin.value, output_tokens=tout.value)
            text += (f" ({num(tin.value)} input + {num(tout.value)} output tokens per request, counted with "
                     f"{w.get('tokenizer', 'a tokenizer')}{'' if exact else ' as an estimate of its own tokenizer'})")
        if cheapest is not None:
            r = h.hosted_usd.value / cheapest.usd.value
            figures["ratio_to_local"] = r
            text += f": {ratio(r)} {cheapest.name} measured here."
        else:
            text += "."
        out.append(Headline(text, "hosted", figures))

    pts = [v for v in views if v.ok and v.has_quality and v.usd is not None]
    if len(pts) >= 2:
        front = [pts[i] for i in pareto_front([(v.usd.value, v.quality.value) for v in pts])]
        steps = ", then ".join(f"{v.name} ({usd(v.usd.value)}, {QUALITY_LABEL} {sig(v.quality.value)})" for v in front)
        out.append(Headline(f"Quality-cost frontier, cheapest first: {steps}; every other cell is beaten on both.",
                            "frontier", {f"usd:{v.name}": v.usd.value for v in front}))
    return out


def _status(views: list[CellView]) -> Headline | None:
    failed = [v for v in views if v.cell.status == "failed"]
    gated = [v for v in views if v.cell.status == "gated"]
    if failed or gated:
        bits = []
        if failed:
            bits.append(f"{len(failed)} cell{'s' if len(failed) > 1 else ''} failed ({', '.join(v.name for v in failed)})")
        if gated:
            bits.append(f"{len(gated)} {'were' if len(gated) > 1 else 'was'} gated "
                        f"({', '.join(v.name for v in gated)})")
        return Headline(" and ".join(bits) + ": see Failed and gated cells.", "status",
                        {"failed": len(failed), "gated": len(gated)})
    return None
