from __future__ import annotations

import pytest

from tests.workers.detok.fake_tokenizers import (
    FakeByteTokenizer,
    FakePieceTokenizer,
    FakeSentencePieceTokenizer,
)
from workers.engine.detokenizer import (
    REPLACEMENT_CHAR,
    DetokStep,
    IncrementalDetokenizer,
)
from workers.engine.request_error import InvalidRequest

PROMPT = list(b"Q: ")


def _stream(detok: IncrementalDetokenizer, token_ids: list[int]) -> list[str]:
    return [detok.step([t]).text_delta for t in token_ids]


def test_ascii_is_emitted_token_by_token() -> None:
    detok = IncrementalDetokenizer(FakeByteTokenizer(), PROMPT)
    assert _stream(detok, list(b"hi you")) == list("hi you")
    assert detok.flush() == ""


def test_multibyte_characters_split_over_tokens_are_emitted_whole() -> None:
    text = "héllo €𝄞 世界!"
    detok = IncrementalDetokenizer(FakeByteTokenizer(), PROMPT)
    deltas = _stream(detok, list(text.encode()))
    assert all(REPLACEMENT_CHAR not in d for d in deltas)
    assert "".join(deltas) + detok.flush() == text
    # Each character comes out with the token that completes it.
    assert [d for d in deltas if d] == list(text)
    assert deltas[:3] == ["h", "", "é"]


def test_pieces_that_cut_characters_anywhere() -> None:
    tokenizer = FakePieceTokenizer()
    ids = tokenizer.encode_pieces([b"a\xe2", b"\x82", b"\xac\xf0\x9d", b"\x84\x9e!", b"\xe4\xb8\x96x"])
    detok = IncrementalDetokenizer(tokenizer, tokenizer.encode_pieces([b"p"]))
    assert _stream(detok, ids) == ["a", "", "€", "𝄞!", "世x"]


def test_several_tokens_in_one_step() -> None:
    detok = IncrementalDetokenizer(FakeByteTokenizer(), PROMPT)
    assert detok.step(list("a€".encode())[:3]).text_delta == "a"
    assert detok.step(list("a€b".encode())[3:]).text_delta == "€b"


def test_unfinished_character_is_released_by_flush() -> None:
    detok = IncrementalDetokenizer(FakeByteTokenizer(), PROMPT)
    assert "".join(_stream(detok, list(b"ab\xe2\x82"))) == "ab"
    assert detok.flush() == REPLACEMENT_CHAR


def test_invalid_bytes_stream_with_a_short_window() -> None:
    # A run of lone continuation bytes always ends in U+FFFD; it must still stream, and
    # the decode window must stay short instead of growing with the output.
    tokenizer = FakeByteTokenizer()
    detok = IncrementalDetokenizer(tokenizer, PROMPT)
    output = [0x80] * 300 + list("é".encode())
    deltas = _stream(detok, output)
    # Invalid bytes are held like an unfinished character until they outlast one (at most
    # 4 tokens), so the stream lags by a few tokens but keeps flowing.
    streamed = "".join(deltas[:300])
    assert set(streamed) == {REPLACEMENT_CHAR} and len(streamed) >= 300 - 9
    assert "".join(deltas) + detok.flush() == bytes(output).decode(errors="replace")
    assert max(tokenizer.decoded_lengths) <= 16


def test_tokens_without_text_do_not_grow_the_window() -> None:
    tokenizer = FakePieceTokenizer([b"p", b"", b"x"])
    lengths: list[int] = []

    class Counting:
        def decode(self, ids: list[int]) -> str:
            lengths.append(len(ids))
            return tokenizer.decode(ids)

    detok = IncrementalDetokenizer(Counting(), [0])
    assert "".join(_stream(detok, [2] + [1] * 200 + [2])) == "xx"
    assert max(lengths) <= 16


def test_decode_window_stays_short_on_plain_text() -> None:
    tokenizer = FakeByteTokenizer()
    detok = IncrementalDetokenizer(tokenizer, list(b"a long prompt " * 50))
    _stream(detok, list("ß and plain text, ".encode() * 40))
    assert max(tokenizer.decoded_lengths) <= 8


