"""Broken policies must fail with a message naming file, line, field path, value and expectation."""

from __future__ import annotations

import pytest

from lanes import PolicyError, load_policy, parse_policy
from tests.lanes.factories import ACME_KEY, POLICY_YAML, sha, with_change

ACME_HASH = sha(ACME_KEY)

# (case, broken text, "FILE:LINE: path: got VALUE" the problem starts with, text the expectation contains)
CASES = [
    (
        "typo in a field name",
        with_change("max_batch_size: 8\n", "max_batch_sze: 8\n"),
        "test.yaml:7: lanes.interactive.max_batch_sze: got an unknown field 'max_batch_sze'",
        "did you mean 'max_batch_size'?",
    ),
    (
        "negative priority",
        with_change("    priority: 0\n    batch_window_ms: 2", "    priority: -1\n    batch_window_ms: 2"),
        "test.yaml:5: lanes.interactive.priority: got -1",
        "expected 0 or more",
    ),
    (
        "number written as text",
        with_change("max_batch_size: 16", 'max_batch_size: "16"'),
        "test.yaml:13: lanes.streaming.max_batch_size: got '16'",
        "expected a whole number",
    ),
    (
        "boolean where a count belongs",
        with_change("max_queue_depth: 64", "max_queue_depth: true"),
        "test.yaml:8: lanes.interactive.max_queue_depth: got true",
        "expected a whole number",
    ),
    (
        "endpoint names a lane that does not exist",
        with_change("chat: {lane: streaming,", "chat: {lane: streamin,"),
        "test.yaml:33: endpoints.chat.lane: got 'streamin'",
        "expected one of the lanes: interactive, streaming, bulk, voice",
    ),
    (
        "custom lane name without a kind",
        with_change("    kind: streaming\n", ""),
        "test.yaml:25: lanes.voice.kind: got nothing",
        "interactive, streaming or bulk",
    ),
    (
        "lane named after a kind declares another kind",
        with_change("  interactive:\n", "  interactive:\n    kind: bulk\n"),
        "test.yaml:5: lanes.interactive.kind: got 'bulk'",
        "expected 'interactive'",
    ),
    (
        "auto window with min above max",
        with_change("{auto: true, min: 50, max: 250}", "{auto: true, min: 50, max: 10}"),
        "test.yaml:18: lanes.bulk.batch_window_ms.max: got 10",
        "expected at least min (50 ms)",
    ),
    (
        "window that is not a number nor a mapping",
        with_change("batch_window_ms: 10\n", "batch_window_ms: fast\n"),
        "test.yaml:12: lanes.streaming.batch_window_ms: got 'fast'",
        "expected a number of ms, or {auto: true, min: MS, max: MS}",
    ),
    (
        "window longer than the longest legal wait",
        with_change("batch_window_ms: 1\n", "batch_window_ms: 200\n"),
        "test.yaml:28: lanes.voice.batch_window_ms: got 200",
        "expected at most max_queue_wait_ms (100 ms)",
    ),
    (
        "capacity share above one",
        with_change("{seqs: 0.5, kv: 0.5}", "{seqs: 0.5, kv: 1.5}"),
        "test.yaml:22: lanes.bulk.capacity_share.kv: got 1.5",
        "expected 1 or less",
    ),
    (
        "backfill lane that cannot be preempted",
        with_change("    preemptible: true\n", "    preemptible: false\n"),
        "test.yaml:23: lanes.bulk.preemptible: got false",
        "expected true for a backfill lane",
    ),
    (
        "minimum share on a lane that never gives way",
        with_change("    max_queue_wait_ms: 300\n", "    max_queue_wait_ms: 300\n    min_share: 0.1\n"),
        "test.yaml:10: lanes.interactive.min_share: got 0.1",
        "expected 0 on a lane that is not preemptible",
    ),
    (
        "minimum share above half of every step",
        with_change("    backfill: true\n", "    backfill: true\n    min_share: 0.6\n"),
        "test.yaml:25: lanes.bulk.min_share: got 0.6",
        "expected 0.5 or less",
    ),
    (
        "endpoint name that is not URL-safe",
        with_change("  inline-completion:", "  Inline Completion:"),
        "test.yaml:34: endpoints.Inline Completion: got 'Inline Completion'",
        "expected a URL-safe name",
    ),
    (
        "TTFT budget that the batch window alone uses up",
        with_change("slo: {ttft_p95_ms: 200}", "slo: {ttft_p95_ms: 1}"),
        "test.yaml:36: endpoints.voice-reply.slo.ttft_p95_ms: got 1",
        "expected more than the batch window of lane 'voice' (1 ms)",
    ),
    (
        "stream interval as long as an endpoint's gap between tokens",
        with_change("    max_queue_wait_ms: 1000\n", "    max_queue_wait_ms: 1000\n    stream_interval_ms: 100\n"),
        "test.yaml:34: endpoints.chat.slo.tbt_p95_ms: got 100",
        "expected more than the stream_interval_ms of lane 'streaming' (100 ms)",
    ),
    (
        "negative stream interval",
        with_change("    max_queue_wait_ms: 1000\n", "    max_queue_wait_ms: 1000\n    stream_interval_ms: -5\n"),
        "test.yaml:16: lanes.streaming.stream_interval_ms: got -5",
        "expected 0 or more",
    ),
    (
        "wait_when_idle that is not a boolean",
        with_change("    max_queue_wait_ms: 1000\n", "    max_queue_wait_ms: 1000\n    wait_when_idle: sometimes\n"),
        "test.yaml:16: lanes.streaming.wait_when_idle: got 'sometimes'",
        "expected true or false",
    ),
    (
        "sampling default above the endpoint's limit",
        with_change("limits: {max_tokens: 64}", "limits: {max_tokens: 64}, sampling: {max_tokens: 100}"),
        "test.yaml:34: endpoints.inline-completion.sampling.max_tokens: got 100",
        "expected at most limits.max_tokens (64)",
    ),
    (
        "allowed tenant that does not exist",
        with_change("allowed_tenants: [bots]", "allowed_tenants: [robots]"),
        "test.yaml:35: endpoints.nightly-labeling.allowed_tenants[0]: got 'robots'",
        "expected one of the tenants: acme, bots, anonymous",
    ),
    (
        "rule sends requests to a missing lane",
        with_change("stream: false}, lane: interactive}", "stream: false}, lane: fast}"),
        "test.yaml:39: rules[1].lane: got 'fast'",
        "expected one of the lanes",
    ),
    (
        "rule matches a missing endpoint",
        with_change("{endpoint: chat, stream: false}", "{endpoint: chatt, stream: false}"),
        "test.yaml:39: rules[1].match.endpoint[0]: got 'chatt'",
        "expected one of the endpoints: chat, inline-completion, nightly-labeling, voice-reply",
    ),
    (
        "rule with an empty token range",
        with_change("prompt_tokens: {min: 8000}", "prompt_tokens: {}"),
        "test.yaml:40: rules[2].match.prompt_tokens: got {}",
        "expected at least one of min or max",
    ),
    (
        "rule after a catch-all can never match",
        with_change("{match: {header: {X-Laneway-Priority: background}}, lane: bulk}", "{match: {}, lane: bulk}"),
        "test.yaml:39: rules[1]: got {",
        "expected no rule after rules[0], which matches every request",
    ),
    (
        "tenant allowed on a missing endpoint",
        with_change("endpoints: [chat, inline-completion, voice-reply]", "endpoints: [chat, inline-complete]"),
        "test.yaml:46: tenants.acme.endpoints[1]: got 'inline-complete'",
        'expected one of the endpoints: chat, inline-completion, nightly-labeling, voice-reply, or "*"',
    ),
    (
        "two tenants share one key",
        with_change(f'keys_sha256: ["{sha("sk-test-bots")}"]', f'keys_sha256: ["{ACME_HASH}"]'),
        "test.yaml:51: tenants.bots.keys_sha256[0]: got a value of 64 characters (not shown",
        "expected a key used once (tenant 'acme' has it too)",
    ),
    (
        "tenant anonymous with a key",
        with_change("  bots:\n", "  anonymous:\n").replace("allowed_tenants: [bots]", "allowed_tenants: [acme]")
        .replace("tenant: bots", "tenant: acme"),
        "test.yaml:51: tenants.anonymous.keys_sha256: got [",
        "expected no keys: tenant 'anonymous' is the callers without a key",
    ),
    (
        "tenant without a key",
        with_change(f'    keys_sha256: ["{sha("sk-test-bots")}"]\n', ""),
        "test.yaml:50: tenants.bots.keys_sha256: got []",
        "expected at least one key hash",
    ),
    (
        "shared_batches on a keyed tenant",
        with_change('    endpoints: "*"\n', '    endpoints: "*"\n    shared_batches: true\n'),
        "test.yaml:53: tenants.bots.shared_batches: got true",
        "expected false (only tenant 'anonymous' has a shared Batch API namespace)",
    ),
    (
        "a tenant's unknown lane",
        with_change("    lanes: [interactive]\n", "    lanes: [turbo]\n"),
        "test.yaml:49: tenants.acme.lanes[0]: got 'turbo'",
        "expected one of the lanes",
    ),
    (
        "rate limit of zero",
        with_change("rpm: 600", "rpm: 0"),
        "test.yaml:47: tenants.acme.rpm: got 0",
        "expected 1 or more",
    ),
    (
        "default endpoint that does not exist",
        with_change("default_endpoint: chat", "default_endpoint: chatbot"),
        "test.yaml:2: default_endpoint: got 'chatbot'",
        "expected one of the endpoints",
    ),
    (
        "unknown format version",
        with_change("version: 1", "version: 2"),
        "test.yaml:1: version: got 2",
        "expected 1 (the only policy format so far)",
    ),
    (
        "required field missing",
        with_change("    max_queue_wait_ms: 1000\n", ""),
        "test.yaml:10: lanes.streaming.max_queue_wait_ms: got nothing",
        "expected a value (required): Longest a request may wait",
    ),
    (
        "auth required but nobody can authenticate",
        POLICY_YAML[: POLICY_YAML.index("\ntenants:") + 1].replace("allowed_tenants: [bots]",
                                                                   "allowed_tenants: [anonymous]")
        .replace("tenant: bots", "tenant: anonymous")
        + "auth: {required: true}\n",
        "test.yaml:43: auth.required: got true",
        "expected false, or at least one tenant under tenants",
    ),
    (
        "duplicate key (YAML would silently keep the last)",
        with_change("  voice-reply:", "  chat: {lane: bulk}\n  voice-reply:"),
        "test.yaml:36: endpoints.chat: got a second 'chat'",
        "expected each key once (the first is on line 33",
    ),
]


