"""Benchmarks: standalone scripts, run by hand (`python benchmarks/<name>.py --help`), not by pytest."""
