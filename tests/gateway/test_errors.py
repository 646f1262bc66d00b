"""Exception handlers: every error a client sees is an OpenAI-style body, never a traceback."""

from __future__ import annotations

import json

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from gateway.errors import APIError, api_error_handler, http_exception_handler

pytestmark = pytest.mark.anyio


def _request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""})


async def test_an_api_error_is_rendered_with_its_status_and_headers() -> None:
    response = await api_error_handler(_request(), APIError(429, "slow down", code="rate-limit",
                                                            headers={"Retry-After": "2"}))
    body = json.loads(bytes(response.body))
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert body == {"error": {"message": "slow down", "type": "invalid_request_error", "param": None,
                              "code": "rate-limit"}}


@pytest.mark.parametrize("handler", [api_error_handler, http_exception_handler])
async def test_a_handler_given_another_exception_answers_500_not_a_traceback(handler) -> None:
    response = await handler(_request(), KeyError("surprise"))
    body = json.loads(bytes(response.body))
    assert response.status_code == 500 and body["error"]["code"] == "internal_error"
    assert "surprise" not in body["error"]["message"]


async def test_an_http_exception_keeps_its_status() -> None:
    response = await http_exception_handler(_request(), HTTPException(404, "no such route"))
    body = json.loads(bytes(response.body))
    assert response.status_code == 404 and body["error"]["type"] == "not_found_error"
