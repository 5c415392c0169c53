"""Names that become file and folder names (scenarios, runs): what is safe as one path component."""

from __future__ import annotations

import re

from bench.errors import ConfigError

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")


def check_name(name: object, what: str = "scenario name") -> str:
    """`name` if it is safe as one path component; ConfigError otherwise (no separators, no `..`, no absolute)."""
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise ConfigError(
            f"{what} {name!r} is not allowed: use letters, digits, '.', '_' and '-' only (it names files and folders)"
        )
    return name
