"""The detokenizer against real `tokenizers` objects of both kinds that split characters.

ByteLevel (Llama-3, Qwen2): tokens are byte strings that may cut a character anywhere, and
an unfinished character decodes as one U+FFFD at the end. Byte fallback (Llama-2,
Mistral): characters outside the vocabulary become `<0xE4><0xBD><0xA0>`, and a byte run that
is not valid UTF-8 yet decodes as one U+FFFD per byte, complete characters included.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from tests.workers.tokenizer.factories import build_bpe_tokenizer, build_byte_fallback_tokenizer
from workers.engine.detokenizer import REPLACEMENT_CHAR, IncrementalDetokenizer
from workers.tokenizer import HFTokenizer

MULTIBYTE_CORPUS = ["你好 世界", "世界 你好 🦘🦘", "héllo 日本語 ✓", "hello world 你好吗"]
TEXTS = ["hello 你好 世界 🐨!", "你好你好吗 🦘🦘 héllo", "world 日本語 ✓ 世 界"]


def _tokenizers() -> dict[str, HFTokenizer]:
    # Few merges, so ByteLevel tokens end inside characters and straddle them ('�本�').
    byte_level: Tokenizer = build_bpe_tokenizer(vocab_size=300, corpus=MULTIBYTE_CORPUS)
    return {"byte_level": HFTokenizer(byte_level, special_tokens={}, chat_template=None),
            "byte_fallback": HFTokenizer(build_byte_fallback_tokenizer(), special_tokens={}, chat_template=None)}


TOKENIZERS = _tokenizers()


@pytest.fixture(params=sorted(TOKENIZERS))
def tokenizer(request: pytest.FixtureRequest) -> HFTokenizer:
    return TOKENIZERS[request.param]


def _prompt(tok: HFTokenizer) -> list[int]:
    return tok.encode("say hello")


def _output_ids(tok: HFTokenizer, text: str) -> list[int]:
    """Ids of " " + text as a model continuing the prompt emits them (the SentencePiece
    normalizer of the byte-fallback tokenizer prepends that space itself)."""
    prepends_space = tok is TOKENIZERS["byte_fallback"]
    return tok.encode(text if prepends_space else " " + text, add_special_tokens=False)


def _reference(tok: HFTokenizer, prompt_ids: list[int], output_ids: list[int]) -> str:
    """The non-streamed text: the output's part of decoding prompt and output together."""
    return tok.decode(prompt_ids + output_ids)[len(tok.decode(prompt_ids)):]


def _stream(detok: IncrementalDetokenizer, ids: list[int], step_sizes: list[int] | None = None) -> list[str]:
    deltas, i = [], 0
    for n in step_sizes or []:
        if i >= len(ids) or detok.stop_matched:
            break
        deltas.append(detok.step(ids[i:i + n]).text_delta)
        i += n
    while i < len(ids) and not detok.stop_matched:
        deltas.append(detok.step([ids[i]]).text_delta)
        i += 1
    return deltas


def test_the_tokenizers_really_split_characters(tokenizer: HFTokenizer) -> None:
    # Guards the fixtures: every text has a token ending inside a character.
    for text in TEXTS:
        ids = _output_ids(tokenizer, text)
        assert any(tokenizer.decode(ids[:k]).endswith(REPLACEMENT_CHAR) for k in range(1, len(ids))), text


@pytest.mark.parametrize("text", TEXTS)
def test_stream_is_the_non_streamed_text_and_never_shows_a_placeholder(tokenizer: HFTokenizer, text: str) -> None:
    prompt_ids = _prompt(tokenizer)
    output_ids = _output_ids(tokenizer, text)
    detok = IncrementalDetokenizer(tokenizer, prompt_ids)
    deltas = _stream(detok, output_ids)
    tail = detok.flush()
    assert all(REPLACEMENT_CHAR not in d for d in [*deltas, tail])
    assert "".join(deltas) + tail == _reference(tokenizer, prompt_ids, output_ids) == " " + text
    # A character split over tokens comes out whole, with the token that completes it.
    assert any("你" in d or "日" in d for d in deltas)
    assert all(len(d) <= len(text) for d in deltas)


def test_byte_fallback_character_is_held_until_its_last_byte() -> None:
    tok = TOKENIZERS["byte_fallback"]
    output_ids = _output_ids(tok, "你好")
    assert [tok.decode([i], skip_special_tokens=False) for i in output_ids[1:4]] == [REPLACEMENT_CHAR] * 3
    detok = IncrementalDetokenizer(tok, _prompt(tok))
    assert _stream(detok, output_ids) == [" ", "", "", "你", "", "", "好"]


def test_prompt_ending_in_byte_tokens_keeps_the_leading_space() -> None:
    # The last prompt tokens start inside a character: the context starts at a clean token
    # instead of being dropped, so the output's leading space survives the decoder's strip.
    tok = TOKENIZERS["byte_fallback"]
    prompt_ids = tok.encode("a 你好")
    output_ids = _output_ids(tok, "hello")
    detok = IncrementalDetokenizer(tok, prompt_ids)
    assert "".join(_stream(detok, output_ids)) + detok.flush() == " hello"


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("好", " hello 你"),  # a stop string that is one multi-byte character
        ("o 你", " hell"),  # spans ASCII and a character split over tokens
        ("好 世", " hello 你"),  # spans two multi-byte characters
        ("🐨", " hello 你好 世界 "),  # a 4-byte character
    ],
)
def test_stop_strings_across_multibyte_boundaries(tokenizer: HFTokenizer, stop: str, expected: str) -> None:
    output_ids = _output_ids(tokenizer, TEXTS[0])
    detok = IncrementalDetokenizer(tokenizer, _prompt(tokenizer), stop=(stop,))
    deltas = _stream(detok, output_ids)
    assert detok.stop_matched
    assert "".join(deltas) + detok.flush() == expected
    assert all(REPLACEMENT_CHAR not in d for d in deltas)


