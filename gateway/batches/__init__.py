"""OpenAI's Batch API (files and batches), durable in Redis, run on the bulk lane.

Nothing is imported here, so loading one module of the package loads only what that module
needs: the app takes its routes from `gateway.batches.routes`, the Redis-backed pieces come
from `batch_store`, `runner` and `api`.
"""
