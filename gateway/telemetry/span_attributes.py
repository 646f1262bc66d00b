"""What a request's server span says when it ends: GenAI conventions plus laneway.*.

Built once per sampled request, at its end. Every attribute costs the SDK a few
microseconds on the request path, so this is the set a latency review needs and the GenAI
conventions ask for, without duplicates; zero counts are left out. Prompt and completion
text only when content recording is on (`RequestTrace.texts` is then a list).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gateway.job import Job
from telemetry import attributes as attr
from telemetry.percentile import percentile

if TYPE_CHECKING:
    from gateway.telemetry.request_trace import RequestTrace


def server_span_attributes(trace: RequestTrace, outcome: str, model: str) -> dict[str, Any]:
    a: dict[str, Any] = {attr.OPERATION_NAME: trace.operation, attr.ENDPOINT: trace.endpoint, attr.LANE: trace.lane,
                         attr.OUTCOME: outcome, attr.REQUEST_MODEL: model}
    if trace.status is not None:
        a[attr.HTTP_STATUS_CODE] = trace.status
    if trace.reject_reason is not None:
        a[attr.REJECT_REASON] = trace.reject_reason
    if trace.error_type is not None:
        a[attr.ERROR_TYPE] = trace.error_type
    if trace.job is not None:
        a.update(_request_attributes(trace.job))
        if trace.window_ms is not None:
            a[attr.BATCH_WINDOW_MS] = trace.window_ms
        if trace.texts is not None:
            a[attr.INPUT_MESSAGES] = _input_messages(trace.job)
    if trace.first_chunk_s is not None:
        a.update({attr.RESPONSE_TIME_TO_FIRST_CHUNK: trace.first_chunk_s - trace.started_s,
                  attr.USAGE_INPUT_TOKENS: trace.num_prompt_tokens, attr.USAGE_OUTPUT_TOKENS: trace.num_output_tokens})
        if trace.num_cached_tokens:
            a[attr.USAGE_CACHE_READ_INPUT_TOKENS] = trace.num_cached_tokens
        if trace.num_preemptions:
            a[attr.NUM_PREEMPTIONS] = trace.num_preemptions
        if trace.texts is not None:
            a[attr.OUTPUT_MESSAGES] = json.dumps([{"role": "assistant", "finish_reason": trace.finish_reason or "",
                                                   "parts": [{"type": "text", "content": "".join(trace.texts)}]}])
    if trace.finish_reason is not None:
        a[attr.RESPONSE_FINISH_REASONS] = [trace.finish_reason]
    if trace.gaps_s:
        gaps = sorted(trace.gaps_s)
        a.update({attr.TBT_P95_MS: percentile(gaps, 95) * 1000.0, attr.TBT_MAX_MS: gaps[-1] * 1000.0})
    return a


def _request_attributes(job: Job) -> dict[str, Any]:
    s = job.sampling
    a: dict[str, Any] = {attr.RESPONSE_ID: job.request_id, attr.TENANT: job.tenant, attr.PRIORITY: job.lane.priority,
                         attr.REQUEST_MAX_TOKENS: s.max_tokens, attr.REQUEST_TEMPERATURE: s.temperature,
                         attr.REQUEST_STREAM: job.stream}
    if s.top_p != 1.0:
        a[attr.REQUEST_TOP_P] = s.top_p
    if s.top_k:
        a[attr.REQUEST_TOP_K] = s.top_k
    if s.seed is not None:
        a[attr.REQUEST_SEED] = s.seed
    if job.queue_wait_s is not None:
        a[attr.QUEUE_WAIT_MS] = job.queue_wait_s * 1000.0
    if job.predicted_wait_s is not None:
        a[attr.PREDICTED_WAIT_MS] = job.predicted_wait_s * 1000.0
    if job.batch_id:
        a.update({attr.BATCH_ID: job.batch_id, attr.BATCH_SIZE: job.batch_size})
    return a


def _input_messages(job: Job) -> str:
    prompt = job.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
        messages = [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                    for m in prompt]
    else:
        text = prompt if isinstance(prompt, str) else json.dumps(prompt)  # token ids, as JSON
        messages = [{"role": "user", "parts": [{"type": "text", "content": text}]}]
    return json.dumps(messages)
