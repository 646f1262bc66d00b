"""A workload: what `laneway load` sends and what `laneway plan` sizes for, per endpoint.

Frozen data, read from YAML by workload_file.py. An endpoint is a Laneway endpoint name
(sent to /v1/endpoints/NAME/...) or, for any other OpenAI-compatible server, a URL path
starting with '/' (e.g. /v1/chat/completions). `requests()` draws the concrete requests:
the same workload, seed and scale always give the same list, so a sweep's points and a
plan's simulation see exactly the traffic `laneway load` sends.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from laneway.load.arrivals import Arrival, Trace
from laneway.load.lengths import Length


@dataclass(frozen=True)
class SharedPrefix:
    share: float  # fraction of this endpoint's requests that start with the prefix
    tokens: int  # prefix length (a system prompt, a repository map ...)


@dataclass(frozen=True)
class Budget:
    ttft_p95_ms: float | None = None
    tbt_p95_ms: float | None = None

    @property
    def is_set(self) -> bool:
        return self.ttft_p95_ms is not None or self.tbt_p95_ms is not None


@dataclass(frozen=True)
class EndpointWorkload:
    name: str
    arrival: Arrival
    prompt_tokens: Length | None  # None only for trace arrivals (the trace gives lengths)
    output_tokens: Length | None
    stream: bool = True
    shared_prefix: SharedPrefix | None = None
    budget: Budget = Budget()

    @property
    def is_url_path(self) -> bool:
        return self.name.startswith("/")

    def path(self, api: str) -> str:
        """URL path requests go to: the endpoint's own, or Laneway's per-endpoint one."""
        if self.is_url_path:
            return self.name
        return f"/v1/endpoints/{self.name}/{'chat/completions' if api == 'chat' else 'completions'}"

    def api_of(self, default: str) -> str:
        if self.is_url_path:
            return "chat" if self.name.rstrip("/").endswith("chat/completions") else "completions"
        return default


@dataclass(frozen=True)
class PlannedRequest:
    index: int  # position in the run, unique: it makes every prompt distinct
    at_s: float
    endpoint: str
    prompt_tokens: int
    max_tokens: int
    shared_prefix_tokens: int = 0  # leading tokens shared with the endpoint's other prefixed requests


@dataclass(frozen=True)
class Workload:
    endpoints: tuple[EndpointWorkload, ...]
    duration_s: float = 60.0
    seed: int = 0
    api: str = "chat"  # chat: /chat/completions with messages; completions: /completions with prompt
    model: str | None = None  # sent as "model"; other servers need it, Laneway serves its own
    chars_per_token: float = 1.0  # prompt text per token: 1 for byte-level presets, ~4 for BPE
    ignore_eos: bool = True  # ask servers to generate exactly max_tokens (vLLM, Laneway)
    source: str = "<workload>"

    def endpoint(self, name: str) -> EndpointWorkload:
        for e in self.endpoints:
            if e.name == name:
                return e
        raise KeyError(name)

    def with_duration(self, duration_s: float) -> Workload:
        return replace(self, duration_s=duration_s)

    def scaled(self, factor: float) -> Workload:
        """Every endpoint's arrivals `factor` times as often (requests(scale=f) draws the same)."""
        return replace(self, endpoints=tuple(replace(e, arrival=e.arrival.scaled(factor)) for e in self.endpoints))

    def requests(self, scale: float = 1.0) -> list[PlannedRequest]:
        drawn: list[tuple[float, str, int, int, int]] = []
        for e in self.endpoints:
            # One stream per endpoint: adding an endpoint leaves the others' traffic alone.
            rng = random.Random(f"{self.seed}/{e.name}")
            times = e.arrival.times(self.duration_s, rng, scale)
            lines = e.arrival.lines if isinstance(e.arrival, Trace) else None
            for i, t in enumerate(times):
                if lines is not None:
                    prompt, out = lines[i].prompt_tokens, lines[i].max_tokens
                else:
                    assert e.prompt_tokens is not None and e.output_tokens is not None, f"{e.name}: no lengths"
                    prompt, out = e.prompt_tokens.draw(rng), e.output_tokens.draw(rng)
                shared = 0
                if e.shared_prefix is not None and rng.random() < e.shared_prefix.share:
                    shared = min(e.shared_prefix.tokens, prompt - 1)  # at least one token of its own
                drawn.append((t, e.name, prompt, out, shared))
        drawn.sort(key=lambda d: (d[0], d[1]))
        return [PlannedRequest(i, *d) for i, d in enumerate(drawn)]

    def mean_rate(self, name: str) -> float:
        return self.endpoint(name).arrival.mean_rate
