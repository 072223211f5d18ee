"""Benchmarks: each measures the project against a baseline in the same run and reports the ratio."""
