"""The cleaning every text gets, whatever its format: newlines normalised, control
characters dropped, lone surrogates shown as U+FFFD (`clean`); titles and ids on one line
(`one_line`); long values cut (`cut`).
"""

from __future__ import annotations

import re

# Every C0/C1 control character except tab and newline (\r is gone after newline normalisation).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Lone surrogates: what JSON "\ud800" or a file name that is not UTF-8 decodes to. They
# cannot be written as UTF-8, so none may reach an Article.
SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """Normalise newlines to \\n, drop control characters other than \\n and \\t, and
    replace lone surrogates (from JSON "\\ud800") by U+FFFD."""
    text = CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return SURROGATE.sub("\ufffd", text)


def one_line(text: str) -> str:
    """A cleaned title or id: single line, no surrounding whitespace."""
    return " ".join(clean(text).split("\n")).strip()


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` - 1 characters and "…"."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
