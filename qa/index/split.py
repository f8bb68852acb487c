"""Split paragraphs into sentences, and long paragraphs into passages of whole sentences."""

from __future__ import annotations

import re

from ..types import IndexedPassage, Span

# Ideographs, kana and hangul: a "." right after one of these is a full stop typed
# half-width, while a "." after ASCII or a digit is more likely a URL, version or number.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"

# Closing quotes and brackets that belong to the sentence their end mark closes.
_CLOSERS = "”’」』）)】》\"'\\]〉»›〕〗〙〛｝}＂＇"

_SENTENCE_END = re.compile(
    r"(?P<end>(?:"
    r"[。！？!?；;…⋯｡‼⁇⁈⁉]"
    r"|\.{3,}"  # "..." used as an ellipsis
    r"|(?<![0-9])\.(?=\s|\Z)"  # "3.5" and "v1.2" stay whole; "end. Next" splits
    rf"|(?<=[{_CJK}])\.(?![A-Za-z0-9])"  # "完成了.然后" splits, "报告.pdf" does not
    r")+)"
    rf"[{_CLOSERS}]*"
    r"|[\n\r\u2028\u2029\x85]"
)

# "?id=3" in a URL is a query string, not a question.
_QUERY_STRING = re.compile(r"[A-Za-z0-9_%.\-]+=")

_ABBREVIATIONS = frozenset({"Mr", "Mrs", "Ms", "Dr", "Prof", "St", "vs", "cf"})

# Where an over-long sentence is best cut: after a pause mark or at a space.
_SOFT_BREAKS = "，,、：:；; \t\u3000"


def split_sentences(text: str) -> tuple[Span, ...]:
    """Sentence spans over `text`, in order, trimmed of whitespace; gaps are whitespace only."""
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if _is_false_end(text, match):
            continue
        span = _trimmed(text, start, match.end())
        if span is not None:
            spans.append(span)
        start = match.end()
    span = _trimmed(text, start, len(text))
    if span is not None:
        spans.append(span)
    return tuple(spans)


def sentence_texts(text: str, spans: tuple[Span, ...]) -> tuple[str, ...]:
    """The text of each span."""
    return tuple(text[span.start : span.end] for span in spans)


def split_passages(
    article_id: str, paragraph: int, text: str, max_chars: int
) -> tuple[IndexedPassage, ...]:
    """Passages of at most `max_chars` characters made of whole sentences of one paragraph.

    A paragraph that fits is one passage covering all of `text`; a sentence longer than
    `max_chars` is cut into pieces that each count as a sentence.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}.")
    sentences = split_sentences(text)
    if not sentences:
        return ()
    if len(text) <= max_chars:
        return (IndexedPassage(article_id, paragraph, 0, len(text), text, sentences),)

    pieces = [piece for span in sentences for piece in _cut_long(text, span, max_chars)]
    passages = []
    window = [pieces[0]]
    for piece in pieces[1:]:
        if piece.end - window[0].start <= max_chars:
            window.append(piece)
        else:
            passages.append(_passage(article_id, paragraph, text, window))
            window = [piece]
    passages.append(_passage(article_id, paragraph, text, window))
    return tuple(passages)


def _is_false_end(text: str, match: re.Match[str]) -> bool:
    """True for a matched end mark that is really part of an abbreviation or a URL."""
    end = match.group("end")
    if end == ".":
        return _is_abbreviation(text, match.start())
    if end == "?":
        before = text[match.start() - 1 : match.start()]
        url_like = before.isascii() and bool(before.strip())
        return url_like and bool(_QUERY_STRING.match(text, match.end()))
    return False


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the ASCII word before `dot` is one letter ("e.g.", "U.S.") or a title."""
    start = dot
    while start > 0 and dot - start <= 4 and _is_ascii_letter(text[start - 1]):
        start -= 1
    if start > 0 and _is_ascii_letter(text[start - 1]):
        return False  # a longer word: "the end."
    word = text[start:dot]
    return len(word) == 1 or word in _ABBREVIATIONS


def _is_ascii_letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


def _trimmed(text: str, start: int, end: int) -> Span | None:
    """The span of text[start:end] without surrounding whitespace, or None if nothing is left."""
    segment = text[start:end]
    stripped = segment.strip()
    if not stripped:
        return None
    first = start + len(segment) - len(segment.lstrip())
    return Span(first, first + len(stripped))


def _cut_long(text: str, span: Span, max_chars: int) -> list[Span]:
    """Cut a sentence into trimmed pieces of at most `max_chars`, preferring soft breaks.

    Taking the last break in each window keeps this linear: the next window then starts
    in a break-free stretch, so any two consecutive pieces span at least `max_chars`.
    """
    pieces = []
    pos = span.start
    while span.end - pos > max_chars:
        limit = pos + max_chars
        # a break at `pos` itself would leave a lone comma as a piece
        best = max(text.rfind(char, pos + 1, limit) for char in _SOFT_BREAKS)
        cut = best + 1 if best >= 0 else limit
        piece = _trimmed(text, pos, cut)
        if piece is not None:  # text[pos] is never whitespace, so this always holds
            pieces.append(piece)
        pos = cut
        while text[pos].isspace():  # the sentence ends on a non-space, so this stops
            pos += 1
    pieces.append(Span(pos, span.end))
    return pieces


def _passage(article_id: str, paragraph: int, text: str, window: list[Span]) -> IndexedPassage:
    start, end = window[0].start, window[-1].end
    return IndexedPassage(article_id, paragraph, start, end, text[start:end], tuple(window))
