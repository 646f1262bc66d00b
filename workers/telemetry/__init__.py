"""Worker traces (built from Sequence timestamps when a stream ends) and Prometheus metrics."""

from workers.telemetry.sequence_spans import StreamEnd
from workers.telemetry.telemetry import WorkerTelemetry

__all__ = ["StreamEnd", "WorkerTelemetry"]
