"""The packaged scenarios: one module per scenario, found by name (`recbench run quick`) after any install.

Each module exposes `SCENARIO: bench.scenario.Scenario` or `def build() -> Scenario`. `bench.scenario.load`
executes the file by path, so a scenario module is never imported as part of `bench` itself.
"""
