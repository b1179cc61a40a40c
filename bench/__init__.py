"""Benchmarks against peers; each module writes bench/results/<name>.json (see bench/__main__.py)."""
