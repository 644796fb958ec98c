"""Therapy Timer: per-code treatment stopwatches and billing-correct units."""

__version__ = "0.1.0"
