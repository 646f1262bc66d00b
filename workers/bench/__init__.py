"""Benchmarks of one worker's engine in-process (`laneway bench engine`)."""
