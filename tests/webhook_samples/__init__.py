"""Documented webhook bodies per provider, and how the tests sign them (signing.py)."""
