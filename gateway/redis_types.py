"""The types of what the gateway writes to and reads from Redis, which redis-py cannot state.

The gateway's client decodes replies (`redis_client.connect` sets decode_responses=True), so
every string in a reply is a str. redis-py annotates replies as `bytes | str` whatever the
client, and the maps it writes as `Mapping[FieldT, EncodableT]`, whose invariant key type
rejects a plain `dict[str, str]`. These helpers state the real types where a reply enters the
domain code or a record leaves it. They are casts: nothing is converted, nothing checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from redis.typing import EncodableT, FieldT

StreamEntry = tuple[str, dict[str, str]]  # a stream entry: its id and its fields


def maybe_text(reply: bytes | str | None) -> str | None:
    """GET, HGET: a string or nil."""
    return cast(str | None, reply)


def texts(reply: object) -> list[str]:
    """ZRANGE, ZREVRANGE without scores: the members."""
    return cast(list[str], reply)


def text_set(reply: object) -> set[str]:
    """SMEMBERS: the members."""
    return cast(set[str], reply)


def maybe_texts(reply: object) -> list[str | None]:
    """HMGET: one value or nil per field asked."""
    return cast(list[str | None], reply)


def text_hash(reply: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """HGETALL: the hash's fields and values."""
    return cast(dict[str, str], reply)


def stream_entries(reply: object) -> list[StreamEntry]:
    """XRANGE: the entries in id order."""
    return cast(list[StreamEntry], reply)


def group_read(reply: object) -> list[tuple[str, list[StreamEntry]]]:
    """XREADGROUP (RESP2): a (stream name, entries) pair per stream read."""
    return cast(list[tuple[str, list[StreamEntry]]], reply)


def fields(mapping: dict[str, str]) -> dict[FieldT, EncodableT]:
    """A record's fields as HSET's mapping or XADD's fields take them."""
    return cast(dict[FieldT, EncodableT], mapping)
