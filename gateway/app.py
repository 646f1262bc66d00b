"""The Starlette application: routes, exception handlers, and the lifespan that owns resources."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from gateway.batches import routes as batch_routes
from gateway.body_limits import BodyLimits
from gateway.config import GatewayConfig
from gateway.errors import EXCEPTION_HANDLERS
from gateway.lanes_runtime import LaneDispatcher
from gateway.model_catalog import ModelCatalog
from gateway.policy_store import PolicyStore
from gateway.redis_features import redis_features
from gateway.routes import generate, meta
from gateway.routes.openapi import openapi
from gateway.service import Dispatcher, GenerationService, ImmediateDispatcher
from gateway.state import GatewayState
from gateway.telemetry import GatewayTelemetry, TelemetryMiddleware
from gateway.telemetry.metrics_route import metrics
from gateway.telemetry.telemetry import SERVICE_NAME
from gateway.worker_pool import WorkerPool
from telemetry import TracingConfig

log = logging.getLogger(__name__)


def _routes() -> list[Route]:
    return [
        Route("/v1/completions", generate.completions, methods=["POST"]),
        Route("/v1/chat/completions", generate.chat_completions, methods=["POST"]),
        Route("/v1/endpoints/{endpoint}/completions", generate.completions, methods=["POST"]),
        Route("/v1/endpoints/{endpoint}/chat/completions", generate.chat_completions, methods=["POST"]),
        Route("/v1/models", meta.models, methods=["GET"]),
        Route("/v1/endpoints/{endpoint}/models", meta.models, methods=["GET"]),
        Route("/v1/models/{model:path}", meta.model, methods=["GET"]),  # served names may hold "/"
        Route("/v1/endpoints/{endpoint}/models/{model:path}", meta.model, methods=["GET"]),
        Route("/healthz", meta.healthz, methods=["GET"]),
        Route("/readyz", meta.readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *batch_routes.routes(),
    ]


def create_app(config: GatewayConfig) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        telemetry = GatewayTelemetry(config.tracing or TracingConfig.from_env(SERVICE_NAME))  # bad settings: fail first
        policy_store = PolicyStore(config.policy_path)
        pool = WorkerPool(config.worker_addresses, refresh_interval_s=config.worker_refresh_interval_s,
                          use_sessions=config.worker_sessions)
        await pool.start()
        dispatcher: Dispatcher
        if config.use_lanes:
            lanes = LaneDispatcher(policy_store.policy, pool)
            policy_store.on_change(lanes.update_policy)
            await lanes.start()
            dispatcher = lanes
        else:
            dispatcher = ImmediateDispatcher(pool)
        service = GenerationService(pool, dispatcher, telemetry)
        catalog = ModelCatalog(pool, config.model_name)
        try:
            async with redis_features(config, pool, policy_store, catalog, service) as features:
                state = GatewayState(config, policy_store, pool, service, catalog, features.limiter,
                                     features.batches)
                app.state.laneway = state
                telemetry.watch(policy=lambda: policy_store.policy, model_name=lambda: catalog.model_name,
                                lanes=dispatcher.snapshot if isinstance(dispatcher, LaneDispatcher) else None,
                                limiter=state.limiter)
                policy_store.watch(config.policy_poll_interval_s)
                _on_sighup(policy_store)
                state.batches.start()  # last: batch lines start once the gateway is fully set up
                yield
        finally:
            await policy_store.stop()
            await dispatcher.close()
            await pool.close()
            telemetry.shutdown()  # flushes the spans still queued

    return Starlette(routes=_routes(), exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan,
                     middleware=[Middleware(TelemetryMiddleware),
                                 Middleware(BodyLimits, max_body_bytes=config.max_body_bytes,
                                            max_upload_bytes=config.max_file_bytes,
                                            idle_timeout_s=config.request_body_timeout_s)])


def _on_sighup(store: PolicyStore) -> None:
    import asyncio

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, store.reload)
    except (RuntimeError, ValueError, NotImplementedError):
        log.debug("SIGHUP reload unavailable here (not the main thread); file watching still reloads")
