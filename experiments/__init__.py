"""Theorem-check and empirical experiments: one module each (see README)."""
