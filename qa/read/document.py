"""What reading a PDF, Word .docx or web page gives (`Document`), why one is refused
(`DocumentError`), and the checks every reader of them makes first.

A Document crosses from the reading process as JSON (`to_json`, `from_json`) and is kept
in the cache (qa/read/cache.py) the same way; qa/read/parsed.py turns it into an Article.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import limits

ROW_SEPARATOR = " | "  # between the cells of a table row (one row per line)

# (what, done, total), like qa.build's progress: ("reading report.pdf", 40, 120).
Progress = Callable[[str, int, int], None]


class DocumentError(ValueError):
    """A document cannot be read; the message says why (the reader adds the file name)."""


class NotRemembered(DocumentError):
    """Refused for the time or memory it took, or a crash of the reading process: not
    remembered in the cache, another machine or a later build may do better."""


class TooSlow(NotRemembered):
    """Refused for the time it took."""


@dataclass(frozen=True)
class Document:
    """What a PDF, .docx or web page gave: its paragraphs in reading order and, for a PDF,
    the page each paragraph starts on (`pages[i]` for `paragraphs[i]`, 1-based)."""

    title: str
    paragraphs: tuple[str, ...]
    pages: tuple[int, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()  # ("date", ...), ("url", ...)
    notes: tuple[str, ...] = ()  # things the reader should know (pages without text)


def check_size(path: Path) -> bytes:
    refuse_large(path)
    return path.read_bytes()


def refuse_large(path: Path) -> None:
    size = path.stat().st_size
    if size > limits.MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"{size / 1024 / 1024:.0f} MB, more than the "
            f"{limits.MAX_DOCUMENT_BYTES // 1024 // 1024} MB read: split it"
        )


def to_json(doc: Document) -> dict:
    return {k: getattr(doc, k) for k in Document.__dataclass_fields__}


def from_json(kept: object) -> Document | None:
    """The Document a cache entry (or the reading process) holds; None unless every field
    has exactly the type a Document's has: a damaged entry is read again, never shown."""

    def strings(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    if not isinstance(kept, dict) or set(kept) != set(Document.__dataclass_fields__):
        return None
    pages, metadata = kept["pages"], kept["metadata"]
    if not (
        isinstance(kept["title"], str)
        and strings(kept["paragraphs"])
        and strings(kept["notes"])
        and isinstance(pages, list)
        and all(type(n) is int for n in pages)
        and (not pages or len(pages) == len(kept["paragraphs"]))
        and isinstance(metadata, list)
        and all(strings(pair) and len(pair) == 2 for pair in metadata)
    ):
        return None
    return Document(
        kept["title"],
        tuple(kept["paragraphs"]),
        tuple(pages),
        tuple((k, v) for k, v in metadata),
        tuple(kept["notes"]),
    )
