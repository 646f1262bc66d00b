"""Batch input validation: one pass, line limit enforced while reading, bodies checked."""

from __future__ import annotations

import json

import pytest

from gateway.batches import keys, validate
from gateway.batches.validate import validate_file
from gateway.errors import bad_request

URL = "/v1/completions"


def _line(i: int, body: dict | None = None) -> str:
    return json.dumps({"custom_id": f"r{i}", "method": "POST", "url": URL, "body": body or {"prompt": "x"}})


def _check(body: dict) -> None:
    if body.get("max_tokens", 0) > 10:
        raise bad_request("max_tokens too large", param="max_tokens")


def test_the_line_limit_stops_reading(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(validate, "MAX_LINES", 3)
    text = "\n".join([_line(i) for i in range(4)] + ["not json at all"]) + "\n"
    items, errors = validate_file(text, URL, _check)
    assert [e.code for e in errors] == ["too_many_requests"], "nothing past the limit is parsed"
    assert errors[0].line == 4 and len(items) == 3


def test_shape_and_body_problems_name_their_lines_and_crlf_is_fine():
    text = "\r\n".join([_line(1), _line(1), "[1]", _line(3, {"prompt": "x", "max_tokens": 99}), ""])
    items, errors = validate_file(text, URL, _check)
    assert [(e.code, e.line) for e in errors] == [("duplicate_custom_id", 2), ("invalid_json_line", 3),
                                                  ("invalid_request", 4)]
    assert errors[2].param == "body.max_tokens" and [i.custom_id for i in items] == ["r1"]


def test_an_empty_file_is_an_error():
    assert [e.code for e in validate_file("\n\n", URL, _check)[1]] == ["empty_file"]


def test_ids_from_urls_must_look_like_ours():
    assert keys.is_file_id(keys.new_file_id()) and keys.is_batch_id(keys.new_batch_id())
    assert keys.is_file_id(keys.output_file_id(keys.new_batch_id(), "errors"))
    for bad in ("lw:batches:active", "file-x", "batch_0:items", "", keys.new_batch_id() + ":results"):
        assert not keys.is_file_id(bad) and not keys.is_batch_id(bad)
    assert keys.batches_index("active") != keys.ACTIVE
