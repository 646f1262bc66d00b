"""HTTP routes of the Batch API: OpenAI's /v1/files and /v1/batches, per tenant.

Served at /v1/... and at /v1/endpoints/NAME/... (an SDK whose base_url is an endpoint URL
works unchanged; a batch created there runs on that endpoint, see target.py).

Differences from OpenAI, on purpose:
- completion_window takes any duration up to "24h" written as "<N>h", "<N>m" or "<N>s"
  (OpenAI accepts only "24h"), so short-lived batches can be tried and tested;
- only purpose "batch" can be uploaded; output files have purpose "batch_output"; every
  file expires (`expires_after` on upload as OpenAI has it, else the gateway's file TTL,
  which output files get too); unknown request fields (e.g. output_expires_after) are
  refused, not ignored.
Another tenant's file or batch answers 404, exactly like a missing one, and so does an id
that could not be one of ours. Every call counts against the tenant's rpm. Keyless callers
(tenant anonymous) get the Batch API only when the policy says so: they share one
namespace. Redis out of memory answers 507 (storage full), not "unreachable".
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.batches import keys
from gateway.batches.batch_store import BatchStore
from gateway.batches.files import QuotaExceeded
from gateway.batches.records import BatchRecord, BatchStatus
from gateway.batches.target import laneway_endpoint
from gateway.errors import APIError, bad_request, unavailable
from gateway.intake import caller, endpoint_name
from gateway.redis_errors import is_out_of_memory, storage_full
from gateway.state import GatewayState
from lanes.tenant_spec import ANONYMOUS

BATCH_URLS = ("/v1/chat/completions", "/v1/completions")
MAX_WINDOW_S = 24 * 3600
CREATE_FIELDS = {"input_file_id", "endpoint", "completion_window", "metadata"}
MAX_METADATA_KEYS = 16
MIN_FILE_TTL_S, MAX_FILE_TTL_S = 3600, 30 * 24 * 3600  # OpenAI's bounds on expires_after.seconds
Handler = Callable[[Request], Awaitable[Response]]


def routes() -> list[Route]:
    table = [
        ("/files", upload_file, "POST"), ("/files", list_files, "GET"),
        ("/files/{file_id}", get_file, "GET"), ("/files/{file_id}", delete_file, "DELETE"),
        ("/files/{file_id}/content", file_content, "GET"),
        ("/batches", create_batch, "POST"), ("/batches", list_batches, "GET"),
        ("/batches/{batch_id}", get_batch, "GET"), ("/batches/{batch_id}/cancel", cancel_batch, "POST"),
    ]
    return [Route(prefix + path, handler, methods=[method])
            for prefix in ("/v1", "/v1/endpoints/{endpoint}") for path, handler, method in table]


def _needs_redis(handler: Handler) -> Handler:
    """Redis down: 503 + Retry-After. (No Redis configured: the store itself answers 503, see api.py.)"""
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except RedisError as exc:
            if is_out_of_memory(exc):
                raise storage_full(exc) from exc
            raise unavailable(f"the Batch API's Redis is unreachable ({type(exc).__name__}); retry shortly") from exc
    return wrapped


async def _store(request: Request) -> tuple[GatewayState, BatchStore, str]:
    """Every handler's first step: the store (503 without Redis), the endpoint (404), the tenant
    (401; 403 for keyless callers unless the policy shares them a namespace), its rpm (429)."""
    state: GatewayState = request.app.state.laneway
    store = state.batches.store()
    policy = state.policy_store.policy
    if "endpoint" in request.path_params:
        endpoint_name(request, policy)  # 404 for an unknown endpoint before anything else
    tenant = caller(request, policy)
    if tenant == ANONYMOUS and not policy.has_keyless_batches:
        raise APIError(403, "the Batch API needs an API key: callers without one would share one namespace "
                            "(each seeing the others' files and batches); set tenants.anonymous.shared_batches: "
                            "true in the policy to allow that", type="permission_error", code="api_key_required")
    await state.limiter.admit_call(tenant, policy, f"call-{keys.new_file_id()}")
    return state, store, tenant


def _file_id(request: Request, param: str = "file_id") -> str:
    """The URL's file id; 404 for one that cannot be ours (never a Redis lookup of a crafted key)."""
    file_id = request.path_params[param]
    if not keys.is_file_id(file_id):
        raise _not_found("file", file_id, param)
    return file_id


