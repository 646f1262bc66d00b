"""From an HTTP request to a `Job`: endpoint, tenant, body, limits, lane.

Order matters for what a client is told: unknown endpoint (404) before auth (401/403)
before body problems (400), so a caller without rights learns nothing about bodies.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.requests import Request

from gateway.body_checks import refuse_lone_surrogates, refuse_unsupported
from gateway.constraint import Constraint
from gateway.errors import APIError, bad_request, from_validation_error
from gateway.job import Job, JobKind, LaneTicket, LatencyTargets, PromptList, Sampling
from gateway.model_catalog import ModelCatalog
from gateway.schemas import MAX_CHOICES, ChatCompletionRequest, ChatMessage, CompletionRequest
from gateway.structured import refuse_legacy_fields, response_format_constraint, structured_outputs_constraint
from gateway.tools.plan import ToolPlan, tool_plan
from lanes.api_key import hash_api_key
from lanes.classify import RequestFeatures, classify
from lanes.policy import Policy
from lanes.tenant_spec import ANONYMOUS
from lanes.tenants import authenticate

if TYPE_CHECKING:  # annotation only: gateway.state imports the Batch API, which imports this module
    from gateway.state import GatewayState

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = {"completion": 16, "chat": 256}  # OpenAI's completions default is 16


def endpoint_name(request: Request, policy: Policy) -> str:
    name = request.path_params.get("endpoint") or policy.default_endpoint
    if name not in policy.endpoints:
        raise APIError(404, f"unknown endpoint {name!r}; this gateway serves: {', '.join(sorted(policy.endpoints))}",
                       type="not_found_error", code="unknown_endpoint", param="endpoint")
    return name


def tenant_for(request: Request, policy: Policy, endpoint: str) -> str:
    tenant = caller(request, policy)
    if not policy.can_call(tenant, endpoint):
        raise APIError(403, f"tenant {tenant!r} may not call endpoint {endpoint!r}", type="permission_error",
                       code="endpoint_not_allowed")
    return tenant


def caller(request: Request, policy: Policy) -> str:
    """The tenant of the request's API key (401 without a valid one); no endpoint check.

    When the policy does not require auth, a key that matches no tenant is served as tenant
    anonymous, as OpenAI-compatible local servers do: every SDK sends some key, and a local
    user should not need ours. It is logged (once per key) and counted. With auth.required
    it is a 401, as it must be."""
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else (auth.strip() or None)
    tenant = authenticate(policy, key)
    if tenant is None and key and not policy.auth.required:
        _note_unknown_key(request, hash_api_key(key))
        return ANONYMOUS
    if tenant is None:
        msg = "missing API key (send Authorization: Bearer KEY)" if not key else "invalid API key"
        raise APIError(401, msg, type="authentication_error", code="invalid_api_key")
    return tenant


def _note_unknown_key(request: Request, digest: str) -> None:
    state: GatewayState = request.app.state.laneway
    state.telemetry.metrics.unknown_api_keys.inc()
    _log_unknown_key(digest[:12])


@functools.lru_cache(maxsize=1024)
def _log_unknown_key(fingerprint: str) -> None:
    # Cached: one line per distinct key (the SDK sends the same one on every request), not per request.
    log.warning("an API key that matches no tenant (sha256 %s...) is served as tenant %r: the policy does not "
                "require auth (auth.required: false)", fingerprint, ANONYMOUS)


async def build_job(request: Request, kind: JobKind, policy: Policy, catalog: ModelCatalog) -> Job:
    endpoint = endpoint_name(request, policy)
    tenant = tenant_for(request, policy, endpoint)
    body = await _json_body(request)
    return job_from_body(policy, catalog, kind, endpoint, tenant, body, request.headers)


def job_from_body(policy: Policy, catalog: ModelCatalog, kind: JobKind, endpoint: str, tenant: str, body: object,
                  headers: Mapping[str, str]) -> Job:
    """Validate an OpenAI body for an endpoint and classify it; used by HTTP routes and the Batch API.
    The job keeps this policy's decisions even if the policy is reloaded while it runs."""
    schema = ChatCompletionRequest if kind == "chat" else CompletionRequest
    refuse_legacy_fields(body)
    refuse_unsupported(body)
    refuse_lone_surrogates(body)
    try:
        req = schema.model_validate(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    tools = tool_plan(req.tools, req.tool_choice, req.parallel_tool_calls) if isinstance(req, ChatCompletionRequest) \
        else None
    constraint = _constraint(req, tools)
    names = catalog.model_names(endpoint)
    if req.model is not None and req.model not in names:
        raise APIError(404, f"model {req.model!r} does not exist; available: {', '.join(names)}",
                       type="not_found_error", param="model", code="model_not_found")
    spec = policy.endpoints[endpoint]
    prompt, estimates = _prompt(req, catalog, tools)
    estimate = sum(estimates)
    sampling = _sampling(req, kind, spec, num_prompts=len(estimates))
    if spec.limits.max_prompt_tokens is not None and max(estimates) > spec.limits.max_prompt_tokens:
        raise bad_request(f"prompt has about {max(estimates)} tokens; endpoint {endpoint!r} accepts at most "
                          f"{spec.limits.max_prompt_tokens}", param="prompt", code="prompt_too_long")
    lower_headers = {k.lower(): v for k, v in headers.items()}
    decision = classify(RequestFeatures(endpoint=endpoint, stream=req.stream, tenant=tenant,
                                        headers=lower_headers, prompt_tokens=estimate,
                                        max_tokens=sampling.max_tokens), policy)
    lane = decision.lane
    ticket = LaneTicket.for_lane(decision.lane_name, lane)
    now = time.time()
    deadline = now + lane.max_queue_wait_ms / 1000.0
    client_timeout = lower_headers.get("x-laneway-deadline-ms")
    if client_timeout:
        try:  # a client deadline may shorten, never lengthen, the lane's
            deadline = min(deadline, now + float(client_timeout) / 1000.0)
        except ValueError:
            raise bad_request(f"x-laneway-deadline-ms must be a number of ms, got {client_timeout!r}") from None
    # Gaps between tokens are a promise only to a client that watches them arrive: a request
    # answered in one body carries no TBT target, so the worker need not shrink steps for it.
    targets = LatencyTargets(ttft_ms=spec.slo.ttft_p95_ms, tbt_ms=spec.slo.tbt_p95_ms if req.stream else None)
    tenant_spec = policy.tenants.get(tenant)
    return Job(endpoint=endpoint, tenant=tenant, kind=kind, prompt=prompt, sampling=sampling, lane=ticket,
               stream=req.stream, stream_usage=req.include_usage_in_stream, prompt_tokens_estimate=estimate,
               deadline=deadline, created=now, targets=targets, constraint=constraint, tools=tools,
               tenant_weight=tenant_spec.weight if tenant_spec is not None else 1.0)


async def _json_body(request: Request) -> object:
    raw = await request.body()
    if not raw:
        raise bad_request("request body is empty; expected a JSON object", code="invalid_json")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise bad_request("request body nests arrays or objects too deeply", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request(f"request body must be a JSON object, got {type(body).__name__}", code="invalid_json")
    return body


def _prompt(req: CompletionRequest | ChatCompletionRequest, catalog: ModelCatalog, tools: ToolPlan | None
            ) -> tuple[str | list[int] | list[dict] | PromptList, list[int]]:
    """The job's prompt and the estimated tokens of each of its prompts (chat: one)."""
    if isinstance(req, ChatCompletionRequest):
        messages = [_message(m) for m in req.messages]
        text_len = sum(len(m["content"].encode()) + 8 for m in messages)
        text_len += sum(len(c["name"]) + len(c["arguments"].encode()) + 32
                        for m in messages for c in m.get("tool_calls", ()))
        if tools is not None:  # the template writes the tools' signatures into the prompt
            text_len += sum(len(t.name) + len(t.description.encode()) + len(t.parameters_json.encode()) + 64
                            for t in tools.shown_tools)
        return messages, [catalog.estimate_tokens(text_len)]
    prompts = req.prompts
    estimates = [catalog.estimate_tokens(len(p.encode())) if isinstance(p, str) else len(p) for p in prompts]
    if len(prompts) == 1:
        return (prompts[0] if isinstance(prompts[0], str) else list(prompts[0])), estimates
    return PromptList(tuple(p if isinstance(p, str) else tuple(p) for p in prompts)), estimates


def _message(m: ChatMessage) -> dict:
    message: dict = {"role": m.role, "content": m.text()}
    if m.tool_calls:
        message["tool_calls"] = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                                 for c in m.tool_calls]
    if m.tool_call_id is not None:
        message["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        message["name"] = m.name
    return message


def _constraint(req: CompletionRequest | ChatCompletionRequest, tools: ToolPlan | None) -> Constraint | None:
    """At most one thing may constrain the output; each refusal names the fields."""
    given = [(name, c) for name, c in (
        ("response_format", response_format_constraint(req.response_format)
         if isinstance(req, ChatCompletionRequest) else None),
        ("structured_outputs", structured_outputs_constraint(req.structured_outputs)),
        ("tool_choice", tools.constraint() if tools is not None else None)) if c is not None]
    if len(given) > 1:
        (a, _), (b, _) = given[:2]
        raise bad_request(f"{a} and {b} both constrain the output; send only one", param=b,
                          code="conflicting_constraints")
    if given and tools is not None and tools.mode == "auto":
        raise bad_request(f"{given[0][0]} with tools and tool_choice 'auto' is not supported: the output could "
                          f"be a tool call or the format; send tool_choice 'none' or 'required'",
                          param="tool_choice", code="unsupported_combination")
    return given[0][1] if given else None


def _sampling(req: CompletionRequest | ChatCompletionRequest, kind: str, spec, num_prompts: int) -> Sampling:
    """The request's sampling values, else the endpoint policy's, else OpenAI's defaults.

    Defaults are marked as such: the worker may clamp a default max_tokens to the context
    the prompt leaves, and replace a default temperature/top_p/top_k with the model's own
    (generation_config.json). An explicit max_tokens that does not fit stays an error."""
    d = spec.sampling
    prompt_logprobs = None
    if isinstance(req, ChatCompletionRequest):
        client_max_tokens = req.requested_max_tokens
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
    else:
        client_max_tokens = req.max_tokens
        logprobs = req.logprobs
        if req.best_of is not None and req.best_of != req.n:
            raise bad_request(f"best_of={req.best_of} with n={req.n}: only best_of equal to n is served (ranking "
                              "candidates by logprob is not supported; ask for n choices and pick yourself)",
                              param="best_of", code="best_of_not_supported")
        if req.echo and logprobs is not None:
            prompt_logprobs = logprobs
    if num_prompts * req.n > MAX_CHOICES:
        raise bad_request(f"{num_prompts} prompts x n={req.n} is {num_prompts * req.n} choices; at most "
                          f"{MAX_CHOICES} per request", param="n", code="too_many_choices")
    max_tokens = client_max_tokens or d.max_tokens or min(DEFAULT_MAX_TOKENS[kind], spec.limits.max_tokens or 1 << 30)
    if spec.limits.max_tokens is not None and max_tokens > spec.limits.max_tokens:
        raise bad_request(f"max_tokens={max_tokens} is over this endpoint's limit of {spec.limits.max_tokens}",
                          param="max_tokens", code="max_tokens_over_limit")
    min_tokens = req.min_tokens or 0
    if min_tokens > max_tokens:
        raise bad_request(f"min_tokens={min_tokens} is more than max_tokens={max_tokens}", param="min_tokens",
                          code="min_tokens_over_max_tokens")
    stop = tuple(req.stop_list) or tuple(d.stop or ())
    return Sampling(
        max_tokens=max_tokens,
        temperature=_first(req.temperature, d.temperature, 1.0),
        top_p=_first(req.top_p, d.top_p, 1.0),
        top_k=_first(req.top_k, d.top_k, 0),
        seed=req.seed,
        stop=stop,
        ignore_eos=req.ignore_eos,
        logprobs=logprobs,
        n=req.n,
        presence_penalty=req.presence_penalty or 0.0,
        frequency_penalty=req.frequency_penalty or 0.0,
        repetition_penalty=_first(req.repetition_penalty, 1.0),
        logit_bias=req.logit_bias_pairs,
        min_tokens=min_tokens,
        echo=isinstance(req, CompletionRequest) and req.echo,
        prompt_logprobs=prompt_logprobs,
        max_tokens_is_default=not client_max_tokens,
        temperature_is_default=req.temperature is None and d.temperature is None,
        top_p_is_default=req.top_p is None and d.top_p is None,
        top_k_is_default=req.top_k is None and d.top_k is None,
    )


def _first(*values):
    return next(v for v in values if v is not None)
