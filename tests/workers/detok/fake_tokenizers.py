"""Tokenizers with just `decode`, shaped like the real ones the detokenizer meets."""

from __future__ import annotations


class FakeByteTokenizer:
    """ids 0..255 are bytes; records the length of every decode call."""

    def __init__(self) -> None:
        self.decoded_lengths: list[int] = []

    def decode(self, ids: list[int]) -> str:
        self.decoded_lengths.append(len(ids))
        return bytes(ids).decode("utf-8", errors="replace")


class FakePieceTokenizer:
    """Each id is a byte string piece, which may cut a UTF-8 character anywhere."""

    def __init__(self, pieces: list[bytes] | None = None) -> None:
        self.pieces: list[bytes] = list(pieces or [])

    def encode_pieces(self, pieces: list[bytes]) -> list[int]:
        """Ids for `pieces`, adding each new piece to the vocabulary."""
        ids = []
        for piece in pieces:
            if piece not in self.pieces:
                self.pieces.append(piece)
            ids.append(self.pieces.index(piece))
        return ids

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")


class FakeSentencePieceTokenizer:
    """Pieces carry their leading space; decode drops the space that starts the string."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def decode(self, ids: list[int]) -> str:
        text = "".join(self.pieces[i] for i in ids)
        return text[1:] if text.startswith(" ") else text