def test_stop_string_is_not_matched_against_placeholders(tokenizer: HFTokenizer) -> None:
    # U+FFFD shown while a character is unfinished is not text: a stop string made of it
    # never matches valid output.
    output_ids = _output_ids(tokenizer, TEXTS[0])
    detok = IncrementalDetokenizer(tokenizer, _prompt(tokenizer), stop=(REPLACEMENT_CHAR,))
    assert "".join(_stream(detok, output_ids)) + detok.flush() == " " + TEXTS[0]
    assert not detok.stop_matched


_ALPHABET = st.sampled_from(["a", "b", " ", "你", "好", "世", "界", "é", "🦘", "!", "hello", "或"])


def _reference_cut(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    for end in range(1, len(text) + 1):
        matches = [s for s in stop if text[:end].endswith(s)]
        if matches:
            return text[: end - max(len(s) for s in matches)], True
    return text, False


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    kind=st.sampled_from(sorted(TOKENIZERS)),
    parts=st.lists(_ALPHABET, min_size=1, max_size=12),
    stop=st.lists(st.lists(_ALPHABET, min_size=1, max_size=2).map("".join), max_size=2).map(tuple),
)
def test_any_text_streams_as_its_decode(data: st.DataObject, kind: str, parts: list[str],
                                        stop: tuple[str, ...]) -> None:
    tok = TOKENIZERS[kind]
    prompt_ids = _prompt(tok)
    output_ids = _output_ids(tok, "".join(parts))
    step_sizes = data.draw(st.lists(st.integers(1, 4), max_size=len(output_ids)))
    detok = IncrementalDetokenizer(tok, prompt_ids, stop=stop)
    deltas = _stream(detok, output_ids, step_sizes)
    tail = detok.flush()
    expected, should_stop = _reference_cut(_reference(tok, prompt_ids, output_ids), stop)
    assert ("".join(deltas) + tail, detok.stop_matched) == (expected, should_stop)
    assert all(REPLACEMENT_CHAR not in d for d in [*deltas, tail])


class _CountingDecoder:
    def __init__(self, tok: HFTokenizer) -> None:
        self.tok = tok
        self.longest = 0

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        self.longest = max(self.longest, len(ids))
        return self.tok.decode(ids, skip_special_tokens)


_BYTE_TOKEN = 3  # <0x00> in the byte-fallback vocabulary; byte b is id 3 + b


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(st.one_of(
    st.sampled_from("你好🐨é").map(lambda c: [_BYTE_TOKEN + b for b in c.encode()]),  # whole characters
    st.integers(0x80, 0xFF).map(lambda b: [_BYTE_TOKEN + b]),  # stray and truncating bytes
    st.sampled_from(["a", "\u2581"]).map(lambda p: [TOKENIZERS["byte_fallback"].encode(p, False)[-1]]),
), max_size=40))
# Found by a random search: a run of invalid bytes no resync could split left the window
# 19 tokens long (the held run became the whole next context).
@example(chunks=[[156], [184], [131], [225], [236], [221], [231, 192, 163], [198, 172], [188], [243, 162, 147, 171],
                 [175], [260], [259], [260], [232, 168, 192], [248], [243, 162, 147, 171], [243, 162, 147, 171],
                 [259], [191], [232, 168, 192], [243, 162, 147, 171], [231, 192, 163], [244], [260], [239], [212],
                 [134], [185], [210], [231, 192, 163], [160], [134], [217]])
@example(chunks=[[231, 192, 163], [259], [259], [231, 192, 163], [260], [143], [243, 162, 147, 171], [144], [260],
                 [231, 192, 163], [243, 162, 147, 171], [260], [243, 162, 147, 171], [151], [255], [231, 192, 163],
                 [231, 192, 163], [259], [224], [231, 192, 163], [249], [243, 162, 147, 171], [259], [133], [227],
                 [194], [156], [231, 192, 163], [231, 192, 163], [260], [135], [231, 192, 163], [259],
                 [231, 192, 163], [255], [232, 168, 192], [259], [191]])
def test_byte_tokens_in_any_order_stream_with_a_short_window(chunks: list[list[int]]) -> None:
    tok = TOKENIZERS["byte_fallback"]
    output_ids = [i for chunk in chunks for i in chunk]
    counting = _CountingDecoder(tok)
    detok = IncrementalDetokenizer(counting, _prompt(tok))
    streamed = "".join(_stream(detok, output_ids)) + detok.flush()
    full = _reference(tok, _prompt(tok), output_ids)
    if REPLACEMENT_CHAR not in full:  # valid UTF-8: exactly the decode
        assert streamed == full
    else:  # invalid bytes: the full decode spoils a whole byte run, the stream only the bad bytes
        assert _is_subsequence(full.replace(REPLACEMENT_CHAR, ""), streamed.replace(REPLACEMENT_CHAR, ""))
        assert streamed.count(REPLACEMENT_CHAR) <= full.count(REPLACEMENT_CHAR)
    assert counting.longest <= 2 * 9  # context and unread tokens: each at most _MAX_HELD_TOKENS + 1


def _is_subsequence(short: str, long: str) -> bool:
    chars = iter(long)
    return all(c in chars for c in short)
