"""GET /openapi.json: the gateway's HTTP surface as OpenAPI 3.1.

Request bodies of the generation routes come from the pydantic models that validate them
(gateway/schemas.py), so the description cannot drift from what the gateway accepts; the
other routes are described here by hand, with the same bounds their handlers check.

The promise: a request this description forbids is refused (unknown fields included), and
one it allows is served, except where a rule JSON Schema cannot state says no: those
refusals are a 400 whose `code` is one of LIMIT_CODES, listed in the 400's description.
tests/lifecycle/test_openapi.py checks that every route the app serves is described, and
runs schemathesis with every check against a real gateway.
"""

from __future__ import annotations

import functools

from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.batches import routes as batch_routes
from gateway.batches import target
from gateway.schemas import MAX_CHOICES, ChatCompletionRequest, CompletionRequest
from gateway.state import GatewayState
from laneway_proto import error_codes

REF = "#/components/schemas/{model}"
ENDPOINT_PREFIX = "/v1/endpoints/{endpoint}"
JSON = "application/json"
# Refusals of schema-valid requests: rules that depend on the served model, the policy, or
# on two fields at once. The code is the error body's `code`.
LIMIT_CODES = {
    error_codes.CONTEXT_LENGTH_EXCEEDED: "prompt + max_tokens over the model's context length or the worker's KV pool",
    error_codes.TOKEN_OUT_OF_VOCABULARY: "a prompt or logit_bias token id outside the model's vocabulary",
    error_codes.CHAT_TEMPLATE_ERROR: "the model's chat template refuses these messages (e.g. role order)",
    "max_tokens_over_limit": "max_tokens (or min_tokens) over the endpoint's limits.max_tokens",
    "prompt_too_long": "a prompt over the endpoint's limits.max_prompt_tokens",
    "min_tokens_over_max_tokens": "min_tokens more than max_tokens (the request's, or the endpoint's default)",
    "too_many_choices": f"more than {MAX_CHOICES} choices (prompts x n)",
    "best_of_not_supported": "best_of other than n",
    "endpoint_conflict": "a batch's metadata.laneway_endpoint other than the endpoint in its URL",
    "invalid_text": "a string holding a lone UTF-16 surrogate escape (\\ud800), which is no text",
    "tool_calls_not_assistant": "tool_calls on a message whose role is not assistant",
    "structured_outputs_not_one": "structured_outputs with other than exactly one of its kinds set",
    "conflicting_constraints": "more than one of response_format, structured_outputs and a forced tool_choice",
    "unsupported_combination": "response_format or structured_outputs with tools and tool_choice auto",
    "tools_missing": "tool_choice (other than none) or parallel_tool_calls without tools",
    "duplicate_tool_name": "two tools of the same name",
    "unknown_tool": "a named tool_choice that is not among tools",
    "tool_parameters_not_object": "a tool's parameters schema whose type is not object",
    error_codes.INVALID_CONSTRAINT: "a JSON schema, regex or grammar the grammar engine refuses",
}


async def openapi(request: Request) -> JSONResponse:
    state: GatewayState = request.app.state.laneway
    return JSONResponse(openapi_document(tuple(sorted(state.policy_store.policy.endpoints))))


