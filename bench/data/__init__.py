"""Datasets, their acquisition and verification, and splits."""
