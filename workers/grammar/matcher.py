"""One request's grammar state: the mask of legal next tokens, advanced token by token.

Budget-aware closing (JSON constraints only): a structured output that runs out of
max_tokens mid-document is useless to its client, so once the tokens left are just enough
to finish the document, the matcher forces the shortest way to finish it (JsonCloser's
ranking, checked against the grammar). How many tokens that takes is measured by a dry
run on the matcher itself (consume, then roll back), redone every few tokens and every
token near the end. Shortly before that point, outside string values, the model chooses
only among the tokens after which the document can still finish (another optional key
or element may not fit), so no single choice of the model's lengthens the way out by more
than the slack. A model that finishes on its own early never meets any of this.
"""

from __future__ import annotations

import llguidance

from workers.grammar.json_closer import JsonCloser
from workers.grammar.vocab import GrammarVocab

RECHECK_EVERY = 8  # tokens between dry runs while the end is far
RECHECK_MARGIN = 16  # dry-run every token once the tokens left are within this of the need
# Closing starts this many tokens before the last moment: the model's own next token can
# lengthen the way out (a 4-byte character, a new container, a literal instead of a digit)
# by up to about this much before the next dry run sees it.
CLOSING_SLACK = 8
# Within this many tokens of the need, the model chooses only among tokens after which the
# document still finishes with the slack to spare: one structural choice (another optional
# key, another element) can lengthen the way out without bound. So can one byte inside a
# string whose value picks a branch (an enum, a tool's name in an anyOf of calls: "get_w"
# instead of "get_t" commits to get_weather's required arguments). Free text inside a
# string, where a token adds only its own bytes, has more legal tokens than
# AFFORDABLE_MAX_CHOICES and is not checked.
AFFORDABLE_ZONE = 64
# More legal tokens than this is free text (a key of any name, say), where a token too adds
# only its own bytes: not worth a dry run each.
AFFORDABLE_MAX_CHOICES = 32