@functools.cache
def openapi_document(endpoints: tuple[str, ...] = ()) -> dict:
    """The description; `endpoints` (the policy's, which a reload may change) become the enum
    of the {endpoint} path parameter, so generated clients and fuzzers know the real names."""
    # One call for both models: a nested model they share (ChatMessage) is defined once.
    _, top = models_json_schema([(CompletionRequest, "validation"), (ChatCompletionRequest, "validation")],
                                ref_template=REF)
    paths: dict[str, dict] = {}
    for prefix in ("/v1", ENDPOINT_PREFIX):
        paths[f"{prefix}/completions"] = {"post": _generate("Create a completion", "CompletionRequest", prefix)}
        paths[f"{prefix}/chat/completions"] = {"post": _generate("Create a chat completion", "ChatCompletionRequest",
                                                                 prefix)}
        paths[f"{prefix}/models"] = {"get": _op("The names this URL's routes accept as `model`", prefix,
                                                responses={**_ok("A list of models"),
                                                           "404": _error("Unknown endpoint")})}
        paths[f"{prefix}/models/{{model}}"] = {"get": _op(
            "One of those names", prefix, params=[_path_param("model", "A model name, e.g. laneway")],
            responses={**_ok("The model"), "404": _error("No such model here, or unknown endpoint")})}
        paths.update(_batch_paths(prefix, endpoints))
    if endpoints:
        for ops in paths.values():
            for op in ops.values():
                for param in op.get("parameters", []):
                    if param["name"] == "endpoint":
                        param["schema"] = {"type": "string", "enum": list(endpoints)}
    paths["/healthz"] = {"get": _op("Liveness: the process answers", "", responses=_ok("Alive"), security=[])}
    paths["/readyz"] = {"get": _op("Readiness: a worker is healthy and the gateway is not draining", "",
                                   responses={**_ok("Ready"), "503": _error("Not ready, or draining")},
                                   security=[])}
    paths["/metrics"] = {"get": _op("Prometheus metrics", "", security=[], responses={
        "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}})}
    paths["/openapi.json"] = {"get": _op("This document", "", responses=_ok("OpenAPI 3.1"), security=[])}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Laneway gateway", "version": "1",
                 "description": "OpenAI-compatible completions, chat completions and Batch API, per endpoint lane."},
        "paths": paths,
        "components": {
            "schemas": {**top["$defs"], "Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "API key; optional when the policy sets auth.required: "
                                                          "false"}},
        },
        "security": [{"bearer": []}, {}],
    }


def _generate(summary: str, model_name: str, prefix: str) -> dict:
    body = {"required": True, "content": {JSON: {"schema": {"$ref": REF.format(model=model_name)}}}}
    return _op(summary, prefix, body=body,
               responses={
                   "200": {"description": "One JSON body, or Server-Sent Events when stream is true",
                           "content": {JSON: {"schema": {"type": "object"}},
                                       "text/event-stream": {"schema": _SSE_EVENT}}},
                   "400": _error("Invalid body (names the field), or refused by a rule the schema cannot "
                                 "state; then `code` is one of: " + "; ".join(
                                     f"{code} ({rule})" for code, rule in LIMIT_CODES.items())),
                   "401": _error("Missing or invalid API key"),
                   "403": _error("The tenant may not call this endpoint"),
                   "404": _error("Unknown endpoint or model"),
                   "408": _error("The body stalled"),
                   "413": _error("The body is too large"),
                   "429": _error("Refused for capacity or rate (Retry-After, x-laneway-reject-reason)"),
                   "502": _error("The worker failed"),
                   "503": _error("No worker can serve now, or the gateway is shutting down (Retry-After)"),
               })


