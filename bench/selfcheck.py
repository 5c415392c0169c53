"""`recbench selfcheck`: the suite's timer and a plain perf_counter loop time the same MiniLM forward.

If they disagree beyond their noise, no timing this suite prints should be trusted on this machine.
"""

from __future__ import annotations

from bench.variants.registry import FP32

PROFILE_TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War",
    "Fargo (1996). Genres: Crime, Drama, Thriller",
    "Return of the Jedi (1983). Genres: Action, Adventure, Romance, Sci-Fi, War",
] * 2  # a batch of 8 profile-length texts


def main_selfcheck(model: str = "minilm", threads: int = 2, n: int = 40) -> int:
    from bench.measure.threads import pin_threads

    pinned = pin_threads(threads)
    from bench.measure.peer import peer_check
    from bench.variants import build_encoder

    encoder = build_encoder(model, FP32, device="cpu", threads=threads)
    check = peer_check(lambda: encoder.encode(PROFILE_TEXTS, batch_size=len(PROFILE_TEXTS)), n=n)
    print(
        f"model {encoder.model_name} fp32, batch {len(PROFILE_TEXTS)}, threads {pinned.get('threads')}, n={check.n} each"
    )
    print(
        f"suite timer : median {check.suite_median_ms:.3f} ms  95% CI [{check.suite_ci95_ms[0]:.3f}, {check.suite_ci95_ms[1]:.3f}]"
    )
    print(
        f"plain loop  : median {check.plain_median_ms:.3f} ms  95% CI [{check.plain_ci95_ms[0]:.3f}, {check.plain_ci95_ms[1]:.3f}]"
    )
    verdict = "agree" if check.agree else "DISAGREE"
    print(
        f"ratio suite/plain {check.ratio:.4f}: {verdict} "
        f"({'intervals overlap' if check.intervals_overlap else f'medians within {check.rel_tol:.0%}' if check.agree else 'beyond noise'})"
    )
    return 0 if check.agree else 1
