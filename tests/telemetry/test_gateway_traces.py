"""A gateway request's spans: server span, lane queue, dispatch, and the traceparent the worker gets."""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from laneway_proto import worker_pb2 as pb
from telemetry import attributes as attr
from tests.telemetry.fake_worker import REJECTED_PROMPT, FakeWorker
from tests.telemetry.gateway_factory import make_app

CLIENT_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN_ID = "b7ad6b7169203331"
CHAT = {"messages": [{"role": "user", "content": "secret prompt text"}], "max_tokens": 8}


def _one(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"expected one {name!r} span, got {[s.name for s in spans]}"
    return found[0]


def _server(spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    found = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(found) == 1, f"expected one server span, got {[s.name for s in spans]}"
    return found[0]


def _run(worker: FakeWorker, path: str, body: dict, headers: dict[str, str] | None = None, **app_options
         ) -> tuple[int, tuple[ReadableSpan, ...]]:
    exporter = InMemorySpanExporter()
    with TestClient(make_app(worker, exporter, **app_options)) as client:
        status = client.post(path, json=body, headers=headers or {}).status_code
    return status, exporter.get_finished_spans()  # leaving the client ran the lifespan's flush


def test_one_request_is_one_trace_that_continues_the_clients(fake_worker: FakeWorker) -> None:
    status, spans = _run(fake_worker, "/v1/endpoints/support-draft/chat/completions", CHAT,
                         {"traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"})
    assert status == 200
    server = _server(spans)
    queue = _one(spans, attr.LANE_QUEUE_SPAN)
    dispatch = _one(spans, attr.GENERATE_RPC_SPAN)
    assert {f"{s.context.trace_id:032x}" for s in spans} == {CLIENT_TRACE_ID}
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CLIENT_SPAN_ID
    assert queue.parent is not None and queue.parent.span_id == server.context.span_id
    assert dispatch.parent is not None and dispatch.parent.span_id == server.context.span_id
    assert dispatch.kind == SpanKind.CLIENT
    # The worker is told to continue the trace under the dispatch span.
    sent = fake_worker.servicer.metadata[-1]["traceparent"]
    assert sent == f"00-{CLIENT_TRACE_ID}-{dispatch.context.span_id:016x}-01"
    # The queue wait comes before the dispatch, both inside the request.
    assert server.start_time <= queue.start_time <= queue.end_time <= dispatch.start_time <= server.end_time


def test_server_span_carries_genai_and_laneway_attributes(fake_worker: FakeWorker) -> None:
    _, spans = _run(fake_worker, "/v1/endpoints/support-draft/chat/completions", {**CHAT, "stream": True})
    a = _server(spans).attributes
    assert a is not None
    assert _server(spans).name == "chat fake"
    assert a[attr.OPERATION_NAME] == "chat"
    assert a[attr.REQUEST_MODEL] == "fake"
    assert a[attr.REQUEST_MAX_TOKENS] == 8 and a[attr.REQUEST_STREAM] is True
    assert (a[attr.USAGE_INPUT_TOKENS], a[attr.USAGE_OUTPUT_TOKENS], a[attr.USAGE_CACHE_READ_INPUT_TOKENS]) == (7, 4, 3)
    assert tuple(a[attr.RESPONSE_FINISH_REASONS]) == ("length",)
    assert (a[attr.ENDPOINT], a[attr.LANE], a[attr.TENANT], a[attr.PRIORITY]) == ("support-draft", "streaming",
                                                                                 "anonymous", 1)
    assert a[attr.OUTCOME] == attr.OK and a[attr.HTTP_STATUS_CODE] == 200
    assert a[attr.BATCH_WINDOW_MS] == 10.0 and a[attr.BATCH_SIZE] == 1 and a[attr.BATCH_ID].startswith("batch-")
    # A request that finds its lane idle leaves at once, not after the 10 ms window (wait_when_idle).
    assert 0.0 <= a[attr.QUEUE_WAIT_MS] < 9.0
    assert a[attr.RESPONSE_TIME_TO_FIRST_CHUNK] * 1000.0 >= a[attr.QUEUE_WAIT_MS]
    assert 0 <= a[attr.TBT_P95_MS] <= a[attr.TBT_MAX_MS]
    assert attr.INPUT_MESSAGES not in a and attr.OUTPUT_MESSAGES not in a  # no text unless asked


def test_server_span_carries_the_wait_admission_predicted(fake_worker: FakeWorker) -> None:
    # The worker reports 40 ms of streaming prefill ahead, and 30 s of bulk it will push aside.
    fake_worker.servicer.load_report = pb.LoadReport(max_num_seqs=64, lanes=[
        pb.LaneLoad(name="streaming", priority=1, preemptible=False, predicted_wait_ms=40.0),
        pb.LaneLoad(name="bulk", priority=2, preemptible=True, predicted_wait_ms=30_000.0)])
    status, spans = _run(fake_worker, "/v1/endpoints/support-draft/chat/completions", CHAT)
    assert status == 200
    a = _server(spans).attributes
    assert a is not None and a[attr.PREDICTED_WAIT_MS] == 40.0


def test_prompt_and_completion_text_only_when_enabled(fake_worker: FakeWorker) -> None:
    _, spans = _run(fake_worker, "/v1/endpoints/support-draft/chat/completions", CHAT, record_content=True)
    a = _server(spans).attributes
    assert a is not None
    assert json.loads(a[attr.INPUT_MESSAGES])[0]["parts"][0]["content"] == "secret prompt text"
    assert json.loads(a[attr.OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "ABCD"


def test_unsampled_requests_record_nothing_and_tell_the_worker(fake_worker: FakeWorker) -> None:
    status, spans = _run(fake_worker, "/v1/endpoints/support-draft/chat/completions", CHAT, sample_ratio=0.0)
    assert status == 200 and spans == ()
    flags = int(fake_worker.servicer.metadata[-1]["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 0x01 == 0  # "not sampled" travels on, so the worker records nothing either


def test_a_sampled_caller_overrides_the_ratio(fake_worker: FakeWorker) -> None:
    _, spans = _run(fake_worker, "/v1/endpoints/support-draft/chat/completions", CHAT,
                    {"traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"}, sample_ratio=0.0)
    assert len(spans) == 3  # server, queue, dispatch: parent-based sampling honours the caller


def test_refusal_names_its_reason_on_the_server_and_queue_spans(fake_worker: FakeWorker) -> None:
    status, spans = _run(fake_worker, "/v1/endpoints/inline-completion/completions",
                         {"prompt": "x", "max_tokens": 4}, {"x-laneway-deadline-ms": "0"})
    assert status == 429
    a = _server(spans).attributes
    assert a is not None
    assert (a[attr.OUTCOME], a[attr.REJECT_REASON], a[attr.HTTP_STATUS_CODE]) == (attr.REFUSED, "deadline", 429)
    queue = _one(spans, attr.LANE_QUEUE_SPAN)
    assert queue.attributes is not None and queue.attributes[attr.REJECT_REASON] == "deadline"
    assert not [s for s in spans if s.name == attr.GENERATE_RPC_SPAN]  # never reached a worker


def test_a_request_the_worker_rejects_is_invalid_not_an_error(fake_worker: FakeWorker) -> None:
    status, spans = _run(fake_worker, "/v1/endpoints/inline-completion/completions",
                         {"prompt": REJECTED_PROMPT, "max_tokens": 4})
    assert status == 400
    a = _server(spans).attributes
    assert a is not None and a[attr.OUTCOME] == attr.INVALID
    dispatch = _one(spans, attr.GENERATE_RPC_SPAN)
    assert dispatch.attributes is not None and dispatch.attributes[attr.ERROR_TYPE] == "WorkerRejected"


def test_work_without_an_http_request_gets_a_trace_of_its_own(fake_worker: FakeWorker) -> None:
    """Batch API items run through the same service without a server span; each still gets one trace."""
    from gateway.completion import complete
    from gateway.intake import job_from_body

    exporter = InMemorySpanExporter()
    with TestClient(make_app(fake_worker, exporter)) as client:
        state = client.app.state.laneway  # type: ignore[attr-defined]
        job = job_from_body(state.policy_store.policy, state.catalog, "completion", "nightly-labeling", "anonymous",
                            {"prompt": "label"}, {})
        body = client.portal.call(complete, state.service, state.catalog, job)
        assert body["usage"]["completion_tokens"] == 4
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1 and roots[0].kind == SpanKind.INTERNAL
    a = roots[0].attributes or {}
    assert (a[attr.ENDPOINT], a[attr.LANE], a[attr.OUTCOME]) == ("nightly-labeling", "bulk", attr.OK)
    assert {s.name for s in spans} == {"text_completion fake", attr.LANE_QUEUE_SPAN, attr.GENERATE_RPC_SPAN}
