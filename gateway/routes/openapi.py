"""GET /openapi.json: the gateway's HTTP surface as OpenAPI 3.1.

Request bodies of the generation routes come from the pydantic models that validate them
(gateway/schemas.py), so the description cannot drift from what the gateway accepts; the
other routes are described here by hand. tests/lifecycle/test_openapi.py checks that every
route the app serves is described, and fuzzes the description against a real gateway.
"""

from __future__ import annotations

import functools

from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.schemas import ChatCompletionRequest, CompletionRequest
from gateway.state import GatewayState

REF = "#/components/schemas/{model}"
ENDPOINT_PREFIX = "/v1/endpoints/{endpoint}"
JSON = "application/json"


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
        paths[f"{prefix}/models"] = {"get": _op("List the served model and the policy's endpoints", prefix,
                                                responses=_ok("A list of models"))}
        paths.update(_batch_paths(prefix))
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
                                       "text/event-stream": {"schema": {"type": "string"}}}},
                   "400": _error("Invalid body (names the field)"),
                   "401": _error("Missing or invalid API key"),
                   "403": _error("The tenant may not call this endpoint"),
                   "404": _error("Unknown endpoint or model"),
                   "408": _error("The body stalled"),
                   "413": _error("The body is too large"),
                   "429": _error("Refused for capacity or rate (Retry-After, x-laneway-reject-reason)"),
                   "502": _error("The worker failed"),
                   "503": _error("No worker can serve now, or the gateway is shutting down (Retry-After)"),
               })


def _batch_paths(prefix: str) -> dict[str, dict]:
    page = [_query("limit", {"type": "integer", "minimum": 1}), _query("after", {"type": "string"})]
    file_id = [_path_param("file_id")]
    batch_id = [_path_param("batch_id")]
    upload = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["purpose", "file"],
        "properties": {"purpose": {"type": "string", "enum": ["batch"]},
                       "file": {"type": "string", "format": "binary"}}}}}}
    create = {"required": True, "content": {JSON: {"schema": {
        "type": "object", "required": ["input_file_id", "endpoint", "completion_window"],
        "additionalProperties": False,
        "properties": {"input_file_id": {"type": "string"},
                       "endpoint": {"type": "string", "enum": ["/v1/chat/completions", "/v1/completions"]},
                       "completion_window": {"type": "string", "pattern": "^[0-9]+[hms]$"},
                       "metadata": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}
    batch_errors = {"400": _error("Invalid request"), "401": _error("Missing or invalid API key"),
                    "404": _error("No such file or batch for this tenant"),
                    "503": _error("No Redis configured, or Redis is unavailable (Retry-After)")}
    return {
        f"{prefix}/files": {
            "post": _op("Upload a JSONL batch input file", prefix, body=upload,
                        responses={**_ok("The file object"), **batch_errors, "413": _error("The file is too large")}),
            "get": _op("List files", prefix, params=[*page, _query("purpose", {"type": "string"}),
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
            "get": _op("List batches", prefix, params=page, responses={**_ok("A page of batches"), **batch_errors})},
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


_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}
