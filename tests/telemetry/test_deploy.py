"""deploy/: the dashboard asks only for series Laneway exports; the collector config is whole."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import yaml
from prometheus_client import CollectorRegistry

from gateway.config import DEFAULT_POLICY
from gateway.lanes_runtime.lane_stats import LaneStats
from gateway.telemetry.lane_collector import LaneCollector
from gateway.telemetry.metrics import GatewayMetrics
from lanes.policy import load_policy
from workers.engine.engine_loop import LoadSnapshot
from workers.telemetry.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _series(registry: CollectorRegistry) -> set[str]:
    return {family.name + suffix for family in registry.collect() for suffix in _SUFFIXES.get(family.type, ("",))}


def exported_series() -> set[str]:
    gateway = GatewayMetrics()
    policy = load_policy(DEFAULT_POLICY)
    gateway.registry.register(LaneCollector(lambda: policy, lambda: {"bulk": LaneStats(1, 50.0, 0, 3, {}, 2, 0.1)}))
    loop = SimpleNamespace(load=LoadSnapshot(num_total_kv_blocks=8), engine=SimpleNamespace(
        num_preemptions=0, scheduler=SimpleNamespace(block_manager=SimpleNamespace(
            num_prefix_queried_tokens=0, num_prefix_hit_tokens=0))))
    worker = WorkerMetrics(loop)  # type: ignore[arg-type]
    return _series(gateway.registry) | _series(worker.registry)


def test_every_dashboard_query_names_an_exported_series() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "laneway-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs.append(dashboard["templating"]["list"][1]["definition"])
    used = {name for e in exprs for name in re.findall(r"\blaneway_[a-z_]+", e)}
    assert len(used) >= 15
    missing = used - exported_series()
    assert not missing, f"dashboard queries series nobody exports: {sorted(missing)}"


def test_dashboard_covers_the_expert_graph() -> None:
    titles = " | ".join(p["title"] for p in json.loads((DEPLOY / "grafana" / "laneway-dashboard.json").read_text())
                        ["panels"]).lower()
    for needed in ("ttft p95 vs budget", "queue wait", "batch size", "active sequences", "kv cache", "refusals",
                   "cancellations"):
        assert needed in titles, needed


def test_collector_receives_otlp_and_exports_traces() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317") and protocols["http"]["endpoint"].endswith(":4318")
    for kind in ("receivers", "processors", "exporters"):
        for pipeline in config["service"]["pipelines"].values():
            assert set(pipeline[kind]) <= set(config[kind]), f"a pipeline names an undefined {kind[:-1]}"
