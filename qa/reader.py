"""Read a folder of articles (.txt, .md, .html, .json, .jsonl) into `Article` values.

Paragraph strings are what answers cite by character offset, so text is kept exactly as
written apart from: newline normalisation, removal of control characters, stripping each
paragraph's surrounding whitespace, light markdown markup removal and HTML tag removal.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from qa.errors import EmptyCorpusError, QAError
from qa.types import Article

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")

# Every C0/C1 control character except tab and newline (\r is gone after newline normalisation).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_HEADING = re.compile(r"#{1,6}[ \t]*(.*?)(?:[ \t]+#+)?[ \t]*")
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


class UnreadableFileError(QAError, ValueError):
    """A whole file cannot be read; the message names the file and says why."""


@dataclass(frozen=True)
class Corpus:
    """All readable articles (sorted by id) and one line per file or record left out."""

    articles: tuple[Article, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Found:
    """An article with where it was read ("a.txt", "b.jsonl line 3"), for skip messages."""

    article: Article
    where: str


@dataclass(frozen=True)
class _FileRead:
    """What one file gave: its articles in file order and its bad records."""

    found: tuple[_Found, ...]
    skipped: tuple[str, ...] = ()


class _BadInput(ValueError):
    """Raised by the parsers with a reason only; callers add the file or record name."""


def read_corpus(root: str | Path) -> Corpus:
    """Read every supported file under `root`; bad files and records go to `skipped`.

    Raises EmptyCorpusError only when `root` is missing or not a folder.
    """
    root = Path(root)
    if not root.exists():
        raise EmptyCorpusError(
            f"Corpus folder {root} does not exist: create it and put .txt, .md, .html, "
            ".json or .jsonl articles in it, or pass the folder that holds them."
        )
    if not root.is_dir():
        raise EmptyCorpusError(
            f"Corpus path {root} is a file, not a folder: pass the folder that holds the articles."
        )
    skipped: list[str] = []
    articles: list[Article] = []
    first_seen: dict[str, str] = {}  # article id -> where it was first read
    for path in _corpus_files(root, skipped):
        try:
            result = _read_path(path, root)
        except UnreadableFileError as exc:
            skipped.append(str(exc))
            continue
        skipped.extend(result.skipped)
        for item in result.found:
            art_id = item.article.id
            if art_id in first_seen:
                skipped.append(
                    f"{item.where}: duplicate id {art_id!r} (kept the one in {first_seen[art_id]})"
                )
                continue
            first_seen[art_id] = item.where
            articles.append(item.article)
    logger = logging.getLogger("qa")
    for line in skipped:
        logger.warning("skipped %s", line)
    return Corpus(tuple(sorted(articles, key=lambda a: a.id)), tuple(skipped))


def read_file(path: Path, root: Path) -> list[Article]:
    """Read the articles of one file; ids and sources are relative to `root`.

    Raises UnreadableFileError when the whole file is unusable. Bad records inside a
    JSON/JSONL file are logged and left out (read_corpus lists them in `skipped`).
    """
    result = _read_path(Path(path), Path(root))
    logger = logging.getLogger("qa")
    for line in result.skipped:
        logger.warning("skipped %s", line)
    return [item.article for item in result.found]


# --- walking the folder -------------------------------------------------------------------


def _corpus_files(root: Path, skipped: list[str]) -> list[Path]:
    """Supported, non-hidden files under `root`, sorted by their path relative to it."""
    files = [
        Path(folder, name)
        for folder, names in _walk(root, skipped)
        for name in names
        if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES
    ]
    # Only regular files (or links to them): reading a FIFO or device would block or never end.
    files = [path for path in files if path.is_file() or not path.exists()]
    return sorted(files, key=lambda p: _relative(p, root))


def _walk(root: Path, skipped: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Yield (folder, file names), visiting each real folder once.

    Symlinked folders that point inside the corpus are not followed (their files are read
    under their real path anyway) and a real folder reached twice is pruned, so symlink
    loops cannot hang the walk; symlinks to folders outside the corpus are followed.
    """
    root_real = os.path.realpath(root)
    visited = {root_real}

    def report(error: OSError) -> None:
        skipped.append(
            f"{_relative(Path(error.filename or root), root)}: cannot list folder "
            f"({error.strerror or error})"
        )

    for folder, dirnames, filenames in os.walk(root, followlinks=True, onerror=report):
        kept = []
        for name in sorted(dirnames):
            full = os.path.join(folder, name)
            real = os.path.realpath(full)
            inside = real == root_real or real.startswith(root_real + os.sep)
            if name.startswith(".") or real in visited or (os.path.islink(full) and inside):
                continue
            visited.add(real)
            kept.append(name)
        dirnames[:] = kept  # os.walk only descends into what is left here
        yield folder, filenames