def _batch_paths(prefix: str, endpoints: tuple[str, ...]) -> dict[str, dict]:
    after = _query("after", {"type": "string"})
    files_page = [_query("limit", {"type": "integer", "minimum": 1, "maximum": batch_routes.MAX_FILES_PAGE}), after]
    batches_page = [_query("limit", {"type": "integer", "minimum": 1, "maximum": batch_routes.MAX_BATCHES_PAGE}),
                    after]
    file_id = [_path_param("file_id")]
    batch_id = [_path_param("batch_id")]
    upload = {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["purpose", "file"], "additionalProperties": False,
                   "properties": {"purpose": {"type": "string", "enum": ["batch"]},
                                  "file": {"type": "string", "contentMediaType": "application/jsonl",
                                           "description": "JSONL text (UTF-8), one request per line; a file "
                                                          "part or a plain field"}}}}}}
    endpoint_name = {"type": "string", **({"enum": list(endpoints)} if endpoints else {})}
    create = {"required": True, "content": {JSON: {"schema": {
        "type": "object", "required": ["input_file_id", "endpoint", "completion_window"],
        "additionalProperties": False,
        "properties": {"input_file_id": {"type": "string"},
                       "endpoint": {"type": "string", "enum": list(batch_routes.BATCH_URLS)},
                       "completion_window": {"type": "string", "pattern": COMPLETION_WINDOW_PATTERN,
                                             "description": "1s up to 24h, as <N>h, <N>m or <N>s"},
                       "metadata": {"type": "object", "maxProperties": batch_routes.MAX_METADATA_KEYS,
                                    "additionalProperties": {"type": "string"},
                                    "properties": {target.METADATA_KEY: endpoint_name}}}}}}}
    batch_errors = {"400": _error("Invalid request, or refused by a rule the schema cannot state; then `code` "
                                  "is endpoint_conflict or invalid_text (see the generation routes' 400)"),
                    "401": _error("Missing or invalid API key"),
                    "403": _error("No API key while the policy gives keyless callers no shared namespace "
                                  "(code api_key_required), or a batch for an endpoint this tenant may not call"),
                    "404": _error("No such file or batch for this tenant"),
                    "429": _error("The tenant's requests-per-minute limit (Retry-After)"),
                    "503": _error("No Redis configured, or Redis is unavailable (Retry-After)"),
                    "507": _error("The gateway's Redis is out of memory: nothing more can be stored")}
    return {
        f"{prefix}/files": {
            "post": _op("Upload a JSONL batch input file", prefix, body=upload,
                        responses={**_ok("The file object"), **batch_errors, "413": _error("The file is too large")}),
            "get": _op("List files", prefix, params=[*files_page, _query("purpose", {"type": "string"}),
                                                     _query("order", {"type": "string", "enum": ["asc", "desc"]})],
                       responses={**_ok("A page of files"), **batch_errors})},
        f"{prefix}/files/{{file_id}}": {
            "get": _op("Get a file", prefix, params=file_id, responses={**_ok("The file object"), **batch_errors}),
            "delete": _op("Delete a file", prefix, params=file_id, responses={**_ok("Deleted"), **batch_errors})},
        f"{prefix}/files/{{file_id}}/content": {
            "get": _op("A file's content", prefix, params=file_id, responses={
                "200": {"description": "The file", "content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}}, **batch_errors})},
        f"{prefix}/batches": {
            "post": _op("Create a batch", prefix, body=create, responses={**_ok("The batch object"), **batch_errors,
                                                                          "403": _error("Endpoint not allowed")}),
            "get": _op("List batches", prefix, params=batches_page,
                       responses={**_ok("A page of batches"), **batch_errors})},
        f"{prefix}/batches/{{batch_id}}": {
            "get": _op("Get a batch", prefix, params=batch_id, responses={**_ok("The batch object"), **batch_errors})},
        f"{prefix}/batches/{{batch_id}}/cancel": {
            "post": _op("Cancel a batch", prefix, params=batch_id,
                        responses={**_ok("The batch object"), **batch_errors})},
    }


def _op(summary: str, prefix: str, *, responses: dict, params: list[dict] | None = None, body: dict | None = None,
        security: list | None = None) -> dict:
    op: dict = {"summary": summary, "responses": responses}
    parameters = ([_path_param("endpoint", "A policy endpoint, e.g. inline-completion")]
                  if prefix == ENDPOINT_PREFIX else []) + (params or [])
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    if security is not None:
        op["security"] = security
    return op


def _ok(description: str) -> dict:
    return {"200": {"description": description, "content": {JSON: {"schema": {"type": "object"}}}}}


def _error(description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": {"$ref": REF.format(model="Error")}}}}


def _path_param(name: str, description: str = "") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def _query(name: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema}


# 1 second up to 24 hours: exactly what gateway/batches/routes.py's _window_seconds takes.
COMPLETION_WINDOW_PATTERN = ("^0*(?:(?:[1-9]|1[0-9]|2[0-4])h|(?:[1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)m"
                             "|(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)s)$")

# One Server-Sent Event: `data` is a JSON chunk (or an error), the last one "[DONE]".
_SSE_EVENT = {"type": "object", "required": ["data"],
              "properties": {"data": {"type": "string"}, "event": {"type": "string"}}}

_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}
