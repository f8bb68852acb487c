"""A PDF page's text lines (`Line`) into paragraphs: running headers and page numbers
dropped, two columns read one after the other, table rows kept together, lines broken inside
a sentence joined, each paragraph with the page it starts on (qa/read/pdf.py reads the lines).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass

from .document import ROW_SEPARATOR

_SENTENCE_END = "。！？!?；;…"
_CLOSERS = "\"'”’」』）)》】"
_PAGE_NUMBER = re.compile(
    r"[-—–\s]*(?:第\s*)?\d{1,4}\s*(?:页)?\s*(?:(?:/|of|共)\s*\d{1,4}\s*页?)?[-—–\s]*"
    r"|(?:page|p\.)\s*\d{1,4}(?:\s*of\s*\d{1,4})?",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class Line:
    """One line of text on a page, in PDF points (y grows upwards)."""

    page: int
    x0: float
    x1: float
    y0: float  # the baseline side
    y1: float
    size: float  # the font size of its characters
    text: str
    row: bool = False  # cells of a table row, joined by ROW_SEPARATOR


def drop_running_lines(pages: list[list[Line]], heights: list[float]) -> list[list[Line]]:
    """Pages without their running headers, footers and page numbers.

    A line in the top or bottom tenth of a page is dropped when it is a page number, or when
    (its digits aside) it recurs there on at least half of the pages (and two of them).
    """

    def key(line: Line) -> str:
        return _DIGITS.sub("#", line.text.replace(" ", ""))

    def margin(line: Line, height: float) -> bool:
        return line.y0 > 0.9 * height or line.y1 < 0.1 * height

    seen = Counter()
    for page, height in zip(pages, heights, strict=True):
        seen.update({key(line) for line in page if margin(line, height)})
    recurring = {k for k, n in seen.items() if n >= 2 and n >= len(pages) / 2}
    return [
        [
            line
            for line in page
            if not (
                margin(line, height)
                and (key(line) in recurring or _PAGE_NUMBER.fullmatch(line.text))
            )
        ]
        for page, height in zip(pages, heights, strict=True)
    ]


def reading_order(lines: list[Line]) -> list[list[Line]]:
    """The page as flows (a column, or a full-width stretch) in reading order, each a list
    of lines top to bottom, the cells of one table row joined into one line."""
    gutter = _gutter(lines)
    ordered = sorted(lines, key=lambda line: (-line.y0, line.x0))
    if gutter is None:
        return [_rows(ordered)]
    flows: list[list[Line]] = []
    left: list[Line] = []
    right: list[Line] = []
    across: list[Line] = []  # a title or a table over both columns

    def flush(*parts: list[Line]) -> None:
        flows.extend(_rows(part) for part in parts if part)
        for part in parts:
            part.clear()

    for line in ordered:
        if line.x1 <= gutter:
            flush(across)
            left.append(line)
        elif line.x0 >= gutter:
            flush(across)
            right.append(line)
        else:
            flush(left, right)
            across.append(line)
    flush(across, left, right)
    return flows


def _gutter(lines: list[Line]) -> float | None:
    """The x of the gap between two columns of text, or None for a one-column page.

    Two columns: a vertical line in the middle of the text that few lines cross, with at
    least three lines of text on each side, and those lines long (table cells are short).
    """
    if len(lines) < 6:
        return None
    lo, hi = min(line.x0 for line in lines), max(line.x1 for line in lines)
    best, crossing = None, len(lines) + 1
    steps = 40
    for i in range(int(0.3 * steps), int(0.7 * steps) + 1):
        x = lo + (hi - lo) * i / steps
        n = sum(line.x0 < x < line.x1 for line in lines)
        if n < crossing:
            best, crossing = x, n
    if best is None or crossing > 0.2 * len(lines):
        return None
    sides = [
        [line for line in lines if line.x1 <= best],
        [line for line in lines if line.x0 >= best],
    ]
    if any(len(side) < 3 for side in sides):
        return None
    if any(statistics.median(len(line.text) for line in side) < 8 for side in sides):
        return None
    # Move the cut to the middle of the empty band, away from the nearest text.
    return (max(line.x1 for line in sides[0]) + min(line.x0 for line in sides[1])) / 2


def _rows(lines: list[Line]) -> list[Line]:
    """`lines` (top to bottom) with the pieces of one baseline joined: a table row."""
    out: list[Line] = []
    for line in sorted(lines, key=lambda line: (-line.y0, line.x0)):
        prev = out[-1] if out else None
        if prev is not None and abs(prev.y0 - line.y0) < 0.3 * max(prev.size, line.size):
            out[-1] = Line(
                prev.page,
                min(prev.x0, line.x0),
                max(prev.x1, line.x1),
                min(prev.y0, line.y0),
                max(prev.y1, line.y1),
                max(prev.size, line.size),
                prev.text + ROW_SEPARATOR + line.text,
                row=True,
            )
        else:
            out.append(line)
    return out


def paragraphs_of(pages: list[list[list[Line]]]) -> tuple[list[str], list[int], str]:
    """Paragraph texts, the page each starts on, and the first paragraph again if it is a
    heading (set larger than the body text, short), from every page's flows.

    A new paragraph starts where a line is indented, set in another size, follows a wide
    gap, or follows a short line that ended a sentence; table rows make one paragraph, one
    row per line. The last paragraph of a column or page goes on in the next one unless it
    ended a sentence or the next starts indented.
    """
    flows = [flow for page in pages for flow in page if flow]
    all_lines = [line for flow in flows for line in flow]
    body = _body_size(all_lines)
    pitch = _pitch(flows, body)
    texts: list[list[str]] = []
    starts: list[int] = []
    prev: Line | None = None
    for flow in flows:
        left = min((line.x0 for line in flow if not line.row), default=flow[0].x0)
        right = max((line.x1 for line in flow if not line.row), default=flow[0].x1)
        for i, line in enumerate(flow):
            first = i == 0
            if prev is None or _starts_paragraph(prev, line, first, left, right, pitch, body):
                texts.append([line.text])
                starts.append(line.page)
            elif line.row or prev.row:
                texts[-1].append("\n" + line.text)
            else:
                texts[-1].append(_joiner(texts[-1][-1], line.text) + line.text)
            prev = line
    paragraphs = ["".join(parts).strip() for parts in texts]
    first = flows[0][0] if flows else None
    heading = ""
    if first is not None and first.size > 1.15 * body and len(paragraphs[0]) <= 100:
        heading = paragraphs[0]
    return paragraphs, starts, heading


def _starts_paragraph(
    prev: Line, line: Line, first: bool, left: float, right: float, pitch: float, body: float
) -> bool:
    size = max(line.size, 1.0)
    if line.row != prev.row or abs(line.size - prev.size) > 0.15 * size:
        return True
    if line.row:  # the next row of the same table, unless far below
        return not first and prev.y0 - line.y0 > 2.5 * pitch
    if line.x0 > left + 0.8 * size:  # an indented first line
        return True
    ended = prev.text.rstrip(_CLOSERS)[-1:] in _SENTENCE_END
    if first:  # the top of a column or page: goes on unless the sentence ended
        return ended
    if prev.y0 - line.y0 > 1.6 * pitch * max(size / body, 1.0):  # a heading's are wider apart
        return True
    return ended and prev.x1 < right - 1.5 * size


def _joiner(before: str, after: str) -> str:
    """What goes between two lines of one paragraph: nothing in Chinese, a space between words."""
    if _ASCII_WORD.match(before[-1:]) and _ASCII_WORD.match(after[:1]):
        return " "
    return ""


def _body_size(lines: list[Line]) -> float:
    sizes = Counter()
    for line in lines:
        sizes[round(line.size)] += len(line.text)
    return float(sizes.most_common(1)[0][0]) if sizes else 10.0


def _pitch(flows: list[list[Line]], body: float) -> float:
    """The usual distance between the baselines of two lines of body text."""
    gaps = [
        a.y0 - b.y0
        for flow in flows
        for a, b in zip(flow, flow[1:], strict=False)
        if abs(a.size - body) < 1 and abs(b.size - body) < 1 and a.y0 > b.y0
    ]
    return statistics.median(gaps) if gaps else 1.2 * body