def test_prompt_context_keeps_leading_spaces() -> None:
    tokenizer = FakeSentencePieceTokenizer(["Hello", " world", " again", "!"])
    detok = IncrementalDetokenizer(tokenizer, [0])
    assert _stream(detok, [1, 2, 3]) == [" world", " again", "!"]


def test_prompt_ending_inside_a_character_does_not_shift_the_output() -> None:
    output = [0x82, 0xAC, ord("c"), ord("d")]
    detok = IncrementalDetokenizer(FakeByteTokenizer(), list(b"ab\xe2"))
    assert "".join(_stream(detok, output)) + detok.flush() == bytes(output).decode(errors="replace")


def test_special_tokens_are_skipped_unless_asked() -> None:
    tokenizer = FakePieceTokenizer([b"<s>", b"hi", b"</s>"])
    skipping = IncrementalDetokenizer(tokenizer, [0], special_token_ids=frozenset({0, 2}))
    assert _stream(skipping, [1, 2]) == ["hi", ""]
    keeping = IncrementalDetokenizer(
        tokenizer, [0], skip_special_tokens=False, special_token_ids=frozenset({0, 2})
    )
    assert _stream(keeping, [1, 2]) == ["hi", "</s>"]


# Stop strings


def test_stop_string_spanning_tokens_is_cut_before_it() -> None:
    tokenizer = FakePieceTokenizer()
    ids = tokenizer.encode_pieces([b"Hel", b"lo w", b"orld"])
    detok = IncrementalDetokenizer(tokenizer, tokenizer.encode_pieces([b"p"]), stop=("o wo",))
    first, second, third = (detok.step([t]) for t in ids)
    assert (first.text_delta, first.stop_matched) == ("Hel", False)
    assert (second.text_delta, second.stop_matched) == ("l", False)  # "o w" held back
    assert (third.text_delta, third.stop_matched) == ("", True)
    assert detok.stop_matched
    assert detok.flush() == ""
    with pytest.raises(AssertionError, match="after the sequence stopped"):
        detok.step([ids[0]])


def test_stop_string_inside_one_token() -> None:
    tokenizer = FakePieceTokenizer([b"p", b"abcSTOPdef"])
    step = IncrementalDetokenizer(tokenizer, [0], stop=("STOP",)).step([1])
    assert (step.text_delta, step.stop_matched) == ("abc", True)


def test_held_stop_prefix_is_released_when_ruled_out() -> None:
    detok = IncrementalDetokenizer(FakeByteTokenizer(), PROMPT, stop=("STOP",))
    assert _stream(detok, list(b"aST")) == ["a", "", ""]
    assert detok.step(list(b"x")) == DetokStep("STx", stop_matched=False)
    assert _stream(detok, list(b"STO")) == ["", "", ""]
    assert detok.flush() == "STO"  # the end rules it out too
    assert not detok.stop_matched


def test_stop_string_made_of_split_multibyte_characters() -> None:
    detok = IncrementalDetokenizer(FakeByteTokenizer(), PROMPT, stop=("€!",))
    steps = [detok.step([t]) for t in "a€€!".encode()]
    assert "".join(s.text_delta for s in steps) == "a€"
    assert [s.stop_matched for s in steps] == [False] * 7 + [True]


def test_first_stop_to_complete_wins() -> None:
    tokenizer = FakePieceTokenizer([b"p", b"abcd"])
    step = IncrementalDetokenizer(tokenizer, [0], stop=("abcd", "bc")).step([1])
    assert (step.text_delta, step.stop_matched) == ("a", True)


def test_same_end_prefers_the_longer_stop() -> None:
    tokenizer = FakePieceTokenizer([b"p", b"xabc"])
    step = IncrementalDetokenizer(tokenizer, [0], stop=("bc", "abc")).step([1])
    assert step.text_delta == "x"


def test_stop_completed_by_the_flushed_tail() -> None:
    detok = IncrementalDetokenizer(FakeByteTokenizer(), PROMPT, stop=("b" + REPLACEMENT_CHAR,))
    assert _stream(detok, list(b"ab\xe2")) == ["a", "", ""]
    assert detok.flush() == ""
    assert detok.stop_matched


def test_empty_stop_string_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="non-empty"):
        IncrementalDetokenizer(FakeByteTokenizer(), PROMPT, stop=("",))
