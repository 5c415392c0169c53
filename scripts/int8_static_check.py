"""Does static int8 keep the trained two-tower's quality and speed it up? One process, one model, interleaved.

    .venv/bin/python scripts/int8_static_check.py [--out reports/int8_static] [--rounds 12] [--batch 32]

Fine-tunes the two-tower once (mode finetune, ML-100K random-8-1-1, seed 0), then runs that same model
(encoder weights and trained projection) under fp32 (PyTorch eager) and under `onnx-int8-static` (calibrated
on the split's train texts: item texts and user profiles). Quality: NDCG@10 over every test user, full ranking,
for both. Speed: offline recommend() calls of `--batch` users, alternating fp32 / static call by call
(ABAB...) so that both see the same machine load; the speed-up is the ratio of total busy time, with a
bootstrap 95% interval over rounds. Writes one JSON with the figures, the CPU's vector/int8 features, the
load average and the package versions.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/int8_static", help="directory for the JSON (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=12, help="timed calls per variant, interleaved (default 12)")
    ap.add_argument("--batch", type=int, default=32, help="users per offline call (default 32)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--train-budget-s",
        type=float,
        default=3600.0,
        help="wall-time cap on the fine-tune (default %(default)s s: generous, so that its 150 steps, not the "
        "machine's load, decide the model)",
    )
    args = ap.parse_args(argv)
    if args.rounds < 3 or args.batch < 1 or args.threads < 1 or not args.train_budget_s > 0:
        print(
            "int8_static_check: need --rounds >= 3, --batch >= 1, --threads >= 1, --train-budget-s > 0", file=sys.stderr
        )
        return 2

    from bench.measure.threads import pin_threads

    pinned = pin_threads(args.threads, torch=True)
    from bench.data import load_dataset
    from bench.data.splits import make_split
    from bench.measure.provenance import collect
    from bench.quality import evaluate_ranking
    from bench.recommenders.llm.two_tower import TwoTower
    from bench.variants import build_encoder

    started = time.perf_counter()
    load = [os.getloadavg()[0]]
    split = make_split(load_dataset("ml-100k"), "random-8-1-1", seed=0)
    train = split.train_set()
    print("fine-tuning the two-tower once (fp32)...", flush=True)
    fp32 = TwoTower(
        mode="finetune", variant="fp32", threads=args.threads, seed=0, train_budget_s=args.train_budget_s
    ).fit(train)
    saved = fp32.stats["finetuned_dir"]
    texts = list(fp32.profile_texts(np.arange(train.n_users))) + list(_item_texts(train))

    print("building onnx-int8-static from the same weights, calibrated on the train texts...", flush=True)
    static = copy.copy(fp32)
    static.encoder = build_encoder(
        saved, "onnx-int8-static", threads=args.threads, max_length=fp32.max_length, calibration_texts=texts
    )
    item_emb = static.encoder.encode(_item_texts(train), fp32.batch_size)
    static.item_matrix = np.ascontiguousarray(
        fp32.projection.items(item_emb) if fp32.projection is not None else item_emb, dtype=np.float32
    )

    print("quality: full ranking, every test user...", flush=True)
    quality = {
        name: evaluate_ranking(rec, split, ks=(10,)) for name, rec in (("fp32", fp32), ("onnx-int8-static", static))
    }
    load.append(os.getloadavg()[0])

    print(f"speed: {args.rounds} interleaved offline calls of {args.batch} users each...", flush=True)
    exclude = split.train.matrix(split.n_users, split.n_items) + split.valid.matrix(split.n_users, split.n_items)
    exclude = exclude.tocsr()
    users = np.random.default_rng(0).permutation(split.test_users())
    times = {"fp32": [], "onnx-int8-static": []}
    for rec in (fp32, static):  # warm-up, untimed
        rec.recommend(users[: args.batch], 10, exclude=exclude)
    for r in range(args.rounds):
        batch = users[(r * args.batch) % len(users) :][: args.batch]
        order = (
            (("fp32", fp32), ("onnx-int8-static", static))
            if r % 2 == 0
            else (("onnx-int8-static", static), ("fp32", fp32))
        )
        for name, rec in order:
            t0 = time.perf_counter_ns()
            rec.recommend(batch, 10, exclude=exclude)
            times[name].append((time.perf_counter_ns() - t0) / 1e9)
    load.append(os.getloadavg()[0])
    t32, t8 = np.array(times["fp32"]), np.array(times["onnx-int8-static"])
    rng = np.random.default_rng(0)
    boot = [t32[i].sum() / t8[i].sum() for i in (rng.integers(0, len(t32), len(t32)) for _ in range(2000))]
    ndcg32, ndcg8 = quality["fp32"]["ndcg@10"], quality["onnx-int8-static"]["ndcg@10"]
    prov = collect()
    result = {
        "what": "trained two-tower (finetune), the same model under fp32 and onnx-int8-static",
        "command": "python scripts/int8_static_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "ndcg@10": {"fp32": ndcg32, "onnx-int8-static": ndcg8},
        "quality_kept": ndcg8 / ndcg32,
        "evaluated_users": int(quality["fp32"].get("evaluated_users", 0)),
        "offline_users_per_s": {
            "fp32": args.batch * len(t32) / t32.sum(),
            "onnx-int8-static": args.batch * len(t8) / t8.sum(),
        },
        "speedup": float(t32.sum() / t8.sum()),
        "speedup_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "rounds": args.rounds,
        "batch_users": args.batch,
        "threads": pinned.get("threads"),
        "interleaved": "ABAB by call, order alternating per round",
        "cpu_vector_int8": prov["machine"].get("cpu_vector_int8"),
        "cpu_model": prov["machine"].get("cpu_model"),
        "load_average_1min": load,
        "usable_cores": prov["machine"].get("usable_cores"),
        "static_preparation": static.encoder.preparation.notes.get("onnx-int8-static", {}),
        "finetune": {k: v for k, v in fp32.stats.items() if k.startswith("train")},
        "packages": prov.get("packages"),
        "code": prov.get("code"),
        "wall_s": time.perf_counter() - started,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"int8_static_check-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, path)
    print(
        f"NDCG@10 fp32 {ndcg32:.4f}, onnx-int8-static {ndcg8:.4f} ({ndcg8 / ndcg32:.1%} kept); offline speed-up "
        f"{result['speedup']:.2f}x [{result['speedup_ci95'][0]:.2f}, {result['speedup_ci95'][1]:.2f}] "
        f"({result['cpu_vector_int8']['best_int8_path']}); load {load}; {path}"
    )
    return 0


def _item_texts(train) -> list[str]:
    from bench.recommenders.llm.profile import item_texts

    return item_texts(train.item_text, "describe")


if __name__ == "__main__":
    sys.exit(main())
