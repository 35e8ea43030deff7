"""Measuring and reporting: benchmarks, summaries for the docs."""
