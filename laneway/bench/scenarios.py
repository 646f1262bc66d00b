"""What `laneway bench lanes` replays: the scenarios, their traces and their runs.

steady: the mix of interactive, streaming and bulk arrivals, under four policies.

backlog-start / backlog-mid: a nightly job submits its whole backlog at once (a burst of
long-prompt bulk requests) while people keep typing and chatting (steady interactive and
streaming arrivals), at t=0 or into the run. Three runs on the same steady arrivals: lanes
without the burst (the baseline the interference ratio divides by), lanes with it, and one
FCFS lane with it (the baseline for bulk completion).

Everything here is pure: the same arguments give the same traces.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from laneway.load.trace import Arrival, EndpointLoad, make_trace

INTERACTIVE, STREAMING, BULK = "inline-completion", "chat", "nightly-labeling"
SCENARIOS = ("steady", "backlog-start", "backlog-mid")
BACKLOG_MID_AT_S = 20.0  # when the burst lands in backlog-mid, unless the run is shorter

# steady: inline completions (short prompts, ~32 out), chat streams (~128 out) and bulk
# labelling (long prompts, ~256 out). Rates are scaled by --load.
STEADY_MIX = [
    EndpointLoad(INTERACTIVE, 1.0, (24, 96), (24, 40)),
    EndpointLoad(STREAMING, 0.4, (64, 192), (96, 160)),
    EndpointLoad(BULK, 0.4, (256, 640), (192, 320)),
]
# The backlog scenarios' steady part: people typing and chatting, no steady bulk (the
# burst is all the bulk work). Rates are scaled by --load.
LATENCY_MIX = [load for load in STEADY_MIX if load.endpoint != BULK]


@dataclass(frozen=True)
class Burst:
    """A backlog submitted at once: `num_requests` bulk requests, all arriving at `at_s`
    (None: when the scenario says)."""

    num_requests: int = 32
    prompt_tokens: int = 600
    output_tokens: int = 256
    at_s: float | None = None
    endpoint: str = BULK


@dataclass(frozen=True)
class RunPlan:
    name: str
    policy_file: str  # under policies/bench/
    with_burst: bool


@dataclass(frozen=True)
class Scenario:
    name: str
    runs: tuple[RunPlan, ...]
    budgets_file: str  # the policy whose endpoint budgets judge every run (under policies/bench/)
    burst: Burst | None  # None: no backlog (steady)


def scenario(name: str, duration_s: float, burst: Burst | None = None) -> Scenario:
    """The runs of a scenario. A burst without a time lands at t=0 in backlog-start, and in
    backlog-mid at BACKLOG_MID_AT_S, or a third into the run when the run is shorter than
    three times that. Raises ValueError for a burst that cannot land inside the run."""
    if name == "steady":
        return Scenario(name, (
            RunPlan("lanes", "lanes.yaml", False),
            RunPlan("global-fcfs", "global-fcfs.yaml", False),
            RunPlan("global-long-window", "global-long-window.yaml", False),
            RunPlan("lanes-adaptive", "lanes-adaptive.yaml", False),
        ), "lanes.yaml", None)
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}")
    burst = burst or Burst()
    if burst.at_s is None:
        burst = replace(burst, at_s=0.0 if name == "backlog-start" else min(BACKLOG_MID_AT_S, duration_s / 3.0))
    assert burst.at_s is not None  # for the type checker: set just above
    if not 0.0 <= burst.at_s < duration_s:
        raise ValueError(f"the backlog must land within the {duration_s:g} s of steady arrivals, "
                         f"got t={burst.at_s:g} s")
    if burst.num_requests < 1 or burst.prompt_tokens < 1 or burst.output_tokens < 1:
        raise ValueError("the backlog needs at least one request, of at least one prompt and one output token")
    return Scenario(name, (
        RunPlan("lanes", "lanes-backlog.yaml", False),
        RunPlan("lanes+backlog", "lanes-backlog.yaml", True),
        RunPlan("global-fcfs+backlog", "global-fcfs.yaml", True),
    ), "lanes-backlog.yaml", burst)


def steady_trace(sc: Scenario, duration_s: float, load: float, seed: int) -> list[Arrival]:
    """The steady arrivals every run of the scenario shares."""
    mix = STEADY_MIX if sc.burst is None else LATENCY_MIX
    scaled = [EndpointLoad(m.endpoint, m.rate_per_s * load, m.prompt_tokens, m.output_tokens) for m in mix]
    return make_trace(scaled, duration_s, seed=seed)


def burst_trace(burst: Burst, seed: int) -> list[Arrival]:
    """The backlog's requests: prompts of exactly `prompt_tokens` characters (one token each
    on the byte-level presets), each opening with its own tag, so that none is served from
    another's prefix cache (the KV cache keys blocks by everything before them)."""
    assert burst.at_s is not None, "a burst's time is set by scenario()"
    filler = "label this ticket for the nightly report. " * (burst.prompt_tokens // 16 + 1)
    return [Arrival(burst.at_s, burst.endpoint, f"#backlog-{seed}-{i:04d} {filler}"[:burst.prompt_tokens],
                    burst.output_tokens)
            for i in range(burst.num_requests)]


def with_burst(steady: list[Arrival], burst: list[Arrival]) -> list[Arrival]:
    """The steady arrivals with the burst merged in at its time (stable: the burst goes after
    steady arrivals of the same instant)."""
    return sorted([*steady, *burst], key=lambda a: a.at_s)
