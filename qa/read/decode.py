"""A text file's bytes into clean text: byte-order marks, UTF-8, GB18030 or Big5 (whichever
reads as Chinese), a few bad bytes shown as U+FFFD with a note, binary files refused.
"""

from __future__ import annotations

import codecs
import itertools
from pathlib import Path

from .clean import CONTROL, SURROGATE, clean
from .parsed import BadInput

# Above this share of control characters a decodable file is still binary data, not text.
_MAX_CONTROL_SHARE = 0.1
# Enough characters to tell GB18030 from Big5 without scoring a whole large file.
_SCORE_SAMPLE = 2000
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)
_NOT_TEXT = "not text in UTF-8, GB18030 or Big5"
# A file with a few bytes that no encoding reads is kept, those bytes shown as U+FFFD: at most
# this share of its characters, else it is not text.
_MAX_BAD_SHARE = 0.05


def load_text(path: Path) -> tuple[str, str]:
    """The file's text, decoded and cleaned, and a note on replaced bytes ("" if none).

    Raises BadInput for binary or empty files.
    """
    text, note = _decode_noting(path.read_bytes())
    if "\x00" in text:
        raise BadInput("binary file (contains NUL bytes)")
    controls = len(CONTROL.findall(text)) - text.count("\r")
    if controls > _MAX_CONTROL_SHARE * len(text):
        raise BadInput("binary file (mostly control characters)")
    text = clean(text)
    if not text.strip():
        raise BadInput("empty")
    return text, note


def decode(data: bytes) -> str:
    """Decode by byte-order mark, else UTF-8, else whichever of GB18030/Big5 reads as Chinese."""
    return _decode_noting(data)[0]


def _decode_noting(data: bytes) -> tuple[str, str]:
    """`decode`, and a note when a few bytes no encoding reads were replaced by U+FFFD.

    Without a byte-order mark the candidates are strict GB18030 and Big5 readings and, when
    only a few of its bytes are bad, the UTF-8 reading with those replaced; the reading with
    the most common Chinese characters wins (on a tie, the first listed).
    """
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            text, bad = _lenient(data, codec)
            if not _few(bad, text):
                raise BadInput(f"not valid {name} despite its byte-order mark")
            return text, _replaced(bad, name)
    utf8, bad = _lenient(data, "utf-8")
    if not bad:
        return utf8, ""
    candidates = []
    # cp950 is the Windows flavour of Big5 with a few more characters (e.g. the euro sign).
    for codec in ("gb18030", "big5", "cp950"):
        try:
            candidates.append((data.decode(codec), ""))
        except UnicodeDecodeError:
            continue
    if _few(bad, utf8):
        candidates.append((utf8, _replaced(bad, "UTF-8")))
    if not candidates:
        for codec, name in (("gb18030", "GB18030"), ("big5", "Big5")):
            text, bad = _lenient(data, codec)
            if _few(bad, text):
                candidates.append((text, _replaced(bad, name)))
    if not candidates:
        raise BadInput(_NOT_TEXT)
    # Big5 bytes nearly always decode as (nonsense) GB18030 too, so pick the reading with
    # more common Chinese characters.
    return max(candidates, key=lambda c: _common_share(c[0]))


def _lenient(data: bytes, codec: str) -> tuple[str, int]:
    """`data` decoded with each undecodable sequence as U+FFFD, and how many there were."""
    marked = data.decode(codec, _MARK_ERRORS)  # a lone surrogate per error: countable
    bad = len(SURROGATE.findall(marked))
    return (SURROGATE.sub("\ufffd", marked) if bad else marked), bad


_MARK_ERRORS = "qa-reader-mark"
codecs.register_error(_MARK_ERRORS, lambda exc: ("\udfff", exc.end))


def _few(bad: int, text: str) -> bool:
    return bad <= _MAX_BAD_SHARE * len(text)


def _replaced(bad: int, name: str) -> str:
    if not bad:
        return ""
    return f"{bad} byte(s) that are not valid {name} shown as \ufffd; the rest was read"


def _common_share(text: str) -> float:
    """Share of non-ASCII characters that are common hanzi or CJK punctuation."""
    sample = [
        c
        for c in itertools.islice((c for c in text if c > "\x7f"), _SCORE_SAMPLE)
        if not c.isspace()
    ]
    if not sample:
        return 1.0
    return sum(_is_common_cjk(c) for c in sample) / len(sample)


def _is_common_cjk(char: str) -> bool:
    """CJK/fullwidth punctuation, or a hanzi of GB2312 level 1 or Big5 level 1."""
    if "\u3000" <= char <= "\u303f" or "\uff00" <= char <= "\uffef" or "\u2000" <= char <= "\u206f":
        return True
    if not "\u4e00" <= char <= "\u9fff":
        return False
    for codec, low, high in (
        ("gb2312", b"\xb0\xa1", b"\xd7\xfe"),
        ("big5", b"\xa4\x40", b"\xc6\x7e"),
    ):
        try:
            if low <= char.encode(codec) <= high:
                return True
        except UnicodeEncodeError:
            continue
    return False
