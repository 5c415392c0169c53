"""Online update strategies: how a model absorbs a replay's windows (stale, refit, fold-in, re-encode, fine-tune).

A strategy wraps one of the recommenders in this package and knows nothing of timing or results; the replay
cell (bench.replay_cell) times its `update` and evaluates its `recommend` apart. See base.Strategy.
"""
