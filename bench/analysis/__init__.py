"""The analysis layer: functions of a run's cells (plus machine facts, a price sheet and options) that compute every
figure derived from them (cost, hosted-API lines, size fits, harness overhead, utilisation and roofline, the
quality gate, online comparisons) into the results' typed `derived` section, once, at the end of a run
(bench.analysis.derive). Readers (report, console, findings, compare) render that section; they compute nothing.

Kept free of imports so that importing a reader-side helper (paired, blend) loads nothing else.
"""
