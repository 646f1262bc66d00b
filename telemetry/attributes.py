"""Span and attribute names: the trace vocabulary gateway, workers and reviews share.

OpenTelemetry GenAI semantic conventions where they define a name (their Python constants
are deprecated in favour of a separate package, so the strings are spelled out here);
`laneway.*` for what only an endpoint-aware server knows. Times in laneway.* attributes
are milliseconds (`*_ms`); GenAI's own are seconds, as that convention says.
"""

from __future__ import annotations

# -- GenAI semantic conventions -----------------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"  # "chat" | "text_completion"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # seconds
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"  # only with content recording on
OUTPUT_MESSAGES = "gen_ai.output.messages"  # only with content recording on

# -- HTTP / RPC / error semantic conventions ----------------------------------------------
HTTP_STATUS_CODE = "http.response.status_code"
ERROR_TYPE = "error.type"
RPC_SYSTEM = "rpc.system"
SERVER_ADDRESS = "server.address"

# -- Laneway ------------------------------------------------------------------------------
ENDPOINT = "laneway.endpoint"
LANE = "laneway.lane"
TENANT = "laneway.tenant"
PRIORITY = "laneway.priority"
BATCH_WINDOW_MS = "laneway.batch_window_ms"  # the lane's window when the request left it
BATCH_ID = "laneway.batch_id"
BATCH_SIZE = "laneway.batch_size"  # requests that left the lane together
QUEUE_WAIT_MS = "laneway.queue_wait_ms"  # gateway lane queue
PREDICTED_WAIT_MS = "laneway.predicted_wait_ms"  # admission's prediction of the wait before the start
TBT_P95_MS = "laneway.tbt_p95_ms"  # gaps between output chunks of this request
TBT_MAX_MS = "laneway.tbt_max_ms"
NUM_PREEMPTIONS = "laneway.num_preemptions"
CACHED_PROMPT_TOKENS = "laneway.cached_prompt_tokens"
REJECT_REASON = "laneway.reject_reason"  # queue-full, budget, deadline, worker-full, rate limits
OUTCOME = "laneway.outcome"  # see OUTCOMES
ATTEMPT = "laneway.attempt"  # dispatch attempt (1 = first worker tried)
WORKER_ID = "laneway.worker_id"
NUM_PREFILL_CHUNKS = "laneway.num_prefill_chunks"
ENGINE_QUEUE_MS = "laneway.engine_queue_ms"

OK = "ok"  # finished with stop or length
ABORTED = "aborted"  # the worker ended it (draining, failure)
REFUSED = "refused"  # capacity or rate: 429/503 with a reject reason
INVALID = "invalid"  # the client's request was wrong (other 4xx)
ERROR = "error"  # ours: 5xx, worker lost mid-stream
CANCELLED = "cancelled"  # the client went away
OUTCOMES = (OK, ABORTED, REFUSED, INVALID, ERROR, CANCELLED)

# -- Span names ---------------------------------------------------------------------------
GATEWAY_SCOPE = "laneway.gateway"
WORKER_SCOPE = "laneway.worker"
LANE_QUEUE_SPAN = "laneway.lane.queue"
GENERATE_RPC_SPAN = "laneway.worker.v1.Worker/Generate"  # gateway CLIENT and worker SERVER
ENGINE_QUEUE_SPAN = "laneway.engine.queue"
ENGINE_PREFILL_SPAN = "laneway.engine.prefill"
ENGINE_DECODE_SPAN = "laneway.engine.decode"
