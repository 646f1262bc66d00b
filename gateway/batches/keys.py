"""Every Redis key and id the Batch API uses, in one place.

    lw:file:ID              HASH    file metadata (tenant, purpose, filename, bytes, created_at, expires_at)
    lw:file:ID:content      STRING  the file's bytes (UTF-8 JSONL)
    lw:tenant:T:files       ZSET    file ids by created_at (listing)
    lw:tenant:T:file-bytes  HASH    file id -> bytes (the tenant's storage, against its quota)
    lw:batch:ID             HASH    batch fields (status, timestamps, counts, errors, ...)
    lw:batch:ID:items       STREAM  one entry per input line; consumer group "runners"
    lw:batch:ID:results     HASH    custom_id -> the line's answer (written once, HSETNX)
    lw:batch:ID:validator   STRING  which gateway is validating the input (expires)
    lw:tenant:T:batches     ZSET    batch ids by created_at (listing)
    lw:batches:active       SET     batches not yet in a final state (what runners scan)

No two kinds of key can meet: a tenant name (a policy NAME, no ':') only ever sits
between `lw:tenant:` and a fixed suffix, and an id only ever comes from this module or
from a URL that `is_file_id` / `is_batch_id` accepted, so `lw:batch:ID` with a crafted
ID cannot name a stream, an index or another tenant's key.
"""

from __future__ import annotations

import re
import uuid

GROUP = "runners"
ACTIVE = "lw:batches:active"


_FILE_ID = re.compile(r"file-[0-9a-f]{24}(-(output|errors))?")
_BATCH_ID = re.compile(r"batch_[0-9a-f]{24}")


def is_file_id(text: str) -> bool:
    """An id this gateway could have made (an upload, or a batch's output or error file)."""
    return _FILE_ID.fullmatch(text) is not None


def is_batch_id(text: str) -> bool:
    return _BATCH_ID.fullmatch(text) is not None


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
    return f"lw:tenant:{tenant}:files"


def file_bytes_key(tenant: str) -> str:
    return f"lw:tenant:{tenant}:file-bytes"


def batch_key(batch_id: str) -> str:
    return f"lw:batch:{batch_id}"


def items_key(batch_id: str) -> str:
    return f"lw:batch:{batch_id}:items"


def results_key(batch_id: str) -> str:
    return f"lw:batch:{batch_id}:results"


def validator_key(batch_id: str) -> str:
    return f"lw:batch:{batch_id}:validator"


def batches_index(tenant: str) -> str:
    return f"lw:tenant:{tenant}:batches"
