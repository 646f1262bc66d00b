"""Waiting sequences, kept in scheduling order (Sequence.sort_key)."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from workers.engine.sequence import Sequence


class WaitingQueue:
    """Sorted on insert, so a preempted sequence (which keeps its arrival_order) lands back
    ahead of newer sequences of its priority instead of at the tail."""

    def __init__(self) -> None:
        self._seqs: list[Sequence] = []

    def __len__(self) -> int:
        return len(self._seqs)

    def __iter__(self) -> Iterator[Sequence]:
        return iter(self._seqs)

    def add(self, seq: Sequence) -> None:
        bisect.insort(self._seqs, seq, key=Sequence.sort_key)

    def remove(self, seq: Sequence) -> None:
        self._seqs.remove(seq)
