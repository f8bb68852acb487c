"""Read a folder of articles (.txt, .md, .html, .json, .jsonl, .pdf, .docx) into `Article`s.

Paragraph strings are what answers cite by character offset, so text is kept exactly as
written apart from: newline normalisation, removal of control characters, stripping each
paragraph's surrounding whitespace, light markdown markup removal and HTML tag removal.
PDF, Word and the main text of web pages come through qa/read/documents.py.

Everything here runs in time linear in the file's size (a regex that backtracks, or Python's
html.parser on malformed markup, would let one uploaded file stall a server for minutes):
tests/test_hostile.py times the known bad cases.
"""

from __future__ import annotations

import codecs
import dataclasses
import itertools
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ..errors import EmptyCorpusError, QAError
from ..types import PAGES_KEY, Article, page_runs
from .documents import Document, DocumentError, Progress, read_document, read_html

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl", ".pdf", ".docx")

# Every C0/C1 control character except tab and newline (\r is gone after newline normalisation).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Lone surrogates: what JSON "\ud800" or a file name that is not UTF-8 decodes to. They
# cannot be written as UTF-8, so none may reach an Article.
_SURROGATE = re.compile("[\ud800-\udfff]")
_MD_LINE_MARKUP = re.compile(r"[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+][ \t]+)+")
_MD_RULE = re.compile(r"[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*")
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_SENTENCE_END = "。！？!?；;，,…."
_CLOSERS = "\"'”’」』）)》】"
_TITLE_MAX_CHARS = 40
# Above this share of control characters a decodable file is still binary data, not text.
_MAX_CONTROL_SHARE = 0.1
# Enough characters to tell GB18030 from Big5 without scoring a whole large file.
_SCORE_SAMPLE = 2000
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)
_NOT_TEXT = "not text in UTF-8, GB18030 or Big5"
# A file with a few bytes that no encoding reads is kept, those bytes shown as U+FFFD: at most
# this share of its characters, else it is not text.
_MAX_BAD_SHARE = 0.05
# Longer JSON ids are refused: an id is shown with every citation and stored as a key.
MAX_ID_CHARS = 1000
# Longer titles and metadata values are cut (ending in "…"): they are shown with every
# citation, and a Milvus index stores them in one field of at most 64 KB.
MAX_TITLE_CHARS = 200
MAX_METADATA_CHARS = 1000


class UnreadableFileError(QAError, ValueError):
    """A whole file cannot be read; the message names the file and says why."""