@pytest.mark.parametrize(("case", "text", "starts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_broken_policy_is_explained(case: str, text: str, starts: str, expected: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "test.yaml")
    hits = [p for p in err.value.problems if p.startswith(starts)]
    assert hits, f"{case}: no problem starts with {starts!r} in:\n{err.value}"
    assert expected in hits[0], f"{case}: {expected!r} not in {hits[0]!r}"
    assert str(err.value) == "\n".join(err.value.problems)


def test_clear_text_key_is_refused_without_echoing_it() -> None:
    text = with_change(ACME_HASH, "sk-live-0123456789abcdef")
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "test.yaml")
    message = str(err.value)
    assert message.startswith("test.yaml:45: tenants.acme.keys_sha256[0]: got a value of 24 characters (not shown")
    assert "laneway policy hash-key" in message
    assert "sk-live" not in message


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = with_change("max_batch_size: 8\n", "max_batch_size: -8\n").replace("priority: 1", "priority: x")
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "test.yaml")
    paths = [p.split(": ")[1] for p in err.value.problems]
    assert paths == ["lanes.interactive.max_batch_size", "lanes.streaming.priority"]


def test_yaml_syntax_error_names_line_and_column() -> None:
    text = with_change("max_batch_size: 16\n", "max_batch_size: [16\n")
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "test.yaml")
    (problem,) = err.value.problems
    assert problem.startswith("test.yaml:14:")  # the parser notices on the line after the open '['
    assert "YAML syntax error" in problem


