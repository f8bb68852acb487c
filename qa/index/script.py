"""Simplified and traditional Chinese: a question in either script finds articles in the other.

Measured by converting 200 CMRC dev questions to traditional and asking them against the
simplified index: found 0.22 of them as they were, 0.99 after conversion (docs/reliability.md).
"""

from __future__ import annotations

import functools


@functools.cache
def _converter(config: str):
    from opencc import OpenCC

    return OpenCC(config)


def match_script(question: str, known: dict[str, int] | set[str]) -> str:
    """The question with each character the articles never use replaced by its form in the
    other script, where the articles do use that form.

    Characters the articles use stay as they are, so a rare character that both scripts
    share (黄霑 must not become 黄沾) is never "corrected".
    """
    chars = list(question)
    for config in ("t2s", "s2t"):
        converted = _converter(config).convert(question)
        if len(converted) != len(question):
            continue  # phrase conversions that change length: no safe position mapping
        for i, (old, new) in enumerate(zip(question, converted, strict=True)):
            if old != new and chars[i] == old and old not in known and new in known:
                chars[i] = new
    return "".join(chars)


@functools.lru_cache(maxsize=8192)
def simplified(text: str) -> str:
    """`text` in simplified characters, position for position (else unchanged).

    The answerer's rules (question words, answer types, back-references) are written in
    simplified characters; traditional questions and articles are read through this.
    Remembered: the converter is pure Python, and one answer reads each of its candidate
    sentences several times (it was a third of an answer's time, and held the GIL).
    """
    if text.isascii():
        return text
    converted = _converter("t2s").convert(text)
    return converted if len(converted) == len(text) else text
