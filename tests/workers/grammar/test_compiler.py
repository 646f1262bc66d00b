"""Compiling constraints: what the grammar engine refuses is InvalidRequest naming the problem."""

from __future__ import annotations

import ctypes
import json
import random

import pytest

from tests.workers.grammar.grammar_walk import byte_compiler, walk
from tests.workers.tokenizer.factories import write_hf_tokenizer
from workers.engine.request_error import InvalidRequest
from workers.grammar.compiler import GrammarCompiler
from workers.grammar.constraint import OutputConstraint
from workers.tokenizer import HFTokenizer

COMPILER = byte_compiler()


@pytest.mark.parametrize(("constraint", "needle"), [
    (OutputConstraint("json_schema", '{"type": "objectx"}'), "objectx"),
    (OutputConstraint("json_schema", "{not json"), "not valid JSON"),
    (OutputConstraint("json_schema", "[1, 2]"), "must be a JSON object"),
    (OutputConstraint("regex", "[a-"), "regex"),
    (OutputConstraint("grammar", "start: undefined_rule"), "grammar"),
    (OutputConstraint("json_schema", json.dumps({"type": "string", "x-made-up-keyword": 1, "format": "madeup"})),
     "madeup"),
])
def test_bad_constraints_are_invalid_requests(constraint: OutputConstraint, needle: str) -> None:
    with pytest.raises(InvalidRequest, match=needle):
        COMPILER.compile(constraint)


def test_lenient_schemas_ignore_what_strict_ones_refuse() -> None:
    schema = json.dumps({"type": "string", "format": "madeup"})
    COMPILER.compile(OutputConstraint("json_schema", schema, lenient=True))


def test_empty_constraints_are_refused_before_compiling() -> None:
    with pytest.raises(InvalidRequest, match="at least one choice"):
        OutputConstraint("choice")
    with pytest.raises(InvalidRequest, match="non-empty regex"):
        OutputConstraint("regex")


def test_gbnf_grammars_compile_too() -> None:
    matcher = COMPILER.compile(OutputConstraint("grammar", 'root ::= "yes" | "no"'))
    out = walk(matcher, lambda legal: legal[0], max_tokens=8)
    assert out.finished and out.text in (b"yes", b"no")


def test_a_hugging_face_vocabulary_masks_and_closes_json(tmp_path) -> None:
    """BPE tokens of several bytes, a model vocabulary wider than the tokenizer's (320 > 280)."""
    tokenizer = HFTokenizer.from_dir(write_hf_tokenizer(tmp_path))
    compiler = GrammarCompiler.for_tokenizer(tokenizer, 320, (2,))
    schema = {"type": "object", "properties": {"greeting": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["greeting", "n"], "additionalProperties": False}
    matcher = compiler.compile(OutputConstraint("json_schema", json.dumps(schema)))
    rng = random.Random(0)
    ids: list[int] = []
    num_bytes = (320 + 31) // 32 * 4
    for _ in range(60):
        legal = matcher.steer(60 - len(ids))
        if legal is None:
            buffer = (ctypes.c_ubyte * num_bytes)()
            matcher.fill_bitmask(ctypes.addressof(buffer), num_bytes)
            mask = int.from_bytes(bytes(buffer), "little")
            legal = [t for t in range(320) if mask >> t & 1]
        assert legal and max(legal) < 280, "ids past the tokenizer's vocabulary are never legal"
        token = rng.choice(legal)
        assert matcher.accept(token)
        ids.append(token)
        if matcher.is_finished or token == 2:
            break
    assert matcher.is_finished
    text = tokenizer.decode([t for t in ids if t != 2])
    assert set(json.loads(text)) == {"greeting", "n"}


def test_a_fork_advances_independently() -> None:
    first = COMPILER.compile(OutputConstraint("choice", choices=("ab", "ac")))
    assert first.accept(ord("a"))
    second = first.fork()
    assert first.accept(ord("b")) and first.is_finished
    assert not second.is_finished and second.accept(ord("c")) and second.is_finished
