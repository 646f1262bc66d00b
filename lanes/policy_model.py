"""The whole policy file: lanes, endpoints, rules, tenants, auth, checked as one.

Field-level checks live on each spec; this module holds the checks that need the whole
file (does this lane exist? can anybody call at all?). They run only once every field
is well formed, so a file with type errors shows those first.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, Strict, field_validator, model_validator

from lanes.endpoint import EndpointSpec
from lanes.lane import LaneKind, LaneSpec
from lanes.rule import Rule
from lanes.spec import NAME_EXPECTED, NAME_PATTERN, Problem, Spec, Text, raise_if_any, show_number
from lanes.tenant_spec import ALL_ENDPOINTS, ANONYMOUS, AuthSpec, TenantSpec

POLICY_VERSION = 1
_KINDS = {kind.value for kind in LaneKind}


class Policy(Spec):
    """What a Laneway gateway serves, to whom, and how each request is queued."""

    version: Annotated[int, Strict(), Field(json_schema_extra={"const": POLICY_VERSION})]
    """Format version of this file; 1."""
    default_endpoint: Text
    """Endpoint that serves the plain /v1/chat/completions and /v1/completions URLs."""
    lanes: Annotated[dict[Text, LaneSpec], Field(min_length=1)]
    endpoints: Annotated[dict[Text, EndpointSpec], Field(min_length=1)]
    rules: tuple[Rule, ...] = ()
    """Tried in order, first match wins; unmatched requests use their endpoint's lane."""
    tenants: dict[Text, TenantSpec] = {}
    auth: AuthSpec = AuthSpec()

    @field_validator("version")
    @classmethod
    def _check_version(cls, version: int) -> int:
        if version != POLICY_VERSION:
            raise Problem((), version, f"{POLICY_VERSION} (the only policy format so far)")
        return version

    @field_validator("lanes", mode="before")
    @classmethod
    def _kind_from_name(cls, lanes: Any) -> Any:
        # A lane named after a kind need not repeat it: `bulk: {priority: 2, ...}`.
        if not isinstance(lanes, dict):
            return lanes
        return {
            name: {"kind": name, **spec} if isinstance(spec, dict) and name in _KINDS else spec
            for name, spec in lanes.items()
        }

    def can_call(self, tenant: str, endpoint: str) -> bool:
        """Both sides agree: the tenant may call the endpoint, and the endpoint serves the tenant."""
        spec = self.endpoints.get(endpoint)
        if spec is None or not spec.can_serve(tenant):
            return False
        if tenant == ANONYMOUS:
            if self.auth.required:
                return False
            anonymous = self.tenants.get(ANONYMOUS)  # not listed: keyless callers may call anything
            return anonymous is None or anonymous.can_call(endpoint)
        tenant_spec = self.tenants.get(tenant)
        return tenant_spec is not None and tenant_spec.can_call(endpoint)

    @property
    def has_keyless_batches(self) -> bool:
        """Whether callers without a key may use the Batch API (one namespace shared by all of them)."""
        anonymous = self.tenants.get(ANONYMOUS)
        return not self.auth.required and anonymous is not None and anonymous.shared_batches

    def has_tenant(self, tenant: str) -> bool:
        """The tenant is served by this policy (anonymous: when keyless callers are let in)."""
        if tenant == ANONYMOUS:
            return not self.auth.required
        return tenant in self.tenants

    def may_move_to(self, tenant: str, endpoint: str, lane: str) -> bool:
        """Whether a rule may send this tenant's request for this endpoint to `lane`: always when
        the lane is no more urgent than the endpoint's own; a more urgent one only when the tenant
        lists it (rules match what the client controls: headers, stream, max_tokens)."""
        own = self.lanes[self.endpoints[endpoint].lane]
        if self.lanes[lane].priority >= own.priority:
            return True
        spec = self.tenants.get(tenant)
        return spec is not None and lane in spec.lanes

    @model_validator(mode="after")
    def _check_whole_file(self) -> Policy:
        problems = [
            *self._bad_names(),
            *self._lane_problems(),
            *self._endpoint_problems(),
            *self._rule_problems(),
            *self._tenant_problems(),
        ]
        if self.default_endpoint not in self.endpoints:
            problems.append(Problem(("default_endpoint",), self.default_endpoint, self._one_of_endpoints()))
        raise_if_any(problems)
        return self

    def _bad_names(self) -> list[Problem]:
        sections: dict[str, dict[str, Any]] = {
            "lanes": self.lanes,
            "endpoints": self.endpoints,
            "tenants": self.tenants,
        }
        return [
            Problem((section, name), name, NAME_EXPECTED)
            for section, items in sections.items()
            for name in items
            if NAME_PATTERN.fullmatch(name) is None
        ]

    def _lane_problems(self) -> list[Problem]:
        problems = [
            Problem(("lanes", name, "kind"), lane.kind.value, f"{name!r} (a lane named after a kind has that kind)")
            for name, lane in self.lanes.items()
            if name in _KINDS and lane.kind.value != name
        ]
        if all(lane.backfill for lane in self.lanes.values()):
            expected = "at least one lane with backfill: false (backfill lanes only use capacity others leave idle)"
            problems.append(Problem(("lanes",), list(self.lanes), expected))
        return problems

    def _endpoint_problems(self) -> list[Problem]:
        problems = []
        for name, endpoint in self.endpoints.items():
            lane = self.lanes.get(endpoint.lane)
            ttft = endpoint.slo.ttft_p95_ms
            if lane is None:
                problems.append(Problem(("endpoints", name, "lane"), endpoint.lane, self._one_of_lanes()))
            elif ttft is not None and ttft <= lane.batch_window.min_ms:
                # The batch window is queue time spent on purpose; it must leave room for the model.
                window = show_number(lane.batch_window.min_ms)
                expected = f"more than the batch window of lane {endpoint.lane!r} ({window} ms)"
                problems.append(Problem(("endpoints", name, "slo", "ttft_p95_ms"), ttft, expected))
            tbt = endpoint.slo.tbt_p95_ms
            if lane is not None and tbt is not None and lane.stream_interval_ms >= tbt:
                # Held tokens arrive together: the interval is a gap between messages every stream sees.
                expected = (f"more than the stream_interval_ms of lane {endpoint.lane!r} "
                            f"({show_number(lane.stream_interval_ms)} ms)")
                problems.append(Problem(("endpoints", name, "slo", "tbt_p95_ms"), tbt, expected))
            for i, tenant in enumerate(endpoint.allowed_tenants or ()):
                if not self._is_tenant(tenant):
                    loc = ("endpoints", name, "allowed_tenants", i)
                    problems.append(Problem(loc, tenant, self._one_of_tenants()))
        return problems

    def _rule_problems(self) -> list[Problem]:
        problems = []
        catch_all: int | None = None
        for i, rule in enumerate(self.rules):
            if catch_all is not None:
                expected = f"no rule after rules[{catch_all}], which matches every request"
                problems.append(Problem(("rules", i), rule.model_dump(exclude_defaults=True), expected))
            if rule.lane not in self.lanes:
                problems.append(Problem(("rules", i, "lane"), rule.lane, self._one_of_lanes()))
            for j, endpoint in enumerate(rule.match.endpoint or ()):
                if endpoint not in self.endpoints:
                    loc = ("rules", i, "match", "endpoint", j)
                    problems.append(Problem(loc, endpoint, self._one_of_endpoints()))
            for j, tenant in enumerate(rule.match.tenant or ()):
                if not self._is_tenant(tenant):
                    problems.append(Problem(("rules", i, "match", "tenant", j), tenant, self._one_of_tenants()))
            if rule.match.is_catch_all and catch_all is None:
                catch_all = i
        return problems

    def _tenant_problems(self) -> list[Problem]:
        problems = []
        owner_of_key: dict[str, str] = {}
        for name, tenant in self.tenants.items():
            if name == ANONYMOUS and tenant.keys_sha256:
                expected = f"no keys: tenant {ANONYMOUS!r} is the callers without a key"
                problems.append(Problem(("tenants", name, "keys_sha256"), list(tenant.keys_sha256), expected))
            if name != ANONYMOUS and not tenant.keys_sha256:
                expected = "at least one key hash (make one with `laneway policy hash-key`)"
                problems.append(Problem(("tenants", name, "keys_sha256"), [], expected))
            if name != ANONYMOUS and tenant.shared_batches:
                expected = f"false (only tenant {ANONYMOUS!r} has a shared Batch API namespace)"
                problems.append(Problem(("tenants", name, "shared_batches"), True, expected))
            for i, lane in enumerate(tenant.lanes):
                if lane not in self.lanes:
                    problems.append(Problem(("tenants", name, "lanes", i), lane, self._one_of_lanes()))
            for i, endpoint in enumerate(tenant.endpoints):
                if endpoint not in self.endpoints and endpoint != ALL_ENDPOINTS:
                    expected = self._one_of_endpoints() + ', or "*"'
                    problems.append(Problem(("tenants", name, "endpoints", i), endpoint, expected))
            for i, key in enumerate(tenant.keys_sha256):
                if key in owner_of_key:
                    expected = f"a key used once (tenant {owner_of_key[key]!r} has it too)"
                    problems.append(Problem(("tenants", name, "keys_sha256", i), key, expected))
                owner_of_key.setdefault(key, name)
        if self.auth.required and not any(name != ANONYMOUS for name in self.tenants):
            expected = "false, or at least one tenant under tenants (nobody could call)"
            problems.append(Problem(("auth", "required"), True, expected))
        return problems

    def _is_tenant(self, name: str) -> bool:
        return name in self.tenants or name == ANONYMOUS

    def _one_of_lanes(self) -> str:
        return "one of the lanes: " + ", ".join(self.lanes)

    def _one_of_endpoints(self) -> str:
        return "one of the endpoints: " + ", ".join(self.endpoints)

    def _one_of_tenants(self) -> str:
        return "one of the tenants: " + ", ".join([*self.tenants, ANONYMOUS])
