"""Every Redis key and id the Batch API uses, in one place.

    lw:file:ID              HASH    file metadata (tenant, purpose, filename, bytes, created_at)
    lw:file:ID:content      STRING  the file's bytes (UTF-8 JSONL)
    lw:files:TENANT         ZSET    file ids by created_at (listing)
    lw:batch:ID             HASH    batch fields (status, timestamps, counts, errors, ...)
    lw:batch:ID:items       STREAM  one entry per input line; consumer group "runners"
    lw:batch:ID:results     HASH    custom_id -> the line's answer (written once, HSETNX)
    lw:batch:ID:validator   STRING  which gateway is validating the input (expires)
    lw:batches:TENANT       ZSET    batch ids by created_at (listing)
    lw:batches:active       SET     batches not yet in a final state (what runners scan)
"""

from __future__ import annotations

import uuid

GROUP = "runners"
ACTIVE = "lw:batches:active"


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex[:24]}"


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex[:24]}"


def output_file_id(batch_id: str, kind: str) -> str:
    """Deterministic, so a finisher that crashed and ran again overwrites instead of duplicating."""
    return f"file-{batch_id.removeprefix('batch_')}-{kind}"


def file_key(file_id: str) -> str:
    return f"lw:file:{file_id}"


def content_key(file_id: str) -> str:
    return f"lw:file:{file_id}:content"


def files_index(tenant: str) -> str:
    return f"lw:files:{tenant}"


def batch_key(batch_id: str) -> str:
    return f"lw:batch:{batch_id}"


def items_key(batch_id: str) -> str:
    return f"lw:batch:{batch_id}:items"


def results_key(batch_id: str) -> str:
    return f"lw:batch:{batch_id}:results"


def validator_key(batch_id: str) -> str:
    return f"lw:batch:{batch_id}:validator"


def batches_index(tenant: str) -> str:
    return f"lw:batches:{tenant}"
