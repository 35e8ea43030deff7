"""Measuring and reporting: benchmarks and their Markdown sections."""
