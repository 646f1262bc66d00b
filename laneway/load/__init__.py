"""Open-loop load generation against any OpenAI-compatible server (`laneway load`, `laneway bench lanes`).

The workload model is importable without an HTTP client (`laneway plan` sizes the same
workloads); the runner lives in open_loop.py and closed_loop.py.
"""

from laneway.load.workload import PlannedRequest, Workload
from laneway.load.workload_file import WorkloadError, load_workload

__all__ = ["PlannedRequest", "Workload", "WorkloadError", "load_workload"]
