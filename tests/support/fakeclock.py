"""A deterministic clock for tests of timing code: time moves only when someone says so.

clock = FakeClock()
serve = lambda batch: clock.advance_ms(10)          # a request that "takes" 10 ms
server(serve, pool, 50, n_requests=100, clock=clock)  # exact, repeatable latencies
"""

from __future__ import annotations


class FakeClock:
    def __init__(self, start_ns: int = 0) -> None:
        self.t_ns = int(start_ns)
        self.sleeps = 0

    def now_ns(self) -> int:
        return self.t_ns

    def sleep_until_ns(self, deadline_ns: int) -> None:
        self.sleeps += 1
        self.t_ns = max(self.t_ns, int(deadline_ns))

    def advance_ns(self, ns: int) -> None:
        self.t_ns += int(ns)

    def advance_ms(self, ms: float) -> None:
        self.advance_ns(round(ms * 1e6))
