"""Test doubles and toy data shared by tests (never imported by bench/)."""
