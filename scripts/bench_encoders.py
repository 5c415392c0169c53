"""Encoding throughput of MiniLM under each variant, and of a half-depth distilled student, on this machine.

Not a test (tests never time): a measurement script whose output backs the closing notes of the variants work.

    python scripts/bench_encoders.py --threads 2 --out reports/encoders.json

Texts: ML-100K user-profile texts (~40 tokens: the user's most recent liked titles) when the data is in the
local cache, else synthetic profile-like texts. Encoders are timed interleaved, round after round, so that load
from other processes on a shared machine hits every variant alike; ratios are taken per round (paired), and
the median over rounds is reported with the min-max range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def profile_texts(target_tokens: int = 40) -> tuple[list[str], list[str], str]:
    """(profile texts, item texts, source). A profile lists recent liked titles until ~target_tokens."""
    try:
        from bench.data import load_dataset

        ds = load_dataset("ml-100k", allow_download=False)
    except Exception as exc:  # noqa: BLE001 - no local data: synthetic stand-in
        print(f"ML-100K not available locally ({exc}); using synthetic profile texts", file=sys.stderr)
        rng = np.random.default_rng(0)
        words = [
            "star",
            "wars",
            "fargo",
            "contact",
            "return",
            "of",
            "the",
            "jedi",
            "liar",
            "toy",
            "story",
            "twelve",
            "monkeys",
            "babe",
            "seven",
        ]
        items = [" ".join(rng.choice(words, 4)) + f" ({1950 + i % 50})" for i in range(500)]
        return ["liked recently: " + "; ".join(rng.choice(items, 4)) for _ in range(943)], items, "synthetic"
    inter = ds.interactions
    items = [ds.item_text.describe(i) for i in range(ds.n_items)]
    titles = ds.item_text.titles
    liked = inter.ratings >= 4
    order = np.lexsort((-inter.timestamps, inter.users)) if inter.timestamps is not None else np.argsort(inter.users)
    users, its = inter.users[order], inter.items[order]
    keep = liked[order]
    users, its = users[keep], its[keep]
    starts = np.searchsorted(users, np.arange(ds.n_users))
    ends = np.searchsorted(users, np.arange(ds.n_users), side="right")
    profiles = []
    # ML-100K titles run ~5.5 WordPiece tokens: ~target_tokens / 5.5 titles make a profile of the target length
    n_titles = max(1, round(target_tokens / 5.5))
    for u in range(ds.n_users):
        recent = its[starts[u] : ends[u]][:n_titles]
        profiles.append("Recently liked: " + "; ".join(titles[i] for i in recent))
    return profiles, items, "ml-100k"


def time_encode(encoder, texts: list[str], batch_size: int) -> float:
    t0 = time.perf_counter_ns()
    encoder.encode(texts, batch_size=batch_size)
    return (time.perf_counter_ns() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="fp32,int8,onnx,onnx-int8,distilled,distilled+onnx-int8")
    ap.add_argument("--n-batch32", type=int, default=256, help="texts per timed pass at batch 32")
    ap.add_argument("--n-batch1", type=int, default=48, help="texts per timed pass at batch 1")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--distil-epochs", type=int, default=3)
    ap.add_argument("--distil-budget-s", type=float, default=900.0)
    ap.add_argument("--out", default="reports/encoders.json")
    args = ap.parse_args()

    from bench.variants import build_encoder
    from bench.variants.agreement import agreement
    from bench.variants.distilled import DistilSettings

    profiles, items, source = profile_texts()
    distil_texts = items + profiles
    rng = np.random.default_rng(0)
    bench_texts = [profiles[i] for i in rng.choice(len(profiles), args.n_batch32, replace=False)]
    settings = DistilSettings(epochs=args.distil_epochs, time_budget_s=args.distil_budget_s)
    load_before = os.getloadavg()

    encoders, prep = {}, {}
    for variant in args.variants.split(","):
        t0 = time.perf_counter()
        enc = build_encoder(args.model, variant, threads=args.threads, distill_texts=distil_texts, distill=settings)
        encoders[variant] = enc
        prep[variant] = {
            "preparation_s": enc.preparation.seconds,
            "file_bytes": enc.preparation.file_bytes,
            "footprint_bytes": enc.footprint(),
            "build_s_this_process": time.perf_counter() - t0,
            "layers": enc.config()["layers"],
            "notes": enc.preparation.notes,
        }
        print(
            f"built {variant}: prep {enc.preparation.seconds:.1f}s, file {enc.preparation.file_bytes / 1e6:.1f} MB",
            file=sys.stderr,
        )
    tokens = encoders[next(iter(encoders))].token_counts(bench_texts)

    reference = encoders["fp32"].encode(bench_texts) if "fp32" in encoders else None
    agreements = (
        {v: agreement(reference, e.encode(bench_texts), k=10) for v, e in encoders.items()}
        if reference is not None
        else {}
    )

    rates: dict[str, dict[int, list[float]]] = {v: {32: [], 1: []} for v in encoders}
    for enc in encoders.values():  # warm-up: first calls allocate, build kernels, fill caches
        enc.encode(bench_texts[:32], batch_size=32)
        enc.encode(bench_texts[:4], batch_size=1)
    for r in range(args.rounds):
        for batch_size, texts in ((32, bench_texts), (1, bench_texts[: args.n_batch1])):
            for v, enc in encoders.items():
                rates[v][batch_size].append(len(texts) / time_encode(enc, texts, batch_size))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def paired_ratio(a: str, b: str, bs: int) -> dict[str, float]:
        per_round = [x / y for x, y in zip(rates[a][bs], rates[b][bs])]
        return {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round)}

    ratios = {}
    pairs = [
        ("onnx-int8", "fp32"),
        ("onnx", "fp32"),
        ("int8", "fp32"),
        ("distilled", "fp32"),
        ("distilled+onnx-int8", "onnx-int8"),
        ("distilled+onnx-int8", "fp32"),
    ]
    for a, b in pairs:
        if a in rates and b in rates:
            for bs in (32, 1):
                ratios[f"{a} / {b} @batch{bs}"] = paired_ratio(a, b, bs)

    result = {
        "model": args.model,
        "threads": args.threads,
        "texts_source": source,
        "tokens_per_text_mean": float(tokens.mean()),
        "tokens_per_text_p50": float(np.median(tokens)),
        "rounds": args.rounds,
        "n_batch32": len(bench_texts),
        "n_batch1": args.n_batch1,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "texts_per_s": {
            v: {f"batch{bs}": {"median": statistics.median(x), "min": min(x), "max": max(x)} for bs, x in by.items()}
            for v, by in rates.items()
        },
        "ratios": ratios,
        "agreement_vs_fp32": agreements,
        "preparation": prep,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))

    print(
        f"\n{args.model}, threads={args.threads}, {source} profile texts, "
        f"{result['tokens_per_text_mean']:.1f} tokens/text mean, load avg {load_before[0]:.1f} -> "
        f"{result['loadavg_after'][0]:.1f}"
    )
    print(
        f"{'variant':22} {'layers':>6} {'b32 texts/s':>12} {'b1 texts/s':>11} {'cos mean':>9} {'top10':>6} "
        f"{'prep s':>7} {'file MB':>8}"
    )
    for v in encoders:
        t = result["texts_per_s"][v]
        a = agreements.get(v, {})
        print(
            f"{v:22} {prep[v]['layers']:>6} {t['batch32']['median']:>12.1f} {t['batch1']['median']:>11.1f} "
            f"{a.get('cosine_mean', float('nan')):>9.4f} {a.get('top10_overlap', float('nan')):>6.3f} "
            f"{prep[v]['preparation_s']:>7.1f} {prep[v]['file_bytes'] / 1e6:>8.1f}"
        )
    print("\npaired ratios (median [min, max] over rounds):")
    for k, r in ratios.items():
        print(f"  {k:36} {r['median']:.2f}x [{r['min']:.2f}, {r['max']:.2f}]")
    for v in encoders:
        d = prep[v]["notes"].get("distil")
        if d:
            print(
                f"  {v}: student {d['student_layers']} layers from {d['initialised_from_teacher_layers']}, "
                f"held-out cosine to teacher {d['heldout_cosine_mean']:.4f} (min {d['heldout_cosine_min']:.4f}), "
                f"{d['epochs_done']} epochs, {d['steps']} steps, distil {d['seconds']:.0f}s"
            )
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
