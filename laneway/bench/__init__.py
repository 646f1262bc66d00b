"""Benchmarks that run whole Laneway deployments side by side (`laneway bench lanes`)."""
