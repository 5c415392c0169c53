"""recbench: what a language-model recommender really costs, measured beside classic CF."""

__version__ = "0.1.0"
