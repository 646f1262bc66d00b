"""OpenAI's Batch API (files and batches), durable in Redis, run on the bulk lane."""

from gateway.batches.batch_store import BatchStore
from gateway.batches.runner import BatchRunner
from gateway.batches.routes import routes

__all__ = ["BatchRunner", "BatchStore", "routes"]
