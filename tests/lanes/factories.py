"""A small policy used across lanes tests, as YAML text (for error tests) and as a Policy."""

from __future__ import annotations

import hashlib

from lanes import Policy, parse_policy

ACME_KEY = "sk-test-acme"
BOTS_KEY = "sk-test-bots"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Line numbers matter to the error tests: `priority: 0` of lane interactive is line 5.
POLICY_YAML = f"""\
version: 1
default_endpoint: chat
lanes:
  interactive:
    priority: 0
    batch_window_ms: 2
    max_batch_size: 8
    max_queue_depth: 64
    max_queue_wait_ms: 300
  streaming:
    priority: 1
    batch_window_ms: 10
    max_batch_size: 16
    max_queue_depth: 256
    max_queue_wait_ms: 1000
  bulk:
    priority: 2
    batch_window_ms: {{auto: true, min: 50, max: 250}}
    max_batch_size: 64
    max_queue_depth: 100000
    max_queue_wait_ms: 86400000
    capacity_share: {{seqs: 0.5, kv: 0.5}}
    preemptible: true
    backfill: true
  voice:
    kind: streaming
    priority: 0
    batch_window_ms: 1
    max_batch_size: 4
    max_queue_depth: 32
    max_queue_wait_ms: 100
endpoints:
  chat: {{lane: streaming, slo: {{ttft_p95_ms: 1000, tbt_p95_ms: 100}}}}
  inline-completion: {{lane: interactive, slo: {{ttft_p95_ms: 300}}, limits: {{max_tokens: 64}}}}
  nightly-labeling: {{lane: bulk, allowed_tenants: [bots]}}
  voice-reply: {{lane: voice, slo: {{ttft_p95_ms: 200}}}}
rules:
  - {{match: {{header: {{X-Laneway-Priority: background}}}}, lane: bulk}}
  - {{match: {{endpoint: chat, stream: false}}, lane: interactive}}
  - {{match: {{endpoint: [chat, voice-reply], prompt_tokens: {{min: 8000}}}}, lane: bulk}}
  - {{match: {{tenant: bots, endpoint: chat}}, lane: bulk}}
  - {{match: {{endpoint: inline-completion, max_tokens: {{min: 33, max: 64}}}}, lane: streaming}}
tenants:
  acme:
    keys_sha256: ["{sha(ACME_KEY)}"]
    endpoints: [chat, inline-completion, voice-reply]
    rpm: 600
    tpm: 200000
    lanes: [interactive]
  bots:
    keys_sha256: ["{sha(BOTS_KEY)}"]
    endpoints: "*"
auth: {{required: true}}
"""


def make_policy(text: str = POLICY_YAML) -> Policy:
    return parse_policy(text, "test.yaml")


def with_change(old: str, new: str, text: str = POLICY_YAML) -> str:
    """POLICY_YAML with one exact snippet replaced; fails loudly if the snippet is gone."""
    assert text.count(old) == 1, f"snippet {old!r} must occur exactly once in the test policy"
    return text.replace(old, new)