def _not_found(kind: str, ident: str, param: str) -> APIError:
    return APIError(404, f"no {kind} {ident!r}", type="not_found_error", param=param, code="not_found")


# ---- files -------------------------------------------------------------------------------------

@_needs_redis
async def upload_file(request: Request) -> Response:
    state, store, tenant = await _store(request)
    async with request.form(max_files=1, max_fields=8) as form:
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "batch":
            raise bad_request(f"purpose must be \"batch\" (the only kind of file this gateway takes), got "
                              f"{purpose!r}", param="purpose")
        if not isinstance(upload, UploadFile):
            raise bad_request("multipart field \"file\" with the JSONL file is required", param="file")
        ttl_s = _expires_after(form.get("expires_after[anchor]"), form.get("expires_after[seconds]"),
                               state.config.file_ttl_s)
        raw = await upload.read(state.config.max_file_bytes + 1)
        filename = upload.filename or "input.jsonl"
    if len(raw) > state.config.max_file_bytes:
        raise APIError(413, f"file is larger than {state.config.max_file_bytes} bytes", param="file",
                       code="file_too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"file is not UTF-8 text (byte {exc.start}); a batch file is JSONL", param="file") from None
    del raw  # the decoded text is the one copy kept until Redis has it
    quota = state.config.max_tenant_file_bytes
    try:
        record = await store.files.create(tenant, purpose, filename, text, ttl_s=ttl_s, quota_bytes=quota)
    except QuotaExceeded as exc:
        raise APIError(413, f"tenant {tenant!r} already stores {exc.used} bytes of files; this one "
                            f"({len(text.encode())} bytes) would pass its quota of {quota} bytes; delete files "
                            "it no longer needs, or let them expire", param="file", code="storage_quota_exceeded"
                       ) from None
    return JSONResponse(record.to_openai())


@_needs_redis
async def list_files(request: Request) -> Response:
    _, store, tenant = await _store(request)
    q = request.query_params
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(f"order must be \"asc\" or \"desc\", got {order!r}", param="order")
    limit = _limit(q.get("limit"), default=10_000, most=10_000)
    records, has_more = await store.files.list(tenant, limit=limit, after=q.get("after"),
                                               newest_first=order == "desc", purpose=q.get("purpose"))
    return JSONResponse(_page([r.to_openai() for r in records], has_more))


@_needs_redis
async def get_file(request: Request) -> Response:
    _, store, tenant = await _store(request)
    file_id = _file_id(request)
    record = await store.files.get(file_id, tenant)
    if record is None:
        raise _not_found("file", file_id, "file_id")
    return JSONResponse(record.to_openai())


@_needs_redis
async def file_content(request: Request) -> Response:
    _, store, tenant = await _store(request)
    file_id = _file_id(request)
    content = await store.files.content(file_id, tenant)
    if content is None:
        raise _not_found("file", file_id, "file_id")
    return Response(content, media_type="application/octet-stream")


@_needs_redis
async def delete_file(request: Request) -> Response:
    _, store, tenant = await _store(request)
    file_id = _file_id(request)
    if not await store.files.delete(file_id, tenant):
        raise _not_found("file", file_id, "file_id")
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


# ---- batches -----------------------------------------------------------------------------------

@_needs_redis
async def create_batch(request: Request) -> Response:
    state, store, tenant = await _store(request)
    body = await _json_object(request)
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise bad_request(f"unsupported field(s): {', '.join(unknown)}; this gateway takes "
                          f"{', '.join(sorted(CREATE_FIELDS))}", param=unknown[0])
    url = body.get("endpoint")
    if url not in BATCH_URLS:
        raise bad_request(f"endpoint must be one of {', '.join(BATCH_URLS)}, got {url!r}", param="endpoint")
    window_s = _window_seconds(body.get("completion_window"))
    metadata = _metadata(body.get("metadata"))
    policy = state.policy_store.policy
    target = laneway_endpoint(policy, request.path_params.get("endpoint"), metadata)
    if not policy.can_call(tenant, target):
        raise APIError(403, f"tenant {tenant!r} may not call endpoint {target!r}", type="permission_error",
                       code="endpoint_not_allowed")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str):
        raise bad_request("input_file_id must be the id of an uploaded file", param="input_file_id")
    if not keys.is_file_id(file_id):
        raise _not_found("file", file_id, "input_file_id")
    source = await store.files.get(file_id, tenant)
    if source is None:
        raise _not_found("file", file_id, "input_file_id")
    if source.purpose != "batch":
        raise bad_request(f"file {file_id!r} has purpose {source.purpose!r}; a batch reads a file uploaded with "
                          "purpose \"batch\"", param="input_file_id")
    now = int(time.time())
    record = BatchRecord(id=keys.new_batch_id(), tenant=tenant, endpoint=url, laneway_endpoint=target,
                         input_file_id=file_id, completion_window=body["completion_window"],
                         status=BatchStatus.VALIDATING, created_at=now, expires_at=now + window_s, metadata=metadata)
    await store.create(record)
    return JSONResponse(record.to_openai())


