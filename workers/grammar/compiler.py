"""Compile a request's OutputConstraint into a GrammarMatcher (llguidance).

Why llguidance (docs/structured-outputs.md has the measurements): masks in microseconds
per token on a CPU, computed lazily with no per-grammar precompilation over the
vocabulary, a small Rust wheel with no torch dependency, JSON Schema, regex and Lark
grammars in one engine; vLLM and llama.cpp use it.

Compiling takes from microseconds to, for huge schemas, a second; the servicer runs it off
its event loop. Errors in the constraint (a bad schema, an unsupported keyword, a regex
that does not parse) are InvalidRequest with the engine's message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import llguidance

from laneway_proto.error_codes import INVALID_CONSTRAINT
from workers.engine.request_error import InvalidRequest
from workers.engine.tokenizer import Tokenizer
from workers.grammar.constraint import OutputConstraint
from workers.grammar.json_closer import JsonCloser
from workers.grammar.matcher import GrammarMatcher
from workers.grammar.vocab import GrammarVocab, build_vocab

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

# JSON as json.dumps writes it: fixed separators, no other whitespace. A model keeps its
# usual spacing, and a random-weight one cannot pad the output with blank lines.
JSON_OPTIONS: JsonCompileOptions = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
MAX_CONSTRAINT_CHARS = 1_000_000


class GrammarCompiler:
    def __init__(self, vocab: GrammarVocab) -> None:
        self.vocab = vocab

    @classmethod
    def for_tokenizer(cls, tokenizer: Tokenizer, vocab_size: int, eos_token_ids: Sequence[int]) -> GrammarCompiler:
        return cls(build_vocab(tokenizer, vocab_size, eos_token_ids))

    def compile(self, constraint: OutputConstraint) -> GrammarMatcher:
        grammar = self._grammar(constraint)
        error = llguidance.LLMatcher.validate_grammar(grammar, self.vocab.tokenizer)
        if error:
            raise InvalidRequest(f"{_label(constraint)}: {error}", INVALID_CONSTRAINT)
        matcher = llguidance.LLMatcher(self.vocab.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise InvalidRequest(f"{_label(constraint)}: {matcher.get_error()}", INVALID_CONSTRAINT)
        return GrammarMatcher(matcher, self.vocab, JsonCloser() if constraint.is_json else None)

    def _grammar(self, c: OutputConstraint) -> str:
        if len(c.source) > MAX_CONSTRAINT_CHARS or sum(map(len, c.choices)) > MAX_CONSTRAINT_CHARS:
            raise InvalidRequest(f"{_label(c)} is longer than {MAX_CONSTRAINT_CHARS} characters", INVALID_CONSTRAINT)
        if c.kind in ("json_schema", "json_object"):
            source = c.source if c.kind == "json_schema" else '{"type": "object"}'
            try:
                schema = json.loads(source)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(f"{_label(c)} is not valid JSON: {exc}", INVALID_CONSTRAINT) from None
            if not isinstance(schema, (dict, bool)):
                raise InvalidRequest(f"{_label(c)} must be a JSON object, got {type(schema).__name__}",
                                     INVALID_CONSTRAINT)
            try:
                options: JsonCompileOptions = {**JSON_OPTIONS, "lenient": c.lenient}
                # llguidance takes a boolean schema as JSON text (its type is object-or-text)
                return llguidance.LLMatcher.grammar_from_json_schema(
                    schema if isinstance(schema, dict) else source, defaults=options)  # x-guidance may refine these
            except ValueError as exc:
                raise InvalidRequest(f"{_label(c)}: {exc}", INVALID_CONSTRAINT) from None
        if c.kind == "regex":
            return llguidance.LLMatcher.grammar_from_regex(c.source)
        if c.kind == "choice":
            return llguidance.LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(x) for x in c.choices))
        try:  # "grammar": Lark as llguidance reads it, or llama.cpp's GBNF
            return llguidance.grammar_from("grammar", c.source)
        except ValueError as exc:
            raise InvalidRequest(f"{_label(c)}: {exc}", INVALID_CONSTRAINT) from None


def _label(c: OutputConstraint) -> str:
    return {"json_schema": "JSON schema", "json_object": "json_object", "regex": "regex",
            "grammar": "grammar", "choice": "choice"}[c.kind]
