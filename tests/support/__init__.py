"""Helpers shared by the tests and the perf scripts."""
