"""Turn a growing list of token ids into text deltas, one engine step at a time.

Two things are held back from the stream, each released as soon as it is ruled out:

- Text that ends inside a character. A character split over tokens decodes as U+FFFD
  while it is unfinished, in one of two ways: ByteLevel decoders (Llama-3, Qwen2) decode
  the bytes as lossy UTF-8, so an unfinished character is *one* U+FFFD at the very end;
  SentencePiece byte-fallback decoders (Llama-2, Mistral: `<0xE4><0xBD><0xA0>`) turn a
  run of byte tokens that is not valid UTF-8 yet into one U+FFFD *per byte*, complete
  characters of the run included. So the whole trailing run of U+FFFD is held while the
  text ends in one; everything before it is final either way. A run that keeps ending in
  U+FFFD for more tokens than a character has bytes is invalid output, not an unfinished
  character: all but its last few tokens' text is released (`_release_invalid`).
- A possible beginning of a stop string. When a stop string appears, the text ends just
  before it (OpenAI semantics: the stop string is not returned). Stop strings are matched
  on released text only, so one that ends in a multi-byte character matches when that
  character completes, never against its U+FFFD placeholders.

Each token decodes a short window, never the whole output (vLLM/TGI offsets):
`prefix_offset..read_offset` are already-emitted tokens kept as context (SentencePiece-
style tokenizers decode a token differently at the start of a string), and
`read_offset..end` are tokens whose text is not fully emitted yet. The text of the window
past the context is new text. Tokens are taken one at a time, so a character completes
(and its text is released) at the token that completes it, however many a step brings.

On valid UTF-8 output the deltas concatenate to the tokenizer's decode of all output
tokens. On invalid bytes a byte-fallback decode may differ in how many U+FFFD it shows
(a later stray byte turns the whole run, already-emitted characters included, into
U+FFFD); the stream keeps what it emitted. Either way the engine builds the non-streamed
text from the same deltas, so the two agree.

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
# A UTF-8 character has at most 4 bytes, so at most this many tokens end in an unfinished one.
_MAX_CHAR_TOKENS = 4
# Once this many tokens wait unread (runs of invalid bytes keep ending in U+FFFD; tokens
# may decode to nothing), settled text is released and the window is moved up to a recent
# token, so each step keeps decoding a short window.
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
        self._prefix_offset = self._context_start()
        self._prefix_text = self._decode(self._prefix_offset, self._read_offset)  # the context's text
        self._num_tail_emitted = 0  # chars past the context already emitted from held tokens

    @property
    def stop_matched(self) -> bool:
        return self._stop.is_matched

    def step(self, new_token_ids: list[int], may_stop: bool = True) -> DetokStep:
        """may_stop=False (below the request's min_tokens): stop strings pass as plain text."""
        assert not self._is_done, "step() after the sequence stopped or was flushed"
        pieces = []
        for token_id in new_token_ids:
            if token_id not in self._skipped_ids:
                self._token_ids.append(token_id)
                pieces.append(self._new_text(is_final=False))
        text = self._stop.feed("".join(pieces), may_match=may_stop)
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

    def _context_start(self) -> int:
        """The first of the last few prompt tokens whose text decodes cleanly on its own.

        A window starting inside a character decodes with U+FFFD at its start (ByteLevel)
        or throughout (byte fallback, where the stray bytes spoil the whole byte run), and
        a prompt ending inside a character would shift every later slice by the bytes the
        output completes: such prompts get no context, the output decodes on its own.
        """
        for start in range(max(self._read_offset - _NUM_PROMPT_CONTEXT_TOKENS, 0), self._read_offset):
            text = self._decode(start, self._read_offset)
            if text and text[0] != REPLACEMENT_CHAR and text[-1] != REPLACEMENT_CHAR:
                return start
        return self._read_offset

    def _new_text(self, is_final: bool) -> str:
        text = self._decode(self._prefix_offset)
        if not text.startswith(self._prefix_text):
            # Later byte tokens turned the context's byte run invalid (byte fallback: one
            # U+FFFD per byte, its emitted characters included). That text is out; the
            # window restarts after it, so the new bytes count as themselves.
            self._prefix_offset, self._prefix_text = self._read_offset, ""
            text = self._decode(self._prefix_offset)
        start = len(self._prefix_text) + self._num_tail_emitted
        if is_final:
            return self._advance(text[start:])
        num_unsettled = _num_trailing(text, REPLACEMENT_CHAR)
        if num_unsettled == 0 and len(text) > start:
            return self._advance(text[start:])
        # Ends inside a character (or nothing new yet: a token with no text of its own).
        delta = text[start : len(text) - num_unsettled]
        self._num_tail_emitted += len(delta)
        if len(self._token_ids) - self._read_offset > _MAX_HELD_TOKENS:
            if num_unsettled:
                delta += self._release_invalid(text)
            self._resync(text)
        return delta

    def _advance(self, delta: str) -> str:
        """All text of the window is out: the unread tokens become the next context."""
        self._prefix_offset, self._read_offset = self._read_offset, len(self._token_ids)
        if self._read_offset - self._prefix_offset > _MAX_HELD_TOKENS + 1:
            # A run no resync could split (invalid bytes) is out at last: as the next context
            # its last few tokens that decode cleanly do, as a prompt's do, not all of it.
            self._prefix_offset = self._context_start()
        self._prefix_text = self._decode(self._prefix_offset, self._read_offset)
        self._num_tail_emitted = 0
        return delta

    def _release_invalid(self, text: str) -> str:
        """The window's U+FFFD run outlasted any unfinished character: release what settled.

        Called after more than _MAX_HELD_TOKENS tokens each left the text ending in U+FFFD.
        A valid but unfinished character ends within its last _MAX_CHAR_TOKENS tokens and
        would have let the text end cleanly in between, so the run holds invalid bytes, whose
        U+FFFD are final in both decoder kinds (a byte-fallback run with an invalid byte
        stays one U+FFFD per byte). Only text the tokens before the last few decode to,
        unchanged by them, is released: it cannot belong to the character still open.
        """
        settled = self._decode(self._prefix_offset, len(self._token_ids) - _MAX_CHAR_TOKENS)
        num_emitted = len(self._prefix_text) + self._num_tail_emitted
        if not num_emitted < len(settled) < len(text) or not text.startswith(settled):
            return ""
        self._num_tail_emitted += len(settled) - num_emitted
        return settled[num_emitted:]

    def _resync(self, text: str) -> None:
        """Restart the window at a recent token whose text splits off cleanly.

        `text` is the decoded window; a split j is clean when decoding both sides apart
        gives the same text, and everything left of it has been emitted already.
        """
        num_emitted = len(self._prefix_text) + self._num_tail_emitted
        lowest = max(self._read_offset + 1, len(self._token_ids) - _NUM_RESYNC_CANDIDATES)
        candidates = list(range(len(self._token_ids) - 1, lowest - 1, -1))
        if self._prefix_offset < self._read_offset:
            # Last resort when no recent split is clean: keep the unread tokens and drop the
            # context, if its text splits off cleanly, so the window stops carrying it.
            candidates.append(self._read_offset)
        for split in candidates:
            left = self._decode(self._prefix_offset, split)
            if len(left) > num_emitted or not text.startswith(left):
                continue
            if self._decode(split) != text[len(left) :]:
                continue
            self._prefix_offset = self._read_offset = split
            self._prefix_text = ""
            self._num_tail_emitted = num_emitted - len(left)
            return


def _num_trailing(text: str, char: str) -> int:
    return len(text) - len(text.rstrip(char))


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
