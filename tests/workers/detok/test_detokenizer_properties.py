"""Whatever the bytes and however they are cut into tokens, the stream is the full decode."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workers.detok.fake_tokenizers import FakePieceTokenizer
from workers.engine.detokenizer import IncrementalDetokenizer

# Mostly valid UTF-8 with multi-byte characters, sometimes raw (possibly invalid) bytes.
_chunks = st.one_of(
    st.text(alphabet=st.sampled_from("aé€𝄞世 "), max_size=6).map(str.encode),
    st.binary(max_size=4),
)
_byte_strings = st.lists(_chunks, max_size=8).map(b"".join)


@st.composite
def _split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.sets(st.integers(1, max(len(data) - 1, 1)), max_size=len(data))))
    bounds = [0, *[c for c in cuts if c < len(data)], len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _run(
    prompt: bytes, pieces: list[bytes], stop: tuple[str, ...], steps: list[int]
) -> tuple[str, list[str], bool]:
    tokenizer = FakePieceTokenizer()
    prompt_ids = tokenizer.encode_pieces([prompt[i : i + 2] for i in range(0, len(prompt), 2)] or [b"p"])
    ids = tokenizer.encode_pieces(pieces)
    detok = IncrementalDetokenizer(tokenizer, prompt_ids, stop=stop)
    emitted, prefixes = "", []
    i = 0
    for n in steps:
        if i >= len(ids) or detok.stop_matched:
            break
        emitted += detok.step(ids[i : i + n]).text_delta
        prefixes.append(emitted)
        i += n
    if not detok.stop_matched:
        while i < len(ids) and not detok.stop_matched:
            emitted += detok.step([ids[i]]).text_delta
            prefixes.append(emitted)
            i += 1
        emitted += detok.flush()
    return emitted, prefixes, detok.stop_matched


@settings(max_examples=300, deadline=None)
@given(data=st.data(), prompt=_byte_strings, output=_byte_strings)
def test_stream_is_the_full_decode(data: st.DataObject, prompt: bytes, output: bytes) -> None:
    pieces = data.draw(_split(output))
    steps = data.draw(st.lists(st.integers(1, 3), max_size=len(pieces)))
    full = output.decode("utf-8", errors="replace")
    emitted, prefixes, _ = _run(prompt, pieces, (), steps)
    assert emitted == full
    # Nothing is ever taken back: every intermediate stream is a prefix of the full text,
    # so no replacement char appears that the full decode does not have at that place.
    assert all(full.startswith(p) for p in prefixes)


def _reference_cut(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    for end in range(1, len(text) + 1):
        matches = [s for s in stop if text[:end].endswith(s)]
        if matches:
            return text[: end - max(len(s) for s in matches)], True
    return text, False


_stop_text = st.text(alphabet=st.sampled_from("ab€"), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    text=st.text(alphabet=st.sampled_from("ab€"), max_size=14),
    stop=st.lists(_stop_text, min_size=1, max_size=3).map(tuple),
)
def test_stream_with_stop_strings_is_the_cut_full_decode(
    data: st.DataObject, text: str, stop: tuple[str, ...]
) -> None:
    pieces = data.draw(_split(text.encode()))
    steps = data.draw(st.lists(st.integers(1, 3), max_size=len(pieces)))
    expected, should_stop = _reference_cut(text, stop)
    emitted, prefixes, stopped = _run(b"", pieces, stop, steps)
    assert (emitted, stopped) == (expected, should_stop)
    assert all(expected.startswith(p) for p in prefixes)
