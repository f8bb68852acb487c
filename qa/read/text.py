"""Plain text (.txt) and Markdown (.md): a title (a heading, or a short first line), then
paragraphs separated by blank lines, or one per line when there is no blank line.

Plain string operations and regexes that cannot backtrack: one uploaded file must not
stall a server (tests/app/test_hostile.py times the known bad cases).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from .parsed import BadInput

_MD_LINE_MARKUP = re.compile(r"[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+][ \t]+)+")
_MD_RULE = re.compile(r"[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*")
_SENTENCE_END = "。！？!?；;，,…."
_CLOSERS = "\"'”’」』）)》】"
_TITLE_MAX_CHARS = 40


def parse_plain(text: str, fallback_title: str, markdown: bool) -> tuple[str, tuple[str, ...]]:
    lines = text.split("\n")
    title, body = _split_title(lines, fallback_title)
    if markdown:
        body = [_strip_markdown(line) for line in body]
    paragraphs = split_paragraphs(body)
    if not paragraphs:
        raise BadInput("only a title, no text")
    return title, paragraphs


def _split_title(lines: list[str], fallback: str) -> tuple[str, list[str]]:
    """(title, body lines): the first line is the title if it is a heading or looks like one."""
    first = next(i for i, line in enumerate(lines) if line.strip())
    line, rest = lines[first].strip(), lines[first + 1 :]
    heading = _heading(line)
    if heading:
        return heading, rest
    if _looks_like_title(line) and any(other.strip() for other in rest):
        return line, rest
    return fallback, lines[first:]


def _heading(line: str) -> str:
    """The text of a markdown heading ("## 标题 ##" -> "标题"); "" if `line` is none.

    Plain string operations: the regex this replaces backtracked quadratically on a
    heading with a long run of spaces (40,000 of them froze a server for 37 s).
    """
    hashes = len(line) - len(line.lstrip("#"))
    if not 1 <= hashes <= 6:
        return ""
    text = line[hashes:].strip(" \t")
    closed = text.rstrip("#")  # an optional closing run of #, after a space
    if closed != text and (not closed or closed[-1] in " \t"):
        text = closed.rstrip(" \t")
    return text


def _looks_like_title(line: str) -> bool:
    """Short and not ending like a sentence (closing quotes ignored: 他说：“好。”)."""
    stem = line.rstrip(_CLOSERS)
    return len(line) <= _TITLE_MAX_CHARS and bool(stem) and stem[-1] not in _SENTENCE_END


def _strip_markdown(line: str) -> str:
    """Drop heading, quote and list marks at line start; a horizontal rule becomes blank."""
    if _MD_RULE.fullmatch(line):
        return ""
    marks = _MD_LINE_MARKUP.match(line)
    return line[marks.end() :] if marks else line


def split_paragraphs(lines: Sequence[str]) -> tuple[str, ...]:
    """Blocks separated by blank lines, or one paragraph per line if there is no blank line."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return ()
    inner = lines[filled[0] : filled[-1] + 1]
    if len(filled) == len(inner):
        blocks = [[line] for line in inner]
    else:
        blocks = [list(group) for full, group in itertools.groupby(inner, key=_is_filled) if full]
    paragraphs = ("\n".join(block).strip() for block in blocks)
    return tuple(p for p in paragraphs if p)


def _is_filled(line: str) -> bool:
    return bool(line.strip())
