"""How the engine reports a sequence's end: finish_reason against stop strings, eos and length."""

from __future__ import annotations

import torch

from workers.engine.block_manager import BlockManager
from workers.engine.config import SchedulerConfig
from workers.engine.engine import Engine, drain
from workers.engine.linear_cost import LinearCost
from workers.engine.scheduler import Scheduler
from workers.engine.sequence import SamplingParams, Sequence
from workers.models.config import PRESETS
from workers.sampling.result import SampleResult
from workers.sim.sim_runner import SimRunner
from workers.tokenizer import ByteTokenizer
from workers.tokenizer.byte import EOS_ID

VOCAB_SIZE = PRESETS["tiny"].vocab_size


def scripted_engine(script: list[int], max_model_len: int = 64) -> Engine:
    """An engine whose model emits `script` token by token (byte-tokenizer ids)."""

    def sample(logits: torch.Tensor, seqs: list[Sequence]) -> SampleResult:
        ids = [script[seq.num_output_tokens] for seq in seqs]
        return SampleResult(token_ids=ids, logprobs=[None] * len(ids))

    scheduler = Scheduler(SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=64, max_model_len=max_model_len),
                          BlockManager(num_blocks=32, block_size=4))
    runner = SimRunner(LinearCost(fixed_s=0.0), VOCAB_SIZE, sleep=lambda _s: None)
    return Engine(scheduler, runner, sample, ByteTokenizer(VOCAB_SIZE))


def run(script: list[int], max_tokens: int, stop: tuple[str, ...] = (), max_model_len: int = 64,
        prompt: bytes = b"Q: ") -> tuple[str, str | None, int]:
    engine = scripted_engine(script, max_model_len)
    seq = Sequence("s", list(prompt), SamplingParams(max_tokens=max_tokens, stop=stop), eos_token_id=EOS_ID)
    outputs = drain(engine, [seq])["s"]
    last = outputs[-1]
    assert last.usage is not None
    return "".join(o.text for o in outputs), last.finish_reason, last.usage.completion_tokens


def test_stop_string_completed_by_the_last_allowed_token_is_a_stop() -> None:
    # "END" completes with the 5th token, which is also max_tokens: the model stopped.
    assert run(list(b"abEND"), max_tokens=5, stop=("END",)) == ("ab", "stop", 5)


def test_stop_string_completed_by_the_last_token_of_the_context_is_a_stop() -> None:
    assert run(list(b"abEND"), max_tokens=50, stop=("END",), max_model_len=8) == ("ab", "stop", 5)


def test_multibyte_stop_string_completed_by_the_last_allowed_byte() -> None:
    assert run(list("a好".encode()), max_tokens=4, stop=("好",)) == ("a", "stop", 4)


def test_length_when_the_stop_string_is_still_incomplete() -> None:
    assert run(list(b"abEN"), max_tokens=4, stop=("END",)) == ("abEN", "length", 4)


def test_stop_earlier_than_the_last_token_and_eos_still_stop() -> None:
    assert run(list(b"aENDxyz"), max_tokens=7, stop=("END",)) == ("a", "stop", 4)
    assert run([*b"ab", EOS_ID], max_tokens=3) == ("ab", "stop", 3)
