"""Walk a GrammarMatcher the way the sampler does, choosing tokens with a caller's policy."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

from workers.grammar.compiler import GrammarCompiler
from workers.grammar.matcher import GrammarMatcher
from workers.tokenizer import ByteTokenizer

VOCAB_SIZE = 320
EOS = 257


def byte_compiler() -> GrammarCompiler:
    return GrammarCompiler.for_tokenizer(ByteTokenizer(VOCAB_SIZE), VOCAB_SIZE, (EOS,))


def allowed_tokens(matcher: GrammarMatcher) -> list[int]:
    num_bytes = (VOCAB_SIZE + 31) // 32 * 4
    buffer = (ctypes.c_ubyte * num_bytes)()
    matcher.fill_bitmask(ctypes.addressof(buffer), num_bytes)
    mask = int.from_bytes(bytes(buffer), "little")
    return [t for t in range(VOCAB_SIZE) if mask >> t & 1]


@dataclass
class Walk:
    text: bytes
    num_tokens: int
    finished: bool  # the grammar completed (eos taken or nothing else possible)
    min_allowed: int  # fewest legal tokens seen at any step (0 would be a dead end)


def walk(matcher: GrammarMatcher, choose: Callable[[list[int]], int], max_tokens: int) -> Walk:
    """Sample like the engine: choose() among the tokens the matcher steers to near the end,
    else among the legal ones; stop at eos, at a finished grammar, or at max_tokens."""
    text, n, min_allowed = b"", 0, VOCAB_SIZE
    while n < max_tokens:
        legal = matcher.steer(max_tokens - n)
        if legal is None:
            legal = allowed_tokens(matcher)
            min_allowed = min(min_allowed, len(legal))
        if not legal:
            break
        token = choose(legal)
        assert matcher.accept(token), matcher.error
        n += 1
        if token == EOS:
            return Walk(text, n, True, min_allowed)
        text += bytes([token])
        if matcher.is_finished:
            return Walk(text, n, True, min_allowed)
    return Walk(text, n, False, min_allowed)
