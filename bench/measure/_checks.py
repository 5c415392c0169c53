"""Input checks shared by the measurement modules: fail before any work, with one line naming the fix."""

from __future__ import annotations

import math
import operator
from typing import Any

from bench.errors import ConfigError


def positive(name: str, value: Any, fix: str = "") -> float:
    """Return `value` as a float if it is a finite number > 0, else raise a one-line ConfigError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number > 0, got {value!r}; {fix or 'pass a positive number'}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}; {fix or 'pass a positive number'}")
    return number


def non_negative(name: str, value: Any, fix: str = "") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}; {fix or 'pass 0 or more'}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}; {fix or 'pass 0 or more'}")
    return number


def count(name: str, value: Any, minimum: int = 1, fix: str = "") -> int:
    """An integer >= minimum (bools rejected: `True` is not a count)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)  # ints and numpy integers, not floats
    except TypeError:
        raise ConfigError(
            f"{name} must be an integer >= {minimum}, got {value!r}; {fix or 'pass a whole number'}"
        ) from None
    if number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {number}; {fix or f'pass {minimum} or more'}")
    return number


def percentile(name: str, value: Any) -> float:
    """A percentile in (0, 100)."""
    p = positive(name, value, "pass a percentile such as 99")
    if p >= 100:
        raise ConfigError(f"{name} must be below 100, got {value!r}; pass a percentile such as 99")
    return p
