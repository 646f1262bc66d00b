"""The model this gateway serves, the names clients may ask for it by, and prompt sizes in tokens.

Read from the workers' reports (the first worker that has reported its model info speaks
for all: one gateway serves one model) and, until one has, from the config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.worker_client import ModelInfo

BYTES_PER_TOKEN_GUESS = 4.0  # for subword vocabularies; byte-level models are exact (1.0)
BYTE_LEVEL_MAX_VOCAB = 512  # a vocabulary this small is bytes plus a few specials
FALLBACK_NAME = "laneway"  # also always accepted as a model name


class ReportingWorker(Protocol):
    @property
    def info(self) -> ModelInfo | None: ...


class WorkerRoster(Protocol):
    """What the catalog needs from gateway.worker_pool.WorkerPool."""

    @property
    def workers(self) -> Sequence[ReportingWorker]: ...


class ModelCatalog:
    def __init__(self, pool: WorkerRoster, configured_name: str | None = None) -> None:
        self.pool = pool
        self.configured_name = configured_name

    @property
    def model_name(self) -> str:
        info = self._info()
        if info is not None:
            return info.model
        return self.configured_name or FALLBACK_NAME

    def model_names(self, endpoint: str) -> list[str]:
        """What a request to this endpoint may name as `model`: the served model (first), the
        endpoint's own name, or "laneway". /v1/models lists exactly these."""
        served = self.model_name
        return [served, *sorted({endpoint, FALLBACK_NAME} - {served})]

    def estimate_tokens(self, num_bytes: int) -> int:
        """Prompt tokens before the worker tokenizes (admission and limits); the worker enforces
        the exact context length."""
        info = self._info()
        per_token = 1.0 if info is not None and info.vocab_size <= BYTE_LEVEL_MAX_VOCAB else BYTES_PER_TOKEN_GUESS
        return max(1, int(num_bytes / per_token))

    def _info(self) -> ModelInfo | None:
        return next((w.info for w in self.pool.workers if w.info is not None), None)
