"""API keys are stored as SHA-256 hex digests, never in clear text.

A plain (unsalted) hash is enough here: keys are long random strings, not passwords,
so there is no dictionary to attack, and the gateway can hash once per request.
"""

from __future__ import annotations

import hashlib
import re

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def hash_api_key(key: str) -> str:
    if not key:
        raise ValueError("cannot hash an empty API key")
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_sha256_hex(value: str) -> bool:
    return _SHA256_HEX.fullmatch(value) is not None
