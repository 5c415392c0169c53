"""User-facing errors: one line naming the problem and what to do."""


class BenchError(Exception):
    """An error caused by input the user can fix. The CLI prints it as one line and exits non-zero.

    The message must name the problem *and* what to do about it.
    """

    exit_code = 2


class DataError(BenchError):
    """A dataset file is missing, corrupt, or malformed."""


class ConfigError(BenchError):
    """A scenario, option or setting is invalid."""
