"""Constrained decoding: structured outputs and forced tool calls as grammars over the vocabulary.

A request's OutputConstraint (constraint.py) is compiled once (compiler.py, on the
servicer side); the GrammarMatcher (matcher.py) it gives rides on the Sequence. The sampler
asks it for a token bitmask each step, postprocess advances it with the sampled token, and
stopping ends the sequence when the grammar is complete. No torch here: the sampler owns
the tensors.

This __init__ imports nothing: the grammar engine (llguidance) and the tokenizers are the
worker image's, and `laneway` loads workers.main for its command line in the gateway image
too. Import from the modules.
"""