def test_yaml_syntax_error_at_a_bad_indent() -> None:
    with pytest.raises(PolicyError, match=r"^test\.yaml:4:2: YAML syntax error"):
        parse_policy("version: 1\nlanes:\n  a: 1\n b: 2\n", "test.yaml")


@pytest.mark.parametrize(
    ("text", "got"),
    [("", "got an empty file"), ("# only a comment\n", "got an empty file"), ("- a\n- b\n", "got a list"),
     ("42\n", "got int 42")],
)
def test_not_a_policy_at_all(text: str, got: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "test.yaml")
    (problem,) = err.value.problems
    assert problem.startswith("test.yaml")
    assert f"(top level): {got}; expected a mapping with version, default_endpoint, lanes and endpoints" in problem


def test_missing_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match=f"^{path}: cannot read the file"):
        load_policy(path)


def test_load_policy_names_the_real_path(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(with_change("version: 1", "version: 3"))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert err.value.problems == (f"{path}:1: version: got 3; expected 1 (the only policy format so far)",)


def test_a_policy_of_only_backfill_lanes_is_refused() -> None:
    text = """\
version: 1
default_endpoint: labels
lanes:
  bulk: {priority: 0, batch_window_ms: 100, max_batch_size: 64, max_queue_depth: 10,
         max_queue_wait_ms: 1000, preemptible: true, backfill: true}
endpoints:
  labels: {lane: bulk}
auth: {required: false}
"""
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "test.yaml")
    assert err.value.problems == (
        'test.yaml:3: lanes: got ["bulk"]; expected at least one lane with backfill: false '
        "(backfill lanes only use capacity others leave idle)",
    )
