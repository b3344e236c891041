"""Benchmarks: numbers measured on this machine and written to bench/results/, never asserted in tests."""