class GrammarMatcher:
    def __init__(self, matcher: llguidance.LLMatcher, vocab: GrammarVocab, closer: JsonCloser | None) -> None:
        self._matcher = matcher
        self._vocab = vocab
        self._closer = closer
        self._is_closing = False
        self._needed: int | None = None  # tokens the last dry run needed to finish; None: unknown
        self._check_in = 0  # tokens until the next dry run

    @property
    def is_finished(self) -> bool:
        """Nothing but eos can follow: the output is complete."""
        return self._matcher.is_stopped()

    @property
    def is_failed(self) -> bool:
        return self._matcher.is_error()

    @property
    def error(self) -> str:
        return self._matcher.get_error()

    @property
    def is_closing(self) -> bool:
        return self._is_closing

    def fork(self) -> GrammarMatcher:
        """An independent copy in the same state (one per sample when a request asks for n > 1)."""
        twin = GrammarMatcher(self._matcher.deep_copy(), self._vocab,
                              self._closer.copy() if self._closer is not None else None)
        twin._is_closing, twin._needed, twin._check_in = self._is_closing, self._needed, self._check_in
        return twin

    def fill_bitmask(self, address: int, num_bytes: int) -> None:
        """Write the legal next tokens as a bitmask (bit t of 32-bit word t // 32) into
        num_bytes of CPU memory at address (a row of an int32 tensor the sampler owns)."""
        self._matcher.unsafe_compute_mask_ptr(address, num_bytes)

    def accept(self, token_id: int) -> bool:
        """Advance past a sampled token; False (and is_failed) if the grammar forbids it."""
        if not self._matcher.consume_token(token_id):
            return False
        if self._closer is not None and token_id not in self._vocab.eos_token_ids:
            self._closer.feed(self._vocab.token_bytes(token_id))
        self._check_in -= 1
        return True

    def steer(self, num_tokens_left: int) -> list[int] | None:
        """The only tokens to choose from now so the document finishes within num_tokens_left
        (this token included): one when closing, the affordable ones near the end; None: any
        token the grammar allows."""
        if self._closer is None or self._matcher.is_stopped() or self._matcher.is_error():
            return None
        if not self._is_closing:
            near_end = self._needed is not None and num_tokens_left <= self._needed + RECHECK_MARGIN
            if self._check_in <= 0 or near_end:
                self._needed = self.tokens_to_finish(num_tokens_left)
                self._check_in = RECHECK_EVERY
            # A document that cannot finish in time still closes as far as it can.
            if self._needed is None or num_tokens_left <= self._needed + CLOSING_SLACK:
                self._is_closing = True
            elif num_tokens_left <= self._needed + AFFORDABLE_ZONE:
                return self._affordable(num_tokens_left)
        if not self._is_closing:
            return None
        # Closing follows exactly the path the dry run measured, so it fits.
        token = self._closing_choice(self._closer)
        token = token if token is not None else _first_allowed(self._matcher)
        return [token] if token is not None else None

    def _affordable(self, num_tokens_left: int) -> list[int] | None:
        """The legal tokens after which the document can still finish with the slack to
        spare (None: all of them). Outside string values the legal tokens are few: braces,
        commas, key characters, digits; one dry run each."""
        assert self._closer is not None, "only JSON constraints are steered"
        matcher, legal = self._matcher, _allowed(self._matcher)
        if len(legal) > AFFORDABLE_MAX_CHOICES:
            return None
        keep = []
        for token in legal:
            if token in self._vocab.eos_token_ids:
                keep.append(token)  # legal eos: the document is complete
                continue
            closer = self._closer.copy()
            closer.feed(self._vocab.token_bytes(token))
            if not matcher.consume_token(token):
                continue
            needed = self._measure(closer, num_tokens_left - 1 - CLOSING_SLACK)
            matcher.rollback(1)
            if needed is not None:
                keep.append(token)
        if len(keep) == len(legal):
            return None
        if not keep:  # nothing affords the slack: close now, as tightly as possible
            self._is_closing = True
            closing = self._closing_choice(self._closer)
            return [closing] if closing is not None else None
        return keep

    def _closing_choice(self, closer: JsonCloser) -> int | None:
        matcher = self._matcher
        if matcher.is_accepting():
            eos = self._vocab.eos_token_id
            return eos if matcher.validate_tokens([eos]) == 1 else None
        for byte in closer.preferences():
            token = self._vocab.byte_tokens.get(byte)
            if token is not None and matcher.validate_tokens([token]) == 1:
                return token
        return None

    def tokens_to_finish(self, limit: int) -> int | None:
        """Tokens the closing path takes from here (eos included where one is needed), or
        None if more than limit: a dry run that leaves the matcher as it found it."""
        assert self._closer is not None, "dry runs are for JSON constraints"
        return self._measure(self._closer.copy(), limit)

    def _measure(self, closer: JsonCloser, limit: int) -> int | None:
        """tokens_to_finish from the matcher's state, with closer (a copy) describing it."""
        matcher = self._matcher
        num_consumed = 0
        needed: int | None = None
        while num_consumed <= limit:
            if matcher.is_stopped():
                needed = num_consumed
                break
            if matcher.is_accepting():
                needed = num_consumed + 1  # eos
                break
            token = self._closing_choice(closer)
            if token is None:
                token = _first_allowed(matcher)
            if token is None or not matcher.consume_token(token):
                break
            num_consumed += 1
            closer.feed(self._vocab.token_bytes(token))
        if num_consumed:
            matcher.rollback(num_consumed)
        return needed if needed is not None and needed <= limit else None


def _allowed(matcher: llguidance.LLMatcher) -> list[int]:
    mask = int.from_bytes(matcher.compute_bitmask(), "little")
    tokens = []
    while mask:
        low = mask & -mask
        tokens.append(low.bit_length() - 1)
        mask ^= low
    return tokens


def _first_allowed(matcher: llguidance.LLMatcher) -> int | None:
    mask = int.from_bytes(matcher.compute_bitmask(), "little")
    if mask == 0:
        return None
    return (mask & -mask).bit_length() - 1
