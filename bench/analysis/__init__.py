"""Pure functions over results: figures derived from cells after they ran (comparisons, frontier, gate)."""
