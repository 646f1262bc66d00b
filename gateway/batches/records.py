"""Files and batches as the gateway holds them, and as OpenAI's API shows them.

One conversion per direction: `from_hash` reads a Redis hash, `to_openai` renders the
object the official client parses (openai.types.FileObject / Batch).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum

from gateway.job import JobKind


class BatchStatus(str, Enum):
    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
_TIMESTAMPS = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
               "cancelled_at")


@dataclass(frozen=True)
class FileRecord:
    id: str
    tenant: str
    purpose: str  # "batch" (uploaded) or "batch_output" (written by a batch)
    filename: str
    num_bytes: int
    created_at: int
    expires_at: int | None = None  # unix seconds; Redis drops the file then (its keys carry the TTL)

    def to_hash(self) -> dict[str, str]:
        h = {"id": self.id, "tenant": self.tenant, "purpose": self.purpose, "filename": self.filename,
             "bytes": str(self.num_bytes), "created_at": str(self.created_at)}
        if self.expires_at is not None:
            h["expires_at"] = str(self.expires_at)
        return h

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> FileRecord:
        expires_at = int(h["expires_at"]) if h.get("expires_at") else None
        return cls(h["id"], h["tenant"], h["purpose"], h["filename"], int(h["bytes"]), int(h["created_at"]),
                   expires_at)

    def to_openai(self) -> dict:
        return {"id": self.id, "object": "file", "bytes": self.num_bytes, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed", "status_details": None,
                "expires_at": self.expires_at}


@dataclass(frozen=True)
class BatchRecord:
    id: str
    tenant: str
    endpoint: str  # the OpenAI URL of every line: /v1/chat/completions or /v1/completions
    laneway_endpoint: str  # the policy endpoint the lines run on
    input_file_id: str
    completion_window: str
    status: BatchStatus
    created_at: int
    expires_at: int
    metadata: dict[str, str] | None = None
    errors: list[dict] = field(default_factory=list)  # [{code, message, line}], validation failures
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    timestamps: dict[str, int] = field(default_factory=dict)  # in_progress_at, ... as set so far

    @property
    def kind(self) -> JobKind:
        """The gateway's job kind for the lines of this batch."""
        return "chat" if self.endpoint.endswith("/chat/completions") else "completion"

    def to_hash(self) -> dict[str, str]:
        h = {"id": self.id, "tenant": self.tenant, "endpoint": self.endpoint,
             "laneway_endpoint": self.laneway_endpoint, "input_file_id": self.input_file_id,
             "completion_window": self.completion_window, "status": self.status.value,
             "created_at": str(self.created_at), "expires_at": str(self.expires_at),
             "metadata": json.dumps(self.metadata), "errors": json.dumps(self.errors),
             "total": str(self.total), "completed": str(self.completed), "failed": str(self.failed)}
        h.update({k: str(v) for k, v in self.timestamps.items()})
        return h

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> BatchRecord:
        return cls(
            id=h["id"], tenant=h["tenant"], endpoint=h["endpoint"], laneway_endpoint=h["laneway_endpoint"],
            input_file_id=h["input_file_id"], completion_window=h["completion_window"],
            status=BatchStatus(h["status"]), created_at=int(h["created_at"]), expires_at=int(h["expires_at"]),
            metadata=json.loads(h.get("metadata") or "null"), errors=json.loads(h.get("errors") or "[]"),
            total=int(h.get("total", 0)), completed=int(h.get("completed", 0)), failed=int(h.get("failed", 0)),
            output_file_id=h.get("output_file_id") or None, error_file_id=h.get("error_file_id") or None,
            timestamps={k: int(h[k]) for k in _TIMESTAMPS if h.get(k)},
        )

    def to_openai(self) -> dict:
        body = {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "input_file_id": self.input_file_id,
            "completion_window": self.completion_window, "status": self.status.value,
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "created_at": self.created_at, "expires_at": self.expires_at,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
        }
        body.update({k: self.timestamps.get(k) for k in _TIMESTAMPS})
        return body
