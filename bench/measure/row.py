"""One measured or derived figure: the row type every measurement returns and the results file stores.

It lives here, at the bottom of the package, so that `bench.measure` needs nothing above it: `bench.results`
re-exports it as part of the results schema.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MetricRow:
    """One figure. `label` says how it was obtained: measured, estimated, projected or cost-only.

    `flag` is non-empty when the figure must not be trusted as is (e.g. "n<100: p99 unreliable").
    """

    metric: str
    value: float
    unit: str = ""
    load: str = ""
    n: int | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    flag: str = ""
    label: str = "measured"
