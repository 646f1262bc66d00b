"""Turn a growing list of token ids into text deltas, one engine step at a time.

Two things are held back from the stream, each released as soon as it is ruled out:

- A trailing incomplete character. Byte-level tokenizers split multi-byte UTF-8
  characters across tokens and decode the unfinished tail as U+FFFD. In lossy UTF-8
  decoding only the *last* character can still change when bytes are appended (an
  unfinished sequence becomes one U+FFFD at the very end), so exactly that one
  character is held while it is U+FFFD; everything before it is final.
- A possible beginning of a stop string. When a stop string appears, the text ends just
  before it (OpenAI semantics: the stop string is not returned).

Each step decodes a short window of tokens, never the whole output (vLLM/TGI offsets):
`prefix_offset..read_offset` are already-emitted tokens kept as context (SentencePiece-
style tokenizers decode a token differently at the start of a string), and
`read_offset..end` are tokens whose text is not fully emitted yet. The text of the window
past the context is new text.

Special tokens are dropped before decoding (`special_token_ids`), so the tokenizer only
needs `decode`; end-of-sequence and stop *token* handling belongs to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.engine.request_error import InvalidRequest
from workers.engine.tokenizer import Decoder

REPLACEMENT_CHAR = "\ufffd"
# Prompt tokens decoded as context in front of the first output token.
_NUM_PROMPT_CONTEXT_TOKENS = 5
# Once this many tokens wait unread (runs of invalid bytes keep ending in U+FFFD; tokens
# may decode to nothing), the window is moved up to a recent token so each step keeps
# decoding a short window. An incomplete character spans at most 4 tokens.
_MAX_HELD_TOKENS = 8
_NUM_RESYNC_CANDIDATES = 4


@dataclass(frozen=True)
class DetokStep:
    text_delta: str
    stop_matched: bool  # a stop string completed; the sequence is finished, stop text excluded


class IncrementalDetokenizer:
    def __init__(
        self,
        tokenizer: Decoder,
        prompt_ids: list[int],
        stop: tuple[str, ...] = (),
        *,
        skip_special_tokens: bool = True,
        special_token_ids: frozenset[int] = frozenset(),
    ) -> None:
        self._tokenizer = tokenizer
        self._skipped_ids = special_token_ids if skip_special_tokens else frozenset()
        self._stop = _StopMatcher(stop)
        self._is_done = False

        self._token_ids = [t for t in prompt_ids if t not in self._skipped_ids]
        self._read_offset = len(self._token_ids)
        self._prefix_offset = max(self._read_offset - _NUM_PROMPT_CONTEXT_TOKENS, 0)
        prefix_text = self._decode(self._prefix_offset, self._read_offset)
        if prefix_text.endswith(REPLACEMENT_CHAR):
            # The prompt ends inside a character: as context it would shift every later
            # slice by the bytes the output completes, so the output decodes on its own.
            self._prefix_offset = self._read_offset
            prefix_text = ""
        self._prefix_len = len(prefix_text)  # chars of decode(tokens[prefix_offset:read_offset])
        self._num_tail_emitted = 0  # chars past the context already emitted from held tokens

    @property
    def stop_matched(self) -> bool:
        return self._stop.is_matched

    def step(self, new_token_ids: list[int], may_stop: bool = True) -> DetokStep:
        """may_stop=False (below the request's min_tokens): stop strings pass as plain text."""
        assert not self._is_done, "step() after the sequence stopped or was flushed"
        self._token_ids.extend(t for t in new_token_ids if t not in self._skipped_ids)
        text = self._stop.feed(self._new_text(is_final=False), may_match=may_stop)
        self._is_done = self._stop.is_matched
        return DetokStep(text_delta=text, stop_matched=self._stop.is_matched)

    def flush(self) -> str:
        """End of sequence: release held text (a trailing U+FFFD included), never the stop string."""
        if self._is_done:
            return ""
        self._is_done = True
        text = self._stop.feed(self._new_text(is_final=True))
        return text + self._stop.release()

    def _decode(self, start: int, end: int | None = None) -> str:
        return self._tokenizer.decode(self._token_ids[start:end])

    def _new_text(self, is_final: bool) -> str:
        text = self._decode(self._prefix_offset)
        start = self._prefix_len + self._num_tail_emitted
        if text.endswith(REPLACEMENT_CHAR) and not is_final:
            delta = text[start : len(text) - 1]
            self._num_tail_emitted += len(delta)
        elif len(text) <= start and not is_final:
            delta = ""  # nothing new yet (a token with no text of its own)
        else:
            return self._advance(text[start:])
        if len(self._token_ids) - self._read_offset > _MAX_HELD_TOKENS:
            self._resync(text)
        return delta

    def _advance(self, delta: str) -> str:
        """All text of the window is out: the unread tokens become the next context."""
        self._prefix_offset, self._read_offset = self._read_offset, len(self._token_ids)
        self._prefix_len = len(self._decode(self._prefix_offset, self._read_offset))
        self._num_tail_emitted = 0
        return delta

    def _resync(self, text: str) -> None:
        """Restart the window at a recent token whose text splits off cleanly.

        `text` is the decoded window; a split j is clean when decoding both sides apart
        gives the same text, and everything left of it has been emitted already.
        """
        num_emitted = self._prefix_len + self._num_tail_emitted
        lowest = max(self._read_offset + 1, len(self._token_ids) - _NUM_RESYNC_CANDIDATES)
        for split in range(len(self._token_ids) - 1, lowest - 1, -1):
            left = self._decode(self._prefix_offset, split)
            if len(left) > num_emitted or not text.startswith(left):
                continue
            if self._decode(split) != text[len(left) :]:
                continue
            self._prefix_offset = self._read_offset = split
            self._prefix_len = 0
            self._num_tail_emitted = num_emitted - len(left)
            return


class _StopMatcher:
    """Cuts a text stream just before the first stop string, holding back possible starts.

    The first stop to *complete* wins (ties: the longest), which is what a client checking
    after every token would see, and does not depend on how text is split into deltas.
    """

    def __init__(self, stop: tuple[str, ...]) -> None:
        if not all(stop):  # request input (SamplingParams refuses it first on the serving path)
            raise InvalidRequest(f"stop strings must be non-empty, got {stop!r}")
        self._stop = stop
        self._held = ""  # a suffix of the stream that is a proper prefix of some stop string
        self.is_matched = False

    def feed(self, delta: str, may_match: bool = True) -> str:
        assert not self.is_matched, "feed() after a stop string matched"
        if not self._stop:
            return delta
        text = self._held + delta
        if not may_match:
            self._held = ""
            return text
        cut = self._first_match_start(text)
        if cut is not None:
            self.is_matched = True
            self._held = ""
            return text[:cut]
        num_held = self._longest_stop_prefix_suffix(text)
        self._held = text[len(text) - num_held :]
        return text[: len(text) - num_held]

    def release(self) -> str:
        held, self._held = self._held, ""
        return held

    def _first_match_start(self, text: str) -> int | None:
        best: tuple[int, int] | None = None  # (end, -length) of the best match
        for stop in self._stop:
            start = text.find(stop)
            if start >= 0:
                key = (start + len(stop), -len(stop))
                best = key if best is None or key < best else best
        return None if best is None else best[0] + best[1]

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        longest_stop = max(len(s) for s in self._stop)
        for n in range(min(len(text), longest_stop - 1), 0, -1):
            tail = text[len(text) - n :]
            if any(stop.startswith(tail) for stop in self._stop):
                return n
        return 0