@dataclass(frozen=True)
class Corpus:
    """All readable articles (sorted by id), one line per file or record left out, and one
    line per file or record read with a change worth knowing (bytes replaced, id renamed)."""

    articles: tuple[Article, ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Found:
    """An article with where it was read ("a.txt", "b.jsonl line 3"), for skip messages.

    `record` is True for a JSON/JSONL record, whose id comes from the file's content.
    """

    article: Article
    where: str
    record: bool = False


@dataclass(frozen=True)
class _FileRead:
    """What one file gave: its articles in file order, its bad records, its notes."""

    found: tuple[_Found, ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


class _BadInput(ValueError):
    """Raised by the parsers with a reason only; callers add the file or record name."""


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
    found: list[_Found] = []
    files = _corpus_files(root, skipped)
    for path in files:
        try:
            result = _read_path(path, root, progress)
        except UnreadableFileError as exc:
            skipped.append(str(exc))
            continue
        skipped.extend(result.skipped)
        notes.extend(result.notes)
        found.extend(result.found)
    articles = _unique_ids(found, {_relative(p, root) for p in files}, skipped, notes)
    logger = logging.getLogger("qa.reader")
    for line in skipped:
        logger.warning("skipped %s", line)
    for line in notes:
        logger.warning("note: %s", line)
    return Corpus(tuple(sorted(articles, key=lambda a: a.id)), tuple(skipped), tuple(notes))


def _unique_ids(
    found: list[_Found], paths: set[str], skipped: list[str], notes: list[str]
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


def _cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` - 1 characters and "…"."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _shown(text: str, limit: int = 120) -> str:
    """`text` cut for a message."""
    return _cut(text, limit)


def read_file(path: Path, root: Path, seconds: float | None = None) -> list[Article]:
    """Read the articles of one file; ids and sources are relative to `root`. A PDF or .docx
    is read for at most `seconds` (an upload's reading budget; default MAX_READ_SECONDS).

    Raises UnreadableFileError when the whole file is unusable. Bad records inside a
    JSON/JSONL file are logged and left out (read_corpus lists them in `skipped`).
    """
    result = _read_path(Path(path), Path(root), seconds=seconds)
    logger = logging.getLogger("qa.reader")
    for line in result.skipped:
        logger.warning("skipped %s", line)
    for line in result.notes:
        logger.warning("note: %s", line)
    return [item.article for item in result.found]


# --- walking the folder -------------------------------------------------------------------


def _corpus_files(root: Path, skipped: list[str]) -> list[Path]:
    """Supported, non-hidden files under `root`, sorted by their path relative to it.

    A file whose name is not UTF-8 (what unzipping a Chinese zip made on Windows gives)
    is left out with a message: its name cannot be an article id.
    """
    files = []
    for folder, names in _walk(root, skipped):
        for name in names:
            if name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            path = Path(folder, name)
            if _SURROGATE.search(name):
                skipped.append(_not_utf8(_relative(path, root)))
                continue
            files.append(path)
    # Only regular files (or links to them): reading a FIFO or device would block or never end.
    files = [path for path in files if path.is_file() or not path.exists()]
    return sorted(files, key=lambda p: _relative(p, root))


def _not_utf8(rel: str) -> str:
    """The skip message for a path whose name is not UTF-8, with a guess at what it says."""
    raw = os.fsencode(rel)
    shown = raw.decode("utf-8", "backslashreplace")
    guess = ""
    for codec in ("gb18030", "big5"):
        try:
            guess = f" (in {codec.upper()} it reads {raw.decode(codec)!r})"
            break
        except UnicodeDecodeError:
            continue
    return (
        f"{shown}: the file name is not UTF-8{guess}; rename it "
        "(e.g. unzip -O gbk, or convmv -f gbk -t utf-8)"
    )


def _walk(root: Path, skipped: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Yield (folder, file names), visiting each real folder once.

    Symlinked folders that point inside the corpus are not followed (their files are read
    under their real path anyway) and a real folder reached twice is pruned, so symlink
    loops cannot hang the walk; symlinks to folders outside the corpus are followed.
    """
    root_real = os.path.realpath(root)
    visited = {root_real}
    if is_index_folder(root):
        skipped.append(f"{root}: an index folder (written by qa build), not articles")
        return

    def report(error: OSError) -> None:
        rel = _relative(Path(error.filename or root), root)
        skipped.append(
            f"{_SURROGATE.sub('?', rel)}: cannot list folder ({error.strerror or error})"
        )

    for folder, dirnames, filenames in os.walk(root, followlinks=True, onerror=report):
        kept = []
        for name in sorted(dirnames):
            full = os.path.join(folder, name)
            real = os.path.realpath(full)
            inside = real == root_real or real.startswith(root_real + os.sep)
            if name.startswith(".") or real in visited or (os.path.islink(full) and inside):
                continue
            if _SURROGATE.search(name):
                skipped.append(_not_utf8(_relative(Path(full), root)) + "; its folder is not read")
                continue
            if is_index_folder(full):
                rel = _relative(Path(full), root)
                skipped.append(f"{rel}: an index folder (written by qa build), not articles")
                continue
            visited.add(real)
            kept.append(name)
        dirnames[:] = kept  # os.walk only descends into what is left here
        yield folder, filenames


def is_index_folder(path: str | Path) -> bool:
    """Does `path` hold a folder index (qa/stores/folder/: manifest.json + data-*)? Its files
    are not articles, even when the index was built inside the corpus folder."""
    try:
        return os.path.isfile(os.path.join(path, "manifest.json")) and any(
            name.startswith("data-") for name in os.listdir(path)
        )
    except OSError:
        return False


def _relative(path: Path, root: Path) -> str:
    """Path relative to the corpus folder with "/" separators: the article id of a file."""
    return os.path.relpath(path, root).replace(os.sep, "/")


# --- one file -----------------------------------------------------------------------------


def _read_path(
    path: Path, root: Path, progress: Progress | None = None, seconds: float | None = None
) -> _FileRead:
    rel = _relative(path, root)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFileError(
            f"{rel}: unsupported file type {suffix or '(none)'}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    note = ""
    try:
        if suffix in (".pdf", ".docx"):
            read = _read_document(path, rel, progress, seconds)
        else:
            text, note = _load_text(path)
            read = _parse_text(text, rel, suffix)
    except OSError as exc:
        raise UnreadableFileError(f"{rel}: cannot read ({exc.strerror or exc})") from exc
    except (RecursionError, AssertionError) as exc:
        # Deeply nested JSON, or markup that html.parser gives up on.
        raise UnreadableFileError(f"{rel}: cannot parse ({type(exc).__name__})") from exc
    except (_BadInput, DocumentError) as exc:
        raise UnreadableFileError(f"{rel}: {exc}") from exc
    if note:
        read = dataclasses.replace(read, notes=(f"{rel}: {note}", *read.notes))
    return read


def _parse_text(text: str, rel: str, suffix: str) -> _FileRead:
    if suffix == ".jsonl":
        return _parse_jsonl(text, rel)
    if suffix == ".json":
        return _parse_json(text, rel)
    if suffix in (".html", ".htm"):
        return _parse_page(text, rel)
    title, paragraphs = _parse_plain(text, Path(rel).stem, markdown=suffix == ".md")
    article = Article(rel, _cut(title, MAX_TITLE_CHARS), paragraphs, rel)
    return _FileRead((_Found(article, rel),))


def _read_document(
    path: Path, rel: str, progress: Progress | None, seconds: float | None
) -> _FileRead:
    """A PDF or .docx as one article; a PDF's paragraphs keep their pages (PAGES_KEY)."""
    return _document_read(read_document(path, progress, rel, seconds), rel)


def _document_read(doc: Document, rel: str) -> _FileRead:
    """One article from a qa.documents.Document, its text cleaned like every other file's."""
    kept = [(i, _clean(p).strip()) for i, p in enumerate(doc.paragraphs)]
    kept = [(i, p) for i, p in kept if p]
    if not kept:
        raise _BadInput("no text")
    metadata = tuple((k, _cut(_one_line(v), MAX_METADATA_CHARS)) for k, v in doc.metadata)
    if doc.pages:
        metadata += ((PAGES_KEY, page_runs(tuple(doc.pages[i] for i, _ in kept))),)
    title = _cut(_one_line(doc.title), MAX_TITLE_CHARS) or Path(rel).stem
    article = Article(rel, title, tuple(p for _, p in kept), rel, metadata)
    return _FileRead((_Found(article, rel),), notes=tuple(f"{rel}: {n}" for n in doc.notes))


def _load_text(path: Path) -> tuple[str, str]:
    """The file's text, decoded and cleaned, and a note on replaced bytes ("" if none).

    Raises _BadInput for binary or empty files.
    """
    text, note = _decode_noting(path.read_bytes())
    if "\x00" in text:
        raise _BadInput("binary file (contains NUL bytes)")
    controls = len(_CONTROL.findall(text)) - text.count("\r")
    if controls > _MAX_CONTROL_SHARE * len(text):
        raise _BadInput("binary file (mostly control characters)")
    text = _clean(text)
    if not text.strip():
        raise _BadInput("empty")
    return text, note


def _decode(data: bytes) -> str:
    """Decode by byte-order mark, else UTF-8, else whichever of GB18030/Big5 reads as Chinese."""
    return _decode_noting(data)[0]


def _decode_noting(data: bytes) -> tuple[str, str]:
    """`_decode`, and a note when a few bytes no encoding reads were replaced by U+FFFD.

    Without a byte-order mark the candidates are strict GB18030 and Big5 readings and, when
    only a few of its bytes are bad, the UTF-8 reading with those replaced; the reading with
    the most common Chinese characters wins (on a tie, the first listed).
    """
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            text, bad = _lenient(data, codec)
            if not _few(bad, text):
                raise _BadInput(f"not valid {name} despite its byte-order mark")
            return text, _replaced(bad, name)
    utf8, bad = _lenient(data, "utf-8")
    if not bad:
        return utf8, ""
    candidates = []
    # cp950 is the Windows flavour of Big5 with a few more characters (e.g. the euro sign).
    for codec in ("gb18030", "big5", "cp950"):
        try:
            candidates.append((data.decode(codec), ""))
        except UnicodeDecodeError:
            continue
    if _few(bad, utf8):
        candidates.append((utf8, _replaced(bad, "UTF-8")))
    if not candidates:
        for codec, name in (("gb18030", "GB18030"), ("big5", "Big5")):
            text, bad = _lenient(data, codec)
            if _few(bad, text):
                candidates.append((text, _replaced(bad, name)))
    if not candidates:
        raise _BadInput(_NOT_TEXT)
    # Big5 bytes nearly always decode as (nonsense) GB18030 too, so pick the reading with
    # more common Chinese characters.
    return max(candidates, key=lambda c: _common_share(c[0]))


def _lenient(data: bytes, codec: str) -> tuple[str, int]:
    """`data` decoded with each undecodable sequence as U+FFFD, and how many there were."""
    marked = data.decode(codec, _MARK_ERRORS)  # a lone surrogate per error: countable
    bad = len(_SURROGATE.findall(marked))
    return (_SURROGATE.sub("\ufffd", marked) if bad else marked), bad


_MARK_ERRORS = "qa-reader-mark"
codecs.register_error(_MARK_ERRORS, lambda exc: ("\udfff", exc.end))


def _few(bad: int, text: str) -> bool:
    return bad <= _MAX_BAD_SHARE * len(text)


def _replaced(bad: int, name: str) -> str:
    if not bad:
        return ""
    return f"{bad} byte(s) that are not valid {name} shown as \ufffd; the rest was read"


def _common_share(text: str) -> float:
    """Share of non-ASCII characters that are common hanzi or CJK punctuation."""
    sample = [
        c
        for c in itertools.islice((c for c in text if c > "\x7f"), _SCORE_SAMPLE)
        if not c.isspace()
    ]
    if not sample:
        return 1.0
    return sum(_is_common_cjk(c) for c in sample) / len(sample)


def _is_common_cjk(char: str) -> bool:
    """CJK/fullwidth punctuation, or a hanzi of GB2312 level 1 or Big5 level 1."""
    if "\u3000" <= char <= "\u303f" or "\uff00" <= char <= "\uffef" or "\u2000" <= char <= "\u206f":
        return True
    if not "\u4e00" <= char <= "\u9fff":
        return False
    for codec, low, high in (
        ("gb2312", b"\xb0\xa1", b"\xd7\xfe"),
        ("big5", b"\xa4\x40", b"\xc6\x7e"),
    ):
        try:
            if low <= char.encode(codec) <= high:
                return True
        except UnicodeEncodeError:
            continue
    return False


def _clean(text: str) -> str:
    """Normalise newlines to \\n, drop control characters other than \\n and \\t, and
    replace lone surrogates (from JSON "\\ud800") by U+FFFD."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _SURROGATE.sub("\ufffd", text)


def _one_line(text: str) -> str:
    """A cleaned title or id: single line, no surrounding whitespace."""
    return " ".join(_clean(text).split("\n")).strip()


# --- plain text and markdown --------------------------------------------------------------


def _parse_plain(text: str, fallback_title: str, markdown: bool) -> tuple[str, tuple[str, ...]]:
    lines = text.split("\n")
    title, body = _split_title(lines, fallback_title)
    if markdown:
        body = [_strip_markdown(line) for line in body]
    paragraphs = _split_paragraphs(body)
    if not paragraphs:
        raise _BadInput("only a title, no text")
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


def _split_paragraphs(lines: Sequence[str]) -> tuple[str, ...]:
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


# --- HTML ---------------------------------------------------------------------------------

_HTML_DROPPED = frozenset(
    ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "template", "svg")
)
_HTML_BLOCKS = frozenset(
    ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "section", "article", "main")
    + ("blockquote", "pre", "tr", "ul", "ol", "table")
)


# Where a tag ends: at ">", unless inside an attribute value quoted after "=" (HTML5 rules).
_TAG_STOP = re.compile(r"""[>]|=[ \t\n\r\f]*["']""")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9:_.-]*")
_RAW_TEXT = ("script", "style")  # their content is not markup, and never shown
_RAW_END = {name: re.compile(f"</{name}", re.IGNORECASE) for name in _RAW_TEXT}


def _simple_markup(html: str) -> str:
    """`html` as plain tags (`<p>`, `</p>`, `<br/>`) and text only, in one linear pass.

    Python's html.parser is quadratic (or worse) on malformed markup such as "<a" repeated
    (CVE-2025-6069): 80 KB took 6 s, 1 MB would take about 15 minutes. Here every "<" is
    looked at once, each tag's extent is found by `str.find` and one small regex, and
    html.parser then only ever sees tags without attributes. Comments, declarations,
    processing instructions, <script> and <style> elements are dropped (none is shown); a
    construct that never ends drops the rest of the file, as browsers do; a "<" that starts
    no tag is text.
    """
    out: list[str] = []
    pos, n = 0, len(html)
    while pos < n:
        lt = html.find("<", pos)
        if lt < 0:
            out.append(html[pos:])
            break
        out.append(html[pos:lt])
        nxt = html[lt + 1 : lt + 2]
        if html.startswith("<!--", lt):
            if html.startswith(("<!-->", "<!--->"), lt):  # empty comments
                pos = html.find(">", lt) + 1
                continue
            end = html.find("-->", lt + 4)
            pos = n if end < 0 else end + 3
        elif nxt in ("!", "?") or (nxt == "/" and not _TAG_NAME.match(html, lt + 2)):
            end = html.find(">", lt)  # doctype, <![CDATA[...]]>, bogus comments, "</>"
            pos = n if end < 0 else end + 1
        elif _TAG_NAME.match(html, lt + 1 + (nxt == "/")):
            closing = nxt == "/"
            name = _TAG_NAME.match(html, lt + 1 + closing).group().lower()
            end = _tag_end(html, lt)
            if end < 0:
                break  # a tag cut off by the end of the file: dropped with the rest
            self_closing = html[end - 2] == "/" and not closing
            pos = end
            if name in _RAW_TEXT and not closing:
                found = None if self_closing else _RAW_END[name].search(html, end)
                if found is None and not self_closing:
                    break
                if found is not None:
                    after = _tag_end(html, found.start())
                    pos = n if after < 0 else after
                continue
            out.append(f"<{'/' if closing else ''}{name}{'/' if self_closing else ''}>")
        else:
            out.append("&lt;")  # "a < b", "<3": text
            pos = lt + 1
    return "".join(out)


def _tag_end(html: str, start: int) -> int:
    """Index just past the ">" that ends the tag at `start`, or -1 if the file ends first."""
    pos = start + 1
    while True:
        stop = _TAG_STOP.search(html, pos)
        if stop is None:
            return -1
        if stop.group() == ">":
            return stop.end()
        close = html.find(stop.group()[-1], stop.end())  # the end of a quoted value
        if close < 0:
            return -1
        pos = close + 1


def _parse_page(text: str, rel: str) -> _FileRead:
    """A web page's main text by trafilatura (qa/read/documents.py); a page where it finds none
    (a fragment, a bare list of paragraphs) is read whole by the extractor below.

    trafilatura parses with lxml (libxml2), linear in the input: the "<a" * 40,000 page of the
    security review takes milliseconds (benchmarks/documents.py).
    """
    try:
        doc = read_html(text)
    except Exception:  # noqa: BLE001 - a third-party parser on any page: the fallback reads it
        logging.getLogger("qa.reader").debug("%s: trafilatura failed", rel, exc_info=True)
        doc = None
    if doc is not None:
        return _document_read(doc, rel)
    title, paragraphs = _parse_html(text, Path(rel).stem)
    return _FileRead((_Found(Article(rel, _cut(title, MAX_TITLE_CHARS), paragraphs, rel), rel),))


def _parse_html(text: str, fallback_title: str) -> tuple[str, tuple[str, ...]]:
    extractor = _HtmlText()
    extractor.feed(_simple_markup(text))
    extractor.close()
    paragraphs = _split_paragraphs(_clean(extractor.body()).split("\n"))
    if not paragraphs:
        raise _BadInput("no visible text")
    return extractor.title() or fallback_title, paragraphs


class _HtmlText(HTMLParser):
    """Collects visible text with a blank line at every block boundary.

    Text inside <article>/<main> is also collected apart, and preferred when there is any,
    because the rest of a page is mostly menus and links.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._dropped = 0  # depth inside elements whose text is never shown
        self._pre = 0
        self._main = 0
        self._in_title = False
        self._in_h1 = False
        self._title: list[str] = []
        self._h1: list[str] = []
        self._all: list[str] = []
        self._main_parts: list[str] = []

    def body(self) -> str:
        main = "".join(self._main_parts)
        return main if main.strip() else "".join(self._all)

    def title(self) -> str:
        return _one_line(_HTML_SPACE.sub(" ", "".join(self._title or self._h1)))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_DROPPED:
            self._dropped += 1
        if self._dropped:
            return
        if tag == "title":
            self._in_title = True
        if tag in _HTML_BLOCKS:
            self._emit("\n\n")
        if tag in ("article", "main"):
            self._main += 1
        if tag == "pre":
            self._pre += 1
        if tag == "h1" and not self._h1:
            self._in_h1 = True
        if tag in ("td", "th"):
            self._emit(" ")  # keep table cells of one row apart

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_DROPPED:
            self._dropped = max(0, self._dropped - 1)
            return
        if self._dropped:
            return
        if tag == "title":
            self._in_title = False
        if tag in _HTML_BLOCKS:
            self._emit("\n\n")
        if tag in ("article", "main"):
            self._main = max(0, self._main - 1)
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        if self._in_title:
            self._title.append(data)
            return
        if self._in_h1:
            self._h1.append(data)
        # Outside <pre> source line breaks and indentation are not shown by a browser.
        self._emit(data if self._pre else _HTML_SPACE.sub(" ", data))

    def _emit(self, text: str) -> None:
        self._all.append(text)
        if self._main:
            self._main_parts.append(text)


# --- JSON and JSONL -----------------------------------------------------------------------

_METADATA_KEYS = ("date", "source", "url")


def _parse_json(text: str, rel: str) -> _FileRead:
    """A list of objects, {"articles": [...]}, or one object; items are numbered from 1."""
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise _BadInput(f"not valid JSON (line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise _BadInput(f"not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if isinstance(data, dict):
        data = [data]  # a single article
    if not isinstance(data, list):
        raise _BadInput("not a JSON object or list of objects")
    found, skipped = [], []
    for number, obj in enumerate(data, 1):
        where = f"{rel} item {number}"
        try:
            found.append(_Found(_record_article(obj, rel, number), where, record=True))
        except _BadInput as exc:
            skipped.append(f"{where}: {exc}")
    return _file_read(found, skipped)


def _parse_jsonl(text: str, rel: str) -> _FileRead:
    """One object per line; blank lines are ignored, line numbers count from 1."""
    found, skipped = [], []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{rel} line {number}"
        try:
            found.append(_Found(_record_article(_json_line(line), rel, number), where, record=True))
        except _BadInput as exc:
            skipped.append(f"{where}: {exc}")
    return _file_read(found, skipped)


def _json_line(line: str) -> object:
    try:
        return json.loads(line, strict=False)
    except json.JSONDecodeError:
        raise _BadInput("not valid JSON") from None
    except RecursionError:
        raise _BadInput("not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise _BadInput(f"not valid JSON ({exc})") from None


def _file_read(found: list[_Found], skipped: list[str]) -> _FileRead:
    if not found and not skipped:
        raise _BadInput("no articles in it")
    return _FileRead(tuple(found), tuple(skipped))


def _record_article(obj: object, rel: str, number: int) -> Article:
    if not isinstance(obj, dict):
        raise _BadInput("not a JSON object")
    art_id = _record_id(obj.get("id"), f"{rel}#{number}")
    title = obj.get("title")
    title = _cut(_one_line(str(title)), MAX_TITLE_CHARS) if title is not None else ""
    metadata = tuple(
        (key, _cut(_one_line(str(obj[key])), MAX_METADATA_CHARS))
        for key in _METADATA_KEYS
        if obj.get(key) not in (None, "")
    )
    return Article(art_id, title or art_id, _record_paragraphs(obj), rel, metadata)


def _record_id(value: object, fallback: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return fallback
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _BadInput("'id' must be a string or a number")
    art_id = _one_line(str(value))
    if not art_id:
        return fallback
    if len(art_id) > MAX_ID_CHARS:
        raise _BadInput(f"'id' is longer than {MAX_ID_CHARS} characters")
    return art_id


def _record_paragraphs(obj: dict) -> tuple[str, ...]:
    """`paragraphs` (list order kept, empty strings dropped) or else `text` split like a .txt.

    Dropping empty strings shifts later paragraph numbers: paragraph i of the article is the
    i-th non-empty string of the list, not item i.
    """
    listed = obj.get("paragraphs")
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise _BadInput("'paragraphs' must be a list of strings")
        paragraphs = tuple(p for p in (_clean(p).strip() for p in listed) if p)
    else:
        text = obj.get("text")
        if text is not None and not isinstance(text, str):
            raise _BadInput("'text' must be a string")
        paragraphs = _split_paragraphs(_clean(text or "").split("\n"))
    if not paragraphs:
        raise _BadInput("no text (needs a non-empty 'text' string or 'paragraphs' list)")
    return paragraphs
