"""One file into articles: its suffix picks the reader (SUPPORTED_SUFFIXES), its path
relative to the corpus folder is its id, and a file that cannot be used at all raises
UnreadableFileError naming it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from ..errors import QAError
from ..types import Article
from . import limits
from .cache import read_document
from .clean import cut
from .decode import load_text
from .document import DocumentError, Progress
from .html import parse_page
from .parsed import BadInput, FileRead, Found, from_document
from .records import parse_json, parse_jsonl
from .text import parse_plain

# Every suffix the reader reads; uploads accept these too (ui/upload.py).
SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl", ".pdf", ".docx")
# Read in a process of their own (qa/read/sandbox.py), for up to minutes each.
DOCUMENT_SUFFIXES = (".pdf", ".docx")


class UnreadableFileError(QAError, ValueError):
    """A whole file cannot be read; the message names the file and says why."""


def read_file(path: Path, root: Path, seconds: float | None = None) -> list[Article]:
    """Read the articles of one file; ids and sources are relative to `root`. A PDF or .docx
    is read for at most `seconds` (an upload's reading budget; default MAX_READ_SECONDS).

    Raises UnreadableFileError when the whole file is unusable. Bad records inside a
    JSON/JSONL file are logged and left out (read_corpus lists them in `skipped`).
    """
    result = read_path(Path(path), Path(root), seconds=seconds)
    logger = logging.getLogger("qa.reader")
    for line in result.skipped:
        logger.warning("skipped %s", line)
    for line in result.notes:
        logger.warning("note: %s", line)
    return [item.article for item in result.found]


def relative(path: Path, root: Path) -> str:
    """Path relative to the corpus folder with "/" separators: the article id of a file."""
    return os.path.relpath(path, root).replace(os.sep, "/")


def read_path(
    path: Path, root: Path, progress: Progress | None = None, seconds: float | None = None
) -> FileRead:
    rel = relative(path, root)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFileError(
            f"{rel}: unsupported file type {suffix or '(none)'}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    note = ""
    try:
        if suffix in DOCUMENT_SUFFIXES:
            read = _read_document(path, rel, progress, seconds)
        else:
            text, note = load_text(path)
            read = _parse_text(text, rel, suffix)
    except OSError as exc:
        raise UnreadableFileError(f"{rel}: cannot read ({exc.strerror or exc})") from exc
    except (RecursionError, AssertionError) as exc:
        # Deeply nested JSON, or markup that html.parser gives up on.
        raise UnreadableFileError(f"{rel}: cannot parse ({type(exc).__name__})") from exc
    except (BadInput, DocumentError) as exc:
        raise UnreadableFileError(f"{rel}: {exc}") from exc
    if note:
        read = dataclasses.replace(read, notes=(f"{rel}: {note}", *read.notes))
    return read


def _parse_text(text: str, rel: str, suffix: str) -> FileRead:
    if suffix == ".jsonl":
        return parse_jsonl(text, rel)
    if suffix == ".json":
        return parse_json(text, rel)
    if suffix in (".html", ".htm"):
        return parse_page(text, rel)
    title, paragraphs = parse_plain(text, Path(rel).stem, markdown=suffix == ".md")
    article = Article(rel, cut(title, limits.MAX_TITLE_CHARS), paragraphs, rel)
    return FileRead((Found(article, rel),))


def _read_document(
    path: Path, rel: str, progress: Progress | None, seconds: float | None
) -> FileRead:
    """A PDF or .docx as one article; a PDF's paragraphs keep their pages (PAGES_KEY)."""
    return from_document(read_document(path, progress, rel, seconds), rel)
