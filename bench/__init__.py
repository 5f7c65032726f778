"""Benchmarks: `python -m bench.engine`, `python -m bench.slack` (or `make bench`)."""
