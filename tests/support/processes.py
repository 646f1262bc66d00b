"""Real processes for integration tests (the helpers live in laneway.procs, shared with benchmarks)."""

from laneway.procs import Proc, free_port, laneway_cmd, start_gateway, start_worker, wait_ready

__all__ = ["Proc", "free_port", "laneway_cmd", "start_gateway", "start_worker", "wait_ready"]