def _relative(path: Path, root: Path) -> str:
    """Path relative to the corpus folder with "/" separators: the article id of a file."""
    return os.path.relpath(path, root).replace(os.sep, "/")


# --- one file -----------------------------------------------------------------------------


def _read_path(path: Path, root: Path) -> _FileRead:
    rel = _relative(path, root)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFileError(
            f"{rel}: unsupported file type {suffix or '(none)'}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        text = _load_text(path)
        if suffix == ".jsonl":
            return _parse_jsonl(text, rel)
        if suffix == ".json":
            return _parse_json(text, rel)
        if suffix in (".html", ".htm"):
            title, paragraphs = _parse_html(text, Path(rel).stem)
        else:
            title, paragraphs = _parse_plain(text, Path(rel).stem, markdown=suffix == ".md")
    except OSError as exc:
        raise UnreadableFileError(f"{rel}: cannot read ({exc.strerror or exc})") from exc
    except (RecursionError, AssertionError) as exc:
        # Deeply nested JSON, or markup that html.parser gives up on.
        raise UnreadableFileError(f"{rel}: cannot parse ({type(exc).__name__})") from exc
    except _BadInput as exc:
        raise UnreadableFileError(f"{rel}: {exc}") from exc
    return _FileRead((_Found(Article(rel, title, paragraphs, rel), rel),))


def _load_text(path: Path) -> str:
    """The file's text, decoded and cleaned; raises _BadInput for binary or empty files."""
    text = _decode(path.read_bytes())
    if "\x00" in text:
        raise _BadInput("binary file (contains NUL bytes)")
    controls = len(_CONTROL.findall(text)) - text.count("\r")
    if controls > _MAX_CONTROL_SHARE * len(text):
        raise _BadInput("binary file (mostly control characters)")
    text = _clean(text)
    if not text.strip():
        raise _BadInput("empty")
    return text


def _decode(data: bytes) -> str:
    """Decode by byte-order mark, else UTF-8, else whichever of GB18030/Big5 reads as Chinese."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                raise _BadInput(f"not valid {name} despite its byte-order mark") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    candidates = []
    # cp950 is the Windows flavour of Big5 with a few more characters (e.g. the euro sign).
    for codec in ("gb18030", "big5", "cp950"):
        try:
            candidates.append(data.decode(codec))
        except UnicodeDecodeError:
            continue
    if not candidates:
        raise _BadInput(_NOT_TEXT)
    # Big5 bytes nearly always decode as (nonsense) GB18030 too, so pick the reading with
    # more common Chinese characters; on a tie the codec listed first wins.
    return max(candidates, key=_common_share)


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
    """Normalise newlines to \\n and drop control characters other than \\n and \\t."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


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
    heading = _HEADING.fullmatch(line)
    if heading and heading.group(1):
        return heading.group(1), rest
    if _looks_like_title(line) and any(other.strip() for other in rest):
        return line, rest
    return fallback, lines[first:]


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


def _parse_html(text: str, fallback_title: str) -> tuple[str, tuple[str, ...]]:
    extractor = _HtmlText()
    extractor.feed(text)
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
            found.append(_Found(_record_article(obj, rel, number), where))
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
            found.append(_Found(_record_article(_json_line(line), rel, number), where))
        except _BadInput as exc:
            skipped.append(f"{where}: {exc}")
    return _file_read(found, skipped)


def _json_line(line: str) -> object:
    try:
        return json.loads(line, strict=False)
    except json.JSONDecodeError:
        raise _BadInput("not valid JSON") from None


def _file_read(found: list[_Found], skipped: list[str]) -> _FileRead:
    if not found and not skipped:
        raise _BadInput("no articles in it")
    return _FileRead(tuple(found), tuple(skipped))


def _record_article(obj: object, rel: str, number: int) -> Article:
    if not isinstance(obj, dict):
        raise _BadInput("not a JSON object")
    art_id = _record_id(obj.get("id"), f"{rel}#{number}")
    title = obj.get("title")
    title = _one_line(str(title)) if title is not None else ""
    metadata = tuple(
        (key, _one_line(str(obj[key]))) for key in _METADATA_KEYS if obj.get(key) not in (None, "")
    )
    return Article(art_id, title or art_id, _record_paragraphs(obj), rel, metadata)


def _record_id(value: object, fallback: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return fallback
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _BadInput("'id' must be a string or a number")
    return _one_line(str(value))


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
