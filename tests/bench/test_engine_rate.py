"""`python -m laneway.bench.engine_rate`: the in-process ceiling, under each threads layout."""

from __future__ import annotations

import pytest

from laneway.bench.engine_rate import LAYOUTS, measure


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_streams_every_request(layout: str) -> None:
    result = measure("tiny", num_threads=1, prompt_len=4, output_len=5, num_requests=3, layout=layout)
    assert len(result["decode_tok_s"]) == 3 and len(result["ttft_s"]) == 3  # the warm-up request is not counted
    assert all(rate > 0 for rate in result["decode_tok_s"])
    assert result["decode_tok_s_p50"] in result["decode_tok_s"]


def test_an_unknown_layout_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="got 'sideways'"):
        measure("tiny", num_threads=1, prompt_len=4, output_len=2, num_requests=1, layout="sideways")


def test_a_batch_round_counts_every_token_of_every_request() -> None:
    result = measure("tiny", num_threads=1, prompt_len=4, output_len=5, num_requests=2, batch=3)
    assert result["batch"] == 3 and len(result["aggregate_tok_s"]) == 2 and len(result["ttft_s"]) == 2
    assert result["tokens"] == [3 * 5, 3 * 5] and all(rate > 0 for rate in result["aggregate_tok_s"])
    with pytest.raises(ValueError, match="got 0"):
        measure("tiny", num_threads=1, prompt_len=4, output_len=2, num_requests=1, batch=0)
