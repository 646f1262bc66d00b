"""When a sequence is done after a new token. Stop strings need text, so the detokenizer
checks them outside and calls Scheduler.finish()."""

from __future__ import annotations

import logging

from workers.engine.sequence import SeqStatus, Sequence

log = logging.getLogger(__name__)


def finish_status(seq: Sequence, max_model_len: int) -> SeqStatus | None:
    """Status for seq after its last token was appended, or None to keep going."""
    token_id = seq.token_ids[-1]
    if token_id in seq.sampling.stop_token_ids:
        return SeqStatus.FINISHED_STOPPED
    if token_id == seq.eos_token_id and not seq.sampling.ignore_eos:
        return SeqStatus.FINISHED_STOPPED
    grammar = seq.grammar
    if grammar is not None:
        if grammar.is_failed:  # the sampler masks by the grammar, so this is a bug, not input
            log.error("sequence %s: token %d broke its grammar: %s", seq.seq_id, token_id, grammar.error)
            return SeqStatus.FINISHED_ABORTED
        if grammar.is_finished:  # the structured output is complete (even with ignore_eos)
            return SeqStatus.FINISHED_STOPPED
    if seq.num_output_tokens >= seq.sampling.max_tokens or seq.num_tokens >= max_model_len:
        return SeqStatus.FINISHED_LENGTH
    return None
