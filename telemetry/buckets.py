"""Histogram bucket boundaries from the OpenTelemetry GenAI semantic conventions (seconds, tokens).

Using the convention's boundaries (rather than Prometheus defaults) keeps Laneway's
histograms comparable with other GenAI servers' dashboards, and they resolve what
matters here: single milliseconds of TTFT near an inline-completion budget.
"""

from __future__ import annotations

# gen_ai.server.time_to_first_token
TTFT_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# gen_ai.server.time_per_output_token
TIME_PER_TOKEN_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
# gen_ai.server.request.duration
REQUEST_DURATION_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
# gen_ai.client.token.usage
TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

# Laneway's own: queue waits span a 2 ms interactive window to a 250 ms+ bulk one.
QUEUE_WAIT_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0)
# One engine step: a decode of a tiny model on CPU to a long prefill chunk on a GPU.
STEP_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_SIZE = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
