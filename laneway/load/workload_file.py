"""Read a workload YAML into a Workload; every mistake names the file, the field and what
was expected. See laneway/load/examples/ for annotated files.

    duration_s: 60            # seconds of arrivals
    seed: 7
    api: chat                 # chat | completions (for Laneway endpoint names)
    model: null               # "model" in each body (other servers need it)
    chars_per_token: 1        # prompt text per token (1: byte-level presets; ~4: BPE)
    endpoints:
      inline-completion:                      # a Laneway endpoint name ...
        arrival: {poisson: {rate: 2.0}}       # or {rate: 2.0}, {burst: {every_s: 10, size: 5}}, {trace: FILE}
        prompt_tokens: {uniform: [24, 96]}    # or 32, or {lognormal: {mean: 400, sigma: 0.6, min: 16, max: 2000}}
        output_tokens: 32
        stream: true
        shared_prefix: {share: 0.8, tokens: 64}
        slo: {ttft_p95_ms: 300, tbt_p95_ms: 100}   # budgets, when no --policy gives them
      /v1/chat/completions: {...}             # ... or the URL path of any other server
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from laneway.load.arrivals import Arrival, Burst, Poisson, Trace, read_trace
from laneway.load.lengths import Fixed, Length, LogNormal, Uniform
from laneway.load.workload import Budget, EndpointWorkload, SharedPrefix, Workload

TOP_KEYS = {"duration_s", "seed", "api", "model", "chars_per_token", "ignore_eos", "endpoints"}
ENDPOINT_KEYS = {"arrival", "prompt_tokens", "output_tokens", "stream", "shared_prefix", "slo", "description"}


class WorkloadError(ValueError):
    """A workload file that cannot be used, with the file and field path in the message."""


class _Reader:
    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, where: str, value: Any, expected: str) -> WorkloadError:
        return WorkloadError(f"{self.source}: {where}: expected {expected}, got {value!r}")

    def number(self, where: str, value: Any, *, positive: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (positive and value <= 0):
            raise self.fail(where, value, "a positive number" if positive else "a number")
        return float(value)

    def count(self, where: str, value: Any, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(where, value, f"a whole number >= {minimum}")
        return value

    def mapping(self, where: str, value: Any, allowed: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, value, "a mapping")
        if allowed is not None:
            extra = sorted(set(value) - allowed)
            if extra:
                raise WorkloadError(f"{self.source}: {where}: unknown field {extra[0]!r}; "
                                    f"fields are {', '.join(sorted(allowed))}")
        return value

    def one_key(self, where: str, value: Any, kinds: tuple[str, ...]) -> tuple[str, Any]:
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in kinds:
            raise self.fail(where, value, f"one of {', '.join('{' + k + ': ...}' for k in kinds)}")
        return next(iter(value.items()))

    def length(self, where: str, value: Any) -> Length:
        if isinstance(value, int) and not isinstance(value, bool):
            return Fixed(self.count(where, value))
        kind, body = self.one_key(where, value, ("uniform", "lognormal", "fixed"))
        if kind == "fixed":
            return Fixed(self.count(f"{where}.fixed", body))
        if kind == "uniform":
            if not isinstance(body, list) or len(body) != 2:
                raise self.fail(f"{where}.uniform", body, "[low, high]")
            low, high = (self.count(f"{where}.uniform[{i}]", v) for i, v in enumerate(body))
            if low > high:
                raise self.fail(f"{where}.uniform", body, "low <= high")
            return Uniform(low, high)
        body = self.mapping(f"{where}.lognormal", body, {"mean", "sigma", "min", "max"})
        if "mean" not in body or "sigma" not in body:
            raise self.fail(f"{where}.lognormal", body, "{mean: TOKENS, sigma: S} (and optional min, max)")
        low = self.count(f"{where}.lognormal.min", body.get("min", 1))
        high = self.count(f"{where}.lognormal.max", body.get("max", 1_000_000))
        mean = self.number(f"{where}.lognormal.mean", body["mean"])
        if not low <= mean <= high:
            raise self.fail(f"{where}.lognormal", body, "min <= mean <= max")
        return LogNormal(mean, self.number(f"{where}.lognormal.sigma", body["sigma"]), low, high)

    def arrival(self, where: str, value: Any, endpoint: str) -> Arrival:
        kind, body = self.one_key(where, value, ("poisson", "rate", "burst", "trace"))
        if kind == "rate":
            return Poisson(self.number(f"{where}.rate", body))
        if kind == "poisson":
            body = self.mapping(f"{where}.poisson", body, {"rate"})
            return Poisson(self.number(f"{where}.poisson.rate", body.get("rate")))
        if kind == "burst":
            body = self.mapping(f"{where}.burst", body, {"every_s", "size", "start_s"})
            return Burst(self.number(f"{where}.burst.every_s", body.get("every_s")),
                         self.count(f"{where}.burst.size", body.get("size")),
                         self.number(f"{where}.burst.start_s", body.get("start_s", 0), positive=False))
        if not isinstance(body, str):
            raise self.fail(f"{where}.trace", body, "a file path")
        path = Path(body) if Path(body).is_absolute() else self.base_dir / body
        try:
            lines = read_trace(path)
        except OSError as exc:
            raise WorkloadError(f"{self.source}: {where}.trace: cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise WorkloadError(f"{self.source}: {where}.trace: {exc}") from None
        mine = tuple(line for line in lines if line.endpoint == endpoint)
        if not mine:
            raise WorkloadError(f"{self.source}: {where}.trace: {path} has no lines for endpoint {endpoint!r}")
        return Trace(path, mine)

    def endpoint(self, name: Any, value: Any) -> EndpointWorkload:
        if not isinstance(name, str) or not name:
            raise self.fail("endpoints", name, "endpoint names (or URL paths starting with '/')")
        where = f"endpoints.{name}"
        body = self.mapping(where, value, ENDPOINT_KEYS)
        if "arrival" not in body:
            raise WorkloadError(f"{self.source}: {where}: missing field 'arrival' (e.g. {{poisson: {{rate: 1.0}}}})")
        arrival = self.arrival(f"{where}.arrival", body["arrival"], name)
        lengths: dict[str, Length | None] = {}
        for key in ("prompt_tokens", "output_tokens"):
            if key in body:
                lengths[key] = self.length(f"{where}.{key}", body[key])
            elif isinstance(arrival, Trace):
                lengths[key] = None
            else:
                raise WorkloadError(f"{self.source}: {where}: missing field {key!r} "
                                    f"(e.g. 128 or {{uniform: [64, 256]}})")
        stream = body.get("stream", True)
        if not isinstance(stream, bool):
            raise self.fail(f"{where}.stream", stream, "true or false")
        prefix = None
        if "shared_prefix" in body:
            sp = self.mapping(f"{where}.shared_prefix", body["shared_prefix"], {"share", "tokens"})
            share = self.number(f"{where}.shared_prefix.share", sp.get("share"))
            if share > 1:
                raise self.fail(f"{where}.shared_prefix.share", share, "a fraction in (0, 1]")
            prefix = SharedPrefix(share, self.count(f"{where}.shared_prefix.tokens", sp.get("tokens")))
        budget = Budget()
        if "slo" in body:
            slo = self.mapping(f"{where}.slo", body["slo"], {"ttft_p95_ms", "tbt_p95_ms"})
            budget = Budget(*(None if slo.get(k) is None else self.number(f"{where}.slo.{k}", slo[k])
                              for k in ("ttft_p95_ms", "tbt_p95_ms")))
        return EndpointWorkload(name, arrival, lengths["prompt_tokens"], lengths["output_tokens"], stream, prefix,
                                budget)


def parse_workload(data: Any, source: str = "<workload>", base_dir: Path = Path(".")) -> Workload:
    r = _Reader(source, base_dir)
    top = r.mapping("(top level)", data, TOP_KEYS)
    endpoints = r.mapping("endpoints", top.get("endpoints"))
    if not endpoints:
        raise WorkloadError(f"{source}: endpoints: expected at least one endpoint")
    api = top.get("api", "chat")
    if api not in ("chat", "completions"):
        raise r.fail("api", api, "chat or completions")
    model = top.get("model")
    if model is not None and not isinstance(model, str):
        raise r.fail("model", model, "a model name")
    ignore_eos = top.get("ignore_eos", True)
    if not isinstance(ignore_eos, bool):
        raise r.fail("ignore_eos", ignore_eos, "true or false")
    seed = top.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise r.fail("seed", seed, "an integer")
    return Workload(
        endpoints=tuple(r.endpoint(name, body) for name, body in endpoints.items()),
        duration_s=r.number("duration_s", top.get("duration_s", 60.0)),
        seed=seed, api=api, model=model,
        chars_per_token=r.number("chars_per_token", top.get("chars_per_token", 1.0)),
        ignore_eos=ignore_eos, source=source,
    )


def load_workload(path: Path) -> Workload:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WorkloadError(f"{path}: not valid YAML: {exc}") from None
    return parse_workload(data, str(path), path.parent)
