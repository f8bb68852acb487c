"""What each format's parser gives back: the articles of one file (`FileRead`) with where
each was read (`Found`), or `BadInput` saying why a file or record cannot be used.
`from_document` makes the one article of a PDF, .docx or web page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..types import PAGES_KEY, Article, page_runs
from . import limits
from .clean import clean, cut, one_line
from .document import Document


@dataclass(frozen=True)
class Found:
    """An article with where it was read ("a.txt", "b.jsonl line 3"), for skip messages.

    `record` is True for a JSON/JSONL record, whose id comes from the file's content.
    """

    article: Article
    where: str
    record: bool = False


@dataclass(frozen=True)
class FileRead:
    """What one file gave: its articles in file order, its bad records, its notes."""

    found: tuple[Found, ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


class BadInput(ValueError):
    """Raised by the parsers with a reason only; callers add the file or record name."""


def from_document(doc: Document, rel: str) -> FileRead:
    """One article from a Document (qa/read/document.py), its text cleaned like every other
    file's."""
    kept = [(i, clean(p).strip()) for i, p in enumerate(doc.paragraphs)]
    kept = [(i, p) for i, p in kept if p]
    if not kept:
        raise BadInput("no text")
    metadata = tuple((k, cut(one_line(v), limits.MAX_METADATA_CHARS)) for k, v in doc.metadata)
    if doc.pages:
        metadata += ((PAGES_KEY, page_runs(tuple(doc.pages[i] for i, _ in kept))),)
    title = cut(one_line(doc.title), limits.MAX_TITLE_CHARS) or Path(rel).stem
    article = Article(rel, title, tuple(p for _, p in kept), rel, metadata)
    return FileRead((Found(article, rel),), notes=tuple(f"{rel}: {n}" for n in doc.notes))
