"""Recommenders: one protocol (fit / recommend / predict_rating / footprint) for classic CF and LLM models."""
