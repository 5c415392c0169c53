"""A probe strategy that advances a fake clock: proves which work a replay cell times."""

from __future__ import annotations

import numpy as np

from bench.recommenders.classic.pop import Pop
from bench.recommenders.online.base import Strategy
from tests.support.fakeclock import FakeClock

CLOCK = FakeClock()
FIT_S, UPDATE_S, RECOMMEND_S = 5.0, 1.0, 1000.0


def clock() -> tuple[int, int]:
    """(wall ns, CPU ns): the same fake time for both."""
    return CLOCK.now_ns(), CLOCK.now_ns()


class ClockProbe(Strategy):
    """Pop, with a fake cost per call: 5 s to fit, 1 s per update, 1000 s per recommend call."""

    name = "clock-probe"
    model_key = "pop"

    def __init__(self) -> None:
        super().__init__()
        self.model = Pop()

    def score_model(self):
        return self.model

    def start(self, train) -> None:
        CLOCK.advance_ms(FIT_S * 1e3)
        self.model.fit(train)
        self._set_catalogue(train)

    def update(self, update) -> str:
        CLOCK.advance_ms(UPDATE_S * 1e3)
        self.model.fit(update.history)
        self._set_catalogue(update.history)
        return "refit"

    def recommend(self, users: np.ndarray, k: int, exclude):
        CLOCK.advance_ms(RECOMMEND_S * 1e3)
        return super().recommend(users, k, exclude)
