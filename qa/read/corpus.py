"""A folder of articles into a `Corpus`: every supported file read (qa/read/file.py), bad
files and records listed in `skipped`, and one id per article so that no file can take over
another file's article.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import EmptyCorpusError
from ..types import Article
from .clean import cut
from .document import Progress
from .file import UnreadableFileError, read_path, relative
from .folder import corpus_files
from .parsed import Found


@dataclass(frozen=True)
class Corpus:
    """All readable articles (sorted by id), one line per file or record left out, and one
    line per file or record read with a change worth knowing (bytes replaced, id renamed)."""

    articles: tuple[Article, ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def read_corpus(root: str | Path, progress: Progress | None = None) -> Corpus:
    """Read every supported file under `root`; bad files and records go to `skipped`.

    `progress` hears ("reading <file>", page, pages) while a long PDF is read.
    Raises EmptyCorpusError only when `root` is missing or not a folder.
    """
    root = Path(root)
    if not root.exists():
        raise EmptyCorpusError(
            f"Corpus folder {root} does not exist: create it and put .txt, .md, .html, "
            ".json, .jsonl, .pdf or .docx articles in it, or pass the folder that holds them."
        )
    if not root.is_dir():
        raise EmptyCorpusError(
            f"Corpus path {root} is a file, not a folder: pass the folder that holds the articles."
        )
    skipped: list[str] = []
    notes: list[str] = []
    found: list[Found] = []
    files = corpus_files(root, skipped)
    for path in files:
        try:
            result = read_path(path, root, progress)
        except UnreadableFileError as exc:
            skipped.append(str(exc))
            continue
        skipped.extend(result.skipped)
        notes.extend(result.notes)
        found.extend(result.found)
    articles = _unique_ids(found, {relative(p, root) for p in files}, skipped, notes)
    logger = logging.getLogger("qa.reader")
    for line in skipped:
        logger.warning("skipped %s", line)
    for line in notes:
        logger.warning("note: %s", line)
    return Corpus(tuple(sorted(articles, key=lambda a: a.id)), tuple(skipped), tuple(notes))


def _unique_ids(
    found: list[Found], paths: set[str], skipped: list[str], notes: list[str]
) -> list[Article]:
    """The articles with one id each, so that no file can take over another file's article.

    A file's id is its path and stays so. A JSON record's id is its own `id` unless that is
    also the path of a corpus file, lies under one ("a.jsonl/x"), or is used by records of
    another file: then it becomes "<its file>/<id>" (say "0.json/x.txt"). No file path can
    equal that (its file is a file, not a folder) and neither can another file's record, so
    the articles that collided stay apart, each under an id naming its own file. Records of
    one file that share an id keep the first of them.
    """
    files_of: dict[str, set[str]] = {}
    for item in found:
        if item.record:
            files_of.setdefault(item.article.id, set()).add(item.article.source)
    depth = max((p.count("/") for p in paths), default=0)
    articles: list[Article] = []
    first_seen: dict[str, str] = {}  # article id -> where it was first read
    # Files first (their ids are their paths), then records in corpus order.
    for item in sorted(found, key=lambda i: i.record):
        article = item.article
        if item.record and (
            len(files_of[article.id]) > 1 or _under_a_path(article.id, paths, depth)
        ):
            scoped = f"{article.source}/{article.id}"
            notes.append(
                f"{item.where}: id {_shown(article.id)!r} is also the id of another "
                f"article; indexed as {_shown(scoped)!r}"
            )
            title = scoped if article.title == article.id else article.title
            article = dataclasses.replace(article, id=scoped, title=title)
        if article.id in first_seen:
            skipped.append(
                f"{item.where}: duplicate id {_shown(article.id)!r} "
                f"(kept the one in {first_seen[article.id]})"
            )
            continue
        first_seen[article.id] = item.where
        articles.append(article)
    return articles


def _under_a_path(art_id: str, paths: set[str], depth: int) -> bool:
    """True when `art_id` is a corpus file's path or starts with one and a "/"."""
    if art_id in paths:
        return True
    end = -1
    for _ in range(depth + 1):  # a path has at most `depth` slashes: look no further
        end = art_id.find("/", end + 1)
        if end < 0:
            return False
        if art_id[:end] in paths:
            return True
    return False


def _shown(text: str, limit: int = 120) -> str:
    """`text` cut for a message."""
    return cut(text, limit)
