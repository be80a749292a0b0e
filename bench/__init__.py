"""Benchmarks (not tests); each measures its bare baseline in the same run."""
