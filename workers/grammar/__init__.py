"""Constrained decoding: structured outputs and forced tool calls as grammars over the vocabulary.

A request's OutputConstraint is compiled once (GrammarCompiler, on the servicer side); the
GrammarMatcher it gives rides on the Sequence. The sampler asks it for a token bitmask
each step, postprocess advances it with the sampled token, and stopping ends the sequence
when the grammar is complete. No torch here: the sampler owns the tensors.
"""

from workers.grammar.compiler import GrammarCompiler
from workers.grammar.constraint import OutputConstraint
from workers.grammar.matcher import GrammarMatcher

__all__ = ["GrammarCompiler", "GrammarMatcher", "OutputConstraint"]
