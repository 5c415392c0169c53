"""The one least-squares power-law fit: y = a * x^b as a straight line through (log x, log y).

Used for cost against catalogue size (bench.growth) and against model size (bench.sizes); each wraps it
with its own input rules and result type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogLogLine:
    exponent: float  # b, the slope
    log_coefficient: float  # log a, the intercept
    r2: float | None  # share of the log-variance explained; None below three points (two always fit exactly)
    n: int
    ss_residual: float  # sum of squared log residuals
    sxx: float  # sum of squared deviations of log x (for the slope's standard error)


def fit_log_log(x: np.ndarray, y: np.ndarray) -> LogLogLine:
    """Least squares of log y on log x. Callers ensure finite positive values and two distinct x."""
    lx, ly = np.log(np.asarray(x, dtype=np.float64)), np.log(np.asarray(y, dtype=np.float64))
    sxx = float(((lx - lx.mean()) ** 2).sum())
    b = float(((lx - lx.mean()) * (ly - ly.mean())).sum() / sxx)
    log_a = float(ly.mean() - b * lx.mean())
    ss_res = float(((ly - (log_a + b * lx)) ** 2).sum())
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = None
    if lx.size >= 3:
        r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0  # all values equal: a flat line explains them all
    return LogLogLine(b, log_a, r2, int(lx.size), ss_res, sxx)
