"""Structured outputs through the real engine: a random-weight preset still writes a document
that parses and matches its schema, and finishes ("stop") within max_tokens."""

from __future__ import annotations

import json

import pytest

from tests.workers.engine.engine_factory import make_engine
from workers.engine.engine import drain
from workers.engine.sequence import LanePolicy, SamplingParams, Sequence
from workers.grammar.compiler import GrammarCompiler
from workers.grammar.constraint import OutputConstraint

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "age", "tags"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                         "tags": {"type": "array", "items": {"type": "string"}}}}


# small (104M parameters) is slow on a shared 2-core CPU: a shorter budget, which is the
# harder case for the closer anyway.
@pytest.mark.parametrize(("preset", "max_tokens"), [("tiny", 200), ("small", 64)])
def test_a_random_weight_preset_writes_valid_json_and_stops_within_budget(preset: str, max_tokens: int) -> None:
    engine = make_engine(preset, num_blocks=512, budget=64, max_model_len=512)
    compiler = GrammarCompiler.for_tokenizer(engine.tokenizer, 320, (257,))
    prompt = engine.tokenizer.encode("Describe a person as JSON.")
    seqs = [Sequence(f"{preset}-{i}", list(prompt), SamplingParams(max_tokens=max_tokens, **sampling),
                     LanePolicy(), eos_token_id=257,
                     grammar=compiler.compile(OutputConstraint("json_schema", json.dumps(SCHEMA))))
            for i, sampling in enumerate([{"temperature": 0.0}, {"temperature": 1.0, "seed": 7},
                                          {"temperature": 1.0, "seed": 8}])]
    outputs = drain(engine, seqs)
    for seq in seqs:
        outs = outputs[seq.seq_id]
        text = "".join(o.text for o in outs)
        assert outs[-1].finish_reason == "stop", (seq.seq_id, text)
        assert seq.num_output_tokens <= max_tokens
        value = json.loads(text)
        assert set(value) == {"name", "age", "tags"} and isinstance(value["age"], int), text
