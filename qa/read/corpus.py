"""A folder of articles into a `Corpus`: every supported file read (qa/read/file.py), bad
files and records listed in `skipped`, and one id per article so that no file can take over
another file's article.

A build passes what the last build read (`known`: its `Corpus.files`, kept in the index as
read.json): a file whose size, times and inode are what they were then is not read again
(at a million passages reading every file took 18 s of each rebuild); its articles are
listed in `Corpus.unchanged`, by id, and the index keeps what it stored for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
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
    line per file or record read with a change worth knowing (bytes replaced, id renamed).

    `unchanged`: ids of the articles of files not read again because they are as `known`
    said (read_corpus), with their number of paragraphs; they are not in `articles`.
    `files`: what to remember of each file read or unchanged, for the next build.
    """

    articles: tuple[Article, ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    unchanged: dict[str, int] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)


def reading_version() -> str:
    """A digest of the reading code and the libraries it reads with: what a file gave is
    remembered only while they are the same (a change to a reader, a cleaning rule or a
    limit, or an upgrade of pdfminer.six, python-docx or trafilatura reads files again)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import cache

    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(cache._versions().encode())  # the document cache's key: pdfminer, docx
    try:
        digest.update(f"trafilatura {version('trafilatura')}".encode())
    except PackageNotFoundError:
        digest.update(b"trafilatura -")
    return digest.hexdigest()


def file_stamp(path: Path) -> list[int] | None:
    """What says a file is unchanged: size, modification and change times (ns), inode."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def read_corpus(
    root: str | Path, progress: Progress | None = None, known: dict[str, dict] | None = None
) -> Corpus:
    """Read every supported file under `root`; bad files and records go to `skipped`.

    `progress` hears ("reading <file>", page, pages) while a long PDF is read.
    `known`: `Corpus.files` of an earlier read of this folder; a file whose stamp is the
    same is not read again, unless the ids of its articles would come out otherwise now
    (another file took one of them): then every file is read.
    Raises EmptyCorpusError only when `root` is missing or not a folder.
    """
    if known:
        corpus = _read(Path(root), progress, known)
        if corpus is not None:
            return corpus
    return _read(Path(root), progress, None)


def _read(root: Path, progress: Progress | None, known: dict[str, dict] | None) -> Corpus | None:
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
    remembered: dict[str, dict] = {}
    items_of: dict[str, tuple[Found, ...]] = {}  # of each file remembered
    stand_ins: dict[int, tuple[str, int]] = {}  # id() of a stand-in Found -> (id, paragraphs)
    for path in files:
        rel = relative(path, root)
        stamp = file_stamp(path)
        entry = (known or {}).get(rel)
        if stamp is not None and _usable(entry) and entry["stamp"] == stamp:
            # Unchanged: its articles stand in by id for the id rules below.
            items = []
            for raw, record, where, final, paragraphs in entry["found"]:
                item = Found(Article(raw, raw, (), rel), where, record)
                stand_ins[id(item)] = (final, paragraphs)
                items.append(item)
            found.extend(items)
            items_of[rel] = tuple(items)
            skipped.extend(entry["skipped"])
            notes.extend(entry["notes"])
            remembered[rel] = entry
            continue
        try:
            result = read_path(path, root, progress)
        except UnreadableFileError as exc:
            skipped.append(str(exc))
            continue
        skipped.extend(result.skipped)
        notes.extend(result.notes)
        found.extend(result.found)
        if stamp is not None and stamp == file_stamp(path):  # not written while read
            remembered[rel] = {
                "stamp": stamp,
                "found": [
                    [f.article.id, f.record, f.where, None, len(f.article.paragraphs)]
                    for f in result.found
                ],
                "skipped": list(result.skipped),
                "notes": list(result.notes),
            }
            items_of[rel] = result.found
    kept: list[Found] = []
    articles = _unique_ids(found, {relative(p, root) for p in files}, skipped, notes, kept)
    final_of = {id(item): article.id for item, article in zip(kept, articles, strict=True)}
    unchanged: dict[str, int] = {}
    for item in found:
        if id(item) in stand_ins:
            final, paragraphs = stand_ins[id(item)]
            if final_of.get(id(item)) != final:
                return None  # its id would be another now: read every file
            if final is not None:  # else a record its file repeats (the first one is kept)
                unchanged[final] = paragraphs
    for rel, entry in remembered.items():
        # The id each article has in the index, what the next build checks against.
        for row, item in zip(entry["found"], items_of[rel], strict=True):
            row[3] = final_of.get(id(item))
    articles = [a for a, item in zip(articles, kept, strict=True) if id(item) not in stand_ins]
    logger = logging.getLogger("qa.reader")
    for line in skipped:
        logger.warning("skipped %s", line)
    for line in notes:
        logger.warning("note: %s", line)
    return Corpus(
        tuple(sorted(articles, key=lambda a: a.id)),
        tuple(skipped),
        tuple(notes),
        unchanged,
        remembered,
    )


def _usable(entry: object) -> bool:
    """Whether a remembered file's entry has the shape this code writes (a hand-edited or
    older index's entry is not used: the file is read)."""
    try:
        return (
            isinstance(entry["stamp"], list)
            and all(isinstance(line, str) for line in entry["skipped"] + entry["notes"])
            and all(
                isinstance(raw, str)
                and isinstance(record, bool)
                and isinstance(where, str)
                and (final is None or isinstance(final, str))
                and isinstance(paragraphs, int)
                for raw, record, where, final, paragraphs in entry["found"]
            )
        )
    except (TypeError, KeyError, ValueError):
        return False


def _unique_ids(
    found: list[Found], paths: set[str], skipped: list[str], notes: list[str], kept: list[Found]
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
        kept.append(item)
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