@_needs_redis
async def get_batch(request: Request) -> Response:
    _, store, tenant = await _store(request)
    return JSONResponse((await _own_batch(store, request, tenant)).to_openai())


@_needs_redis
async def list_batches(request: Request) -> Response:
    _, store, tenant = await _store(request)
    q = request.query_params
    records, has_more = await store.list(tenant, limit=_limit(q.get("limit"), default=20, most=100),
                                         after=q.get("after"))
    return JSONResponse(_page([r.to_openai() for r in records], has_more))


@_needs_redis
async def cancel_batch(request: Request) -> Response:
    _, store, tenant = await _store(request)
    batch = await _own_batch(store, request, tenant)
    cancellable = (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS)
    if batch.status not in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        if not await store.transition(batch.id, BatchStatus.CANCELLING, allowed=cancellable):
            latest = await store.get(batch.id, tenant)
            status = latest.status.value if latest else batch.status.value
            raise APIError(409, f"batch {batch.id!r} is {status}; only a validating or in_progress batch can be "
                                "cancelled", code="batch_not_cancellable")
    latest = await store.get(batch.id, tenant)
    if latest is None:  # deleted from Redis meanwhile (by hand, or an eviction)
        raise _not_found("batch", batch.id, "batch_id")
    return JSONResponse(latest.to_openai())


async def _own_batch(store: BatchStore, request: Request, tenant: str) -> BatchRecord:
    batch_id = request.path_params["batch_id"]
    if not keys.is_batch_id(batch_id):
        raise _not_found("batch", batch_id, "batch_id")
    batch = await store.get(batch_id, tenant)
    if batch is None:
        raise _not_found("batch", batch_id, "batch_id")
    return batch


# ---- request parsing ---------------------------------------------------------------------------

async def _json_object(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", code="invalid_json")
    return body


def _window_seconds(value: object) -> int:
    m = re.fullmatch(r"(\d+)([hms])", value) if isinstance(value, str) else None
    seconds = int(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)] if m else 0
    if not 1 <= seconds <= MAX_WINDOW_S:
        raise bad_request(f"completion_window must be \"24h\" (or a shorter duration such as \"30m\"), got "
                          f"{value!r}", param="completion_window")
    return seconds


def _expires_after(anchor: object, seconds: object, default_s: int) -> int:
    """The file's TTL: OpenAI's expires_after (anchor created_at, 3600 s to 30 days), else the default."""
    if anchor is None and seconds is None:
        return default_s
    if anchor != "created_at":
        raise bad_request(f"expires_after[anchor] must be \"created_at\", got {anchor!r}",
                          param="expires_after.anchor")
    if not isinstance(seconds, str) or not seconds.isdigit() or not MIN_FILE_TTL_S <= int(seconds) <= MAX_FILE_TTL_S:
        raise bad_request(f"expires_after[seconds] must be a whole number from {MIN_FILE_TTL_S} to {MAX_FILE_TTL_S}, "
                          f"got {seconds!r}", param="expires_after.seconds")
    return int(seconds)


def _metadata(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if (not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise bad_request(f"metadata must be an object of at most {MAX_METADATA_KEYS} string keys and string "
                          "values", param="metadata")
    return value


def _limit(raw: str | None, *, default: int, most: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise bad_request(f"limit must be a whole number from 1 to {most}, got {raw!r}", param="limit")
    return int(raw)


def _page(data: list[dict], has_more: bool) -> dict:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}
