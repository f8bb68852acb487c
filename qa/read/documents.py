"""Documents that are not plain text: PDF (pdfminer.six), Word .docx (python-docx) and the main
text of saved web pages (trafilatura). qa/read/corpus.py turns what they give into `Article`s.

A PDF's paragraphs are rebuilt from its layout: running headers and page numbers dropped,
two columns read one after the other, lines broken inside a sentence joined, and every
paragraph remembers the page it starts on. Its characters are read as the text means them
(radicals a font shares with ideographs as those ideographs, `normalise_lines`), and a glyph
without a character is shown as U+FFFD, never left out of the word or number it is in.
benchmarks/documents.py measured the PDF libraries and the HTML extractors this module chose
(docs/articles.md).

The libraries are imported inside the functions that use them: `import qa` stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import re
import secrets
import stat
import statistics
import subprocess
import sys
import threading
import time
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

# A corpus file larger than this is not opened (the upload limit is far lower).
MAX_DOCUMENT_BYTES = 200 * 1024 * 1024
MAX_PAGES = 2000  # a longer PDF is a book or a scan batch: split it
# The parts of a .docx unpacked: a few MB of XML for a long report; a zip bomb is far more.
MAX_UNPACKED_BYTES = 300 * 1024 * 1024
MAX_READ_SECONDS = 300.0  # a PDF or .docx still being read after this is refused
# A PDF or .docx is read in a process of its own with at most this much address space: one
# page can inflate a few MB of compressed stream to GBs (tests/test_documents.py).
MAX_READ_MEMORY = 2 * 1024 * 1024 * 1024
_WORKER_START_SECONDS = 60.0  # for the reading process to start (on a busy machine)
PROGRESS_PAGES = 10  # documents with more pages report progress page by page
ROW_SEPARATOR = " | "  # between the cells of a table row (one row per line)

# (what, done, total), like qa.build's progress: ("reading report.pdf", 40, 120).
Progress = Callable[[str, int, int], None]

_SENTENCE_END = "。！？!?；;…"
_CLOSERS = "\"'”’」』）)》】"
_PAGE_NUMBER = re.compile(
    r"[-—–\s]*(?:第\s*)?\d{1,4}\s*(?:页)?\s*(?:(?:/|of|共)\s*\d{1,4}\s*页?)?[-—–\s]*"
    r"|(?:page|p\.)\s*\d{1,4}(?:\s*of\s*\d{1,4})?",
    re.IGNORECASE,
)
_CID = re.compile(r"\(cid:\d+\)")
# One glyph without a character standing apart (a bullet, a symbol between spaces): no
# letter or digit lost. A run of them is a word lost, shown.
_LONE_CID = re.compile(r"(?<!\S)\(cid:\d+\)(?!\S)")
LOST = "\ufffd"  # shown for a glyph without a character inside a word or number
_DIGITS = re.compile(r"\d+")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")


class DocumentError(ValueError):
    """A document cannot be read; the message says why (the reader adds the file name)."""


class _NotRemembered(DocumentError):
    """Refused for the time or memory it took, or a crash of the reading process: not
    remembered in the cache, another machine or a later build may do better."""


class _TooSlow(_NotRemembered):
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


def _check_size(path: Path) -> bytes:
    _refuse_large(path)
    return path.read_bytes()


def _refuse_large(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"{size / 1024 / 1024:.0f} MB, more than the {MAX_DOCUMENT_BYTES // 1024 // 1024} "
            "MB read: split it"
        )


# --- the cache ----------------------------------------------------------------------------

# Change it whenever reading a PDF or .docx gives other paragraphs: older entries go unused.
READER_VERSION = "4"

_READ_ENTRY = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_NEW_ENTRY = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def read_document(
    path: Path, progress: Progress | None = None, name: str = "", seconds: float | None = None
) -> Document:
    """`read_pdf` or `read_docx` by suffix, remembered by the file's content.

    Every build reads the whole corpus, and pdfminer.six takes 50-100 ms a page: a folder of
    reports would be parsed again on each upload. What a file gave (or why it was refused) is
    kept under QA_CACHE/documents, keyed by its bytes, its suffix, the reader's version and
    the libraries' versions, so a changed file is read again and an unchanged one is not.
    `seconds`: read for at most this long (at most MAX_READ_SECONDS).
    """
    pdf = path.suffix.lower() == ".pdf"
    data = _check_size(path)
    if not data:
        raise DocumentError("empty file (0 bytes)")
    # Keyed by the reader too: the same bytes named .pdf and .docx are read differently.
    digest = hashlib.blake2b(data, digest_size=16, key=_versions().encode()[:64])
    digest.update(b".pdf" if pdf else b".docx")
    entry = f"{digest.hexdigest()}.json"
    # A key follows from public data (a published report and the libraries' versions): an
    # entry is used only for the file whose bytes it names, never for its name alone.
    source = hashlib.sha256(data).hexdigest()
    folder = _open_cache()
    try:
        kept = _recall(folder, entry, source)
        if isinstance(kept, DocumentError):
            raise kept
        if kept is not None:
            return kept
        # No entry, or a damaged one, one of another layout or another file: read the file.
        try:
            doc = read_pdf(path, progress, name, seconds) if pdf else read_docx(path, seconds)
        except _NotRemembered:
            raise
        except DocumentError as exc:
            _remember(folder, entry, {"sha256": source, "error": str(exc)})
            raise
        _remember(folder, entry, {"sha256": source, **_to_json(doc)})
        return doc
    finally:
        if folder is not None:
            os.close(folder)


def _to_json(doc: Document) -> dict:
    return {k: getattr(doc, k) for k in Document.__dataclass_fields__}


def _from_json(kept: object) -> Document | None:
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


def _cache_folder() -> Path:
    from ..index.onnx import cache_root

    return cache_root() / "documents"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = [READER_VERSION]
    for package in ("pdfminer.six", "python-docx"):
        try:
            found.append(version(package))
        except PackageNotFoundError:
            found.append("-")
    return " ".join(found)


def _open_cache() -> int | None:
    """The cache folder, open (entries are read and written relative to it, so no link in
    its path can lead them elsewhere); None when there is none to use: documents are then
    read each time, only slower.

    Entries hold the text of private documents, and one that someone else wrote could put
    any text in the index: only a real folder (not a link) of this user is used, made
    private (0700) if it was not; a group or others keep no access to it.
    """
    if os.open not in os.supports_dir_fd:  # Windows: no way to open an entry safely
        return None
    path = _cache_folder()
    log = logging.getLogger("qa")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:  # a read-only home, a file or a link in its place
        log.debug("documents not cached: %s", exc)
        return None
    try:
        info = os.fstat(folder)
        if info.st_uid != os.geteuid():
            raise PermissionError(f"{path} belongs to another user")
        if info.st_mode & 0o077:  # made by an earlier version, or by hand: made private
            os.fchmod(folder, stat.S_IMODE(info.st_mode) & 0o700)
    except OSError as exc:
        log.debug("documents not cached: %s", exc)
        os.close(folder)
        return None
    return folder


def _recall(folder: int | None, entry: str, source: str) -> Document | DocumentError | None:
    """What the cache says of the file whose bytes have the SHA-256 `source`: its Document,
    or the error that refused it. None for anything else (read the file again): no entry, a
    damaged one, one of another file, or one that is not a regular file of this user (a
    FIFO would block the build, a link could lead anywhere)."""
    if folder is None:
        return None
    try:
        fd = os.open(entry, _READ_ENTRY, dir_fd=folder)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                return None
            kept = json.loads(file.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # unreadable, truncated, not UTF-8
        return None
    if not isinstance(kept, dict) or kept.pop("sha256", None) != source:
        return None
    if set(kept) == {"error"} and isinstance(kept["error"], str):
        return DocumentError(kept["error"])
    return _from_json(kept)


def _remember(folder: int | None, entry: str, value: dict) -> None:
    if folder is None:
        return
    # A new file that only this user can read, under a name no one can guess (a name known
    # in advance could be a link someone put there); two builds at once each write their own.
    tmp = f"{entry}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, _NEW_ENTRY, 0o600, dir_fd=folder)
        with os.fdopen(fd, "wb") as file:
            file.write(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        os.replace(tmp, entry, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError as exc:  # a full disk: documents are read each time, only slower
        logging.getLogger("qa").debug("document not cached: %s", exc)
        try:
            os.unlink(tmp, dir_fd=folder)
        except OSError:
            pass


# --- the reading process ------------------------------------------------------------------


def _in_worker(
    kind: str, path: Path, progress: Progress | None, name: str, seconds: float | None = None
) -> Document:
    """`_read_pdf` or `_read_docx` of `path` in a process of its own, killed when it takes
    longer than `seconds` (at most MAX_READ_SECONDS); it gets MAX_READ_MEMORY of address
    space.

    pdfminer.six reads a page whole, and the time limit is checked between pages: one page
    of a few MB that inflates to GBs took 4 GB of memory per 2 GB, one of millions of
    operators minutes. Neither can be interrupted inside the parser, so the parser runs in
    a process that the limits end. The limits are sent along (tests change them).
    """
    limit = MAX_READ_SECONDS if seconds is None else min(seconds, MAX_READ_SECONDS)
    request = {
        "kind": kind,
        "path": str(path),
        "name": name,
        "progress": progress is not None,
        "max_pages": MAX_PAGES,
        "max_unpacked": MAX_UNPACKED_BYTES,
        "max_seconds": limit,
        "max_memory": MAX_READ_MEMORY,
        "progress_pages": PROGRESS_PAGES,
    }
    # This file alone, not the qa package (whose imports take most of a second).
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER_MAIN, str(Path(__file__).resolve())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        with process.stdout:  # closed here, never under the loop reading it
            for line in process.stdout:
                lines.put(line)
        lines.put(None)

    try:
        process.stdin.write(json.dumps(request).encode() + b"\n")
        process.stdin.close()
        threading.Thread(target=pump, daemon=True).start()
        # The limit counts from when the reader has started (Python and the libraries
        # loaded): a busy machine may take seconds for that.
        deadline = time.monotonic() + _WORKER_START_SECONDS
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise _TooSlow(
                    f"still not read after {limit:.0f} s: split it or print it to a new PDF"
                ) from None
            if line is None:
                code = process.wait()
                raise _NotRemembered(
                    f"its reader stopped (exit status {code}): it may need more than "
                    f"{MAX_READ_MEMORY // 1024 // 1024} MB of memory; export it again"
                )
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours: something the libraries printed
            if not isinstance(message, dict):
                continue
            if "started" in message:
                deadline = time.monotonic() + max(limit, 0.0) + 1.0
            elif "progress" in message and progress is not None:
                progress(*message["progress"])
            elif "error" in message:
                error = _NotRemembered if message.get("not_remembered") else DocumentError
                if message.get("slow"):
                    error = _TooSlow
                raise error(message["error"])
            elif "document" in message:
                doc = _from_json(message["document"])
                if doc is None:
                    raise _NotRemembered("its reader gave no usable result")
                return doc
    except OSError as exc:  # cannot start a process (none left, no executable)
        raise _NotRemembered(f"cannot start its reader ({exc.strerror or exc})") from None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


_WORKER_MAIN = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_qa_documents", sys.argv[1])
module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module._worker()
"""


def _worker() -> None:
    """The reading process: one JSON request on stdin, JSON lines (progress, then the
    document or the error) on stdout."""
    global MAX_PAGES, MAX_UNPACKED_BYTES, MAX_READ_SECONDS, MAX_READ_MEMORY, PROGRESS_PAGES
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the answer

    def send(message: dict) -> None:
        out.write(json.dumps(message, ensure_ascii=False) + "\n")
        out.flush()

    request = json.loads(sys.stdin.readline())
    MAX_PAGES = request["max_pages"]
    MAX_UNPACKED_BYTES = request["max_unpacked"]
    MAX_READ_SECONDS = request["max_seconds"]
    PROGRESS_PAGES = request["progress_pages"]
    MAX_READ_MEMORY = limit = request["max_memory"]
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # no such limit here (Windows): the time limit still holds
    if request["kind"] == "pdf":
        import pdfminer.pdfinterp  # noqa: F401 - loaded before the time limit starts
    else:
        import docx  # noqa: F401
    send({"started": True})
    progress = None
    if request["progress"]:
        progress = lambda what, done, total: send({"progress": [what, done, total]})  # noqa: E731
    path = Path(request["path"])
    try:
        if request["kind"] == "pdf":
            doc = _read_pdf(path, progress, request["name"])
        else:
            doc = _read_docx(path)
    except MemoryError:
        send({"error": _too_big(), "not_remembered": True})
    except DocumentError as exc:
        send({"error": str(exc), "slow": isinstance(exc, _TooSlow)})
    except RecursionError:
        send({"error": "damaged (nested too deeply)"})
    except OSError as exc:  # gone or unreadable since the build listed it
        send({"error": f"cannot read ({exc.strerror or exc})", "not_remembered": True})
    except Exception as exc:  # noqa: BLE001 - one line for the build, whatever it was
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        send({"error": f"cannot be read ({reason})", "not_remembered": True})
    else:
        send({"document": _to_json(doc)})
    out.close()


def _too_big() -> str:
    return (
        f"needs more than {MAX_READ_MEMORY // 1024 // 1024} MB of memory to read (compressed "
        "parts that inflate far beyond their size?); save or print it to a new file"
    )


# --- PDF ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One line of text on a page, in PDF points (y grows upwards)."""

    page: int
    x0: float
    x1: float
    y0: float  # the baseline side
    y1: float
    size: float  # the font size of its characters
    text: str
    row: bool = False  # cells of a table row, joined by ROW_SEPARATOR


def read_pdf(
    path: Path, progress: Progress | None = None, name: str = "", seconds: float | None = None
) -> Document:
    """The paragraphs of a PDF with the page each starts on, read in a process of its own.

    Raises DocumentError for an encrypted, truncated, damaged or scanned (no text) file, one
    most of whose glyphs have no character, or one over MAX_PAGES pages, MAX_READ_SECONDS or
    MAX_READ_MEMORY.
    """
    _refuse_large(path)
    return _in_worker("pdf", path, progress, name or path.name, seconds)


def _read_pdf(path: Path, progress: Progress | None, name: str) -> Document:
    data = _check_size(path)
    if b"%PDF-" not in data[:1024]:
        if re.match(
            rb"(?:\xef\xbb\xbf)?\s*<(?:!doctype\s+html|html|head|body|meta)\b", data[:1024], re.I
        ):
            raise DocumentError("not a PDF but a web page (HTML): save it as .html")
        raise DocumentError("not a PDF (no %PDF- header)")
    if b"%%EOF" not in data[-2048:]:
        raise DocumentError(
            "truncated: the PDF ends before its end marker (%%EOF); download or export it again"
        )
    lines, pages, heights, undecoded = _pdf_lines(data, progress, name or path.name)
    decoded = sum(len(line.text) - line.text.count(" ") for page in lines for line in page)
    decoded -= sum(line.text.count(LOST) for page in lines for line in page)
    if undecoded > decoded:
        # Most glyphs lost (Chromium printing Chinese with no Chinese font installed): what
        # is left is digits and punctuation, "1115,“”“”,900,6697", not worth an index.
        raise DocumentError(
            f"its text cannot be decoded ({undecoded} of {undecoded + decoded} characters are "
            "glyph numbers, not characters: its fonts do not say which they draw); print it "
            "to a new PDF with Chinese fonts installed, or export it again from the program "
            "that made it"
        )
    if not any(lines):
        raise DocumentError(
            "no text layer: it looks like a scan (images of pages); run OCR on it first "
            "(e.g. ocrmypdf) and add the result"
        )
    empty = [str(n) for n, page in enumerate(lines, 1) if not page]
    notes = ()
    if empty:
        shown = ", ".join(empty[:10]) + (" …" if len(empty) > 10 else "")
        notes = (f"page(s) {shown} of {pages} have no text layer (scanned?) and were not read",)
    texts = iter(normalise_lines([line.text for page in lines for line in page]))
    lines = [[replace(line, text=next(texts)) for line in page] for page in lines]
    body = _drop_running_lines(lines, heights)
    paragraphs, starts, heading = _paragraphs([_reading_order(page) for page in body])
    title = normalise_lines([pdf_title(data)])[0]
    if title.lower() in ("untitled", "无标题"):  # what some writers put there by default
        title = ""
    if paragraphs and paragraphs[0] in (title, heading):
        title = title or heading  # the title is the article's title, not its first paragraph
        paragraphs, starts = paragraphs[1:], starts[1:]
    paragraphs, starts, lost = _drop_lost(paragraphs, starts)
    if not paragraphs:
        raise DocumentError("no text besides headers and page numbers")
    return Document(title, tuple(paragraphs), tuple(starts), notes=notes + lost)


def _drop_lost(paragraphs: list[str], starts: list[int]) -> tuple[list[str], list[int], tuple]:
    """The paragraphs without those made mostly of glyphs without a character, and a note
    on how many glyphs were lost where (shown as LOST in the paragraphs kept)."""
    kept, pages, lost_pages, lost, dropped = [], [], set(), 0, 0
    for text, page in zip(paragraphs, starts, strict=True):
        n = text.count(LOST)
        if n:
            lost_pages.add(page)
            lost += n
        if n and 2 * n >= len(text) - text.count(" "):
            dropped += 1
            continue
        kept.append(text)
        pages.append(page)
    if not lost:
        return kept, pages, ()
    shown = ", ".join(str(n) for n in sorted(lost_pages)[:10])
    shown += " …" if len(lost_pages) > 10 else ""
    note = f"{lost} glyph(s) without a character on page(s) {shown} shown as {LOST}"
    if dropped:
        note += f"; {dropped} paragraph(s) made mostly of them were not read"
    return kept, pages, (note,)


def pdf_title(data: bytes) -> str:
    """The document's /Title, "" when it has none (read apart: it is optional metadata)."""
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfparser import PDFParser
    from pdfminer.pdftypes import resolve1

    try:
        info = PDFDocument(PDFParser(io.BytesIO(data))).info
        raw = resolve1(info[0].get("Title")) if info else None
    except Exception:  # noqa: BLE001 - a title is optional; read_pdf reports real damage
        return ""
    if isinstance(raw, bytes):
        if raw.startswith((b"\xfe\xff", b"\xff\xfe")):
            return raw.decode("utf-16", "replace").strip()
        return raw.decode("latin-1").strip()
    return str(raw).strip() if raw else ""


def _pdf_lines(
    data: bytes, progress: Progress | None, name: str
) -> tuple[list[list[_Line]], int, list[float], int]:
    """Text lines of each page (pdfminer.six layout analysis), the page count, page heights,
    and how many glyphs had no character (pdfminer's "(cid:N)")."""
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage

    # pdfminer.six warns on stderr about copy-protection flags and small defects it reads
    # past; what it cannot read raises, and becomes one skip line below.
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    pages: list[list[_Line]] = []
    heights: list[float] = []
    undecoded = [0]
    try:
        with io.BytesIO(data) as f:
            found = list(islice(PDFPage.get_pages(f, check_extractable=False), MAX_PAGES + 1))
            if len(found) > MAX_PAGES:
                raise DocumentError(f"more than {MAX_PAGES} pages: split it")
            manager = PDFResourceManager()
            device = PDFPageAggregator(manager, laparams=LAParams())
            interpreter = PDFPageInterpreter(manager, device)
            began = time.monotonic()
            for number, page in enumerate(found, 1):
                if time.monotonic() - began > MAX_READ_SECONDS:
                    raise _TooSlow(
                        f"still not read after {MAX_READ_SECONDS:.0f} s (page {number} of "
                        f"{len(found)}): split it or print it to a new PDF"
                    )
                if progress is not None and len(found) > PROGRESS_PAGES:
                    progress(f"reading {name}", number - 1, len(found))
                interpreter.process_page(page)
                layout = device.get_result()
                heights.append(float(layout.height))
                pages.append(list(_layout_lines(layout, number, undecoded)))
            if progress is not None and len(found) > PROGRESS_PAGES:
                progress(f"reading {name}", len(found), len(found))
    except (PDFPasswordIncorrect, PDFEncryptionError):
        raise DocumentError(
            "encrypted: it needs a password to open; save a copy without one and add that"
        ) from None
    except (DocumentError, MemoryError):
        raise
    except RecursionError:
        raise DocumentError("damaged PDF (nested too deeply)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file may fail anywhere in the parser
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        raise DocumentError(f"damaged PDF ({reason}); export it again") from None
    return pages, len(pages), heights, undecoded[0]


def _layout_lines(layout, page: int, undecoded: list[int]):
    """The horizontal text lines inside a pdfminer page layout, in no particular order."""
    from pdfminer.layout import LTChar, LTTextLineHorizontal

    stack = [layout]
    while stack:
        item = stack.pop()
        if isinstance(item, LTTextLineHorizontal):
            chars = [c for c in item if isinstance(c, LTChar)]
            if not chars:
                continue
            size = statistics.median(round(c.size, 1) for c in chars)
            raw = _line_text(chars, size)
            undecoded[0] += len(_CID.findall(raw))
            # A glyph without a character inside a word or number is shown, not dropped:
            # "9(cid:20)00" read as "900" would be a wrong number, cited as found.
            text = " ".join(_CID.sub(LOST, _LONE_CID.sub("", raw)).split())
            if text:
                yield _Line(page, item.x0, item.x1, item.y0, item.y1, size, text)
        elif hasattr(item, "__iter__"):
            stack.extend(item)


def _line_text(chars: list, size: float) -> str:
    """The characters of one line, with a space only where a gap is clearly wider than the
    line's usual one, and never between two Chinese characters.

    pdfminer.six puts a space in every gap wider than a tenth of a character: a justified
    Chinese line (character spacing stretched, as WPS and Word distribute it) came out as
    "鄱 阳 湖" and "2 0 2 0 年". Chinese has no spaces between words, and a space drawn as a
    glyph is kept as it is.
    """
    gaps = [b.x0 - a.x1 for a, b in zip(chars, chars[1:], strict=False)]
    usual = max(statistics.median(gaps), 0.0) if gaps else 0.0
    out = [chars[0].get_text()]
    for a, b, gap in zip(chars, chars[1:], gaps, strict=False):
        left, right = a.get_text(), b.get_text()
        if (
            gap > usual + 0.25 * size
            and not left.isspace()
            and not right.isspace()
            and not (_wide(left) and _wide(right))
        ):
            out.append(" ")
        out.append(right)
    return "".join(out)


def _wide(char: str) -> bool:
    """A Chinese character or full-width punctuation: no space goes between two of them."""
    return bool(char) and (
        "\u2e80" <= char[0] <= "\u9fff"
        or "\uf900" <= char[0] <= "\ufaff"
        or "\uff00" <= char[0] <= "\uffef"
    )


# --- what a PDF's characters stand for --------------------------------------------------

# CJK Radicals Supplement (U+2E80-U+2EFF), each followed by the ideograph it stands for, from
# Unicode's EquivalentUnifiedIdeograph.txt (Unicode 14): NFKC maps only two of them.
_SUPPLEMENT = (
    "⺁厂⺂乛⺃乚⺄乙⺅亻⺆冂⺇𠘨⺈刀⺉刂⺊卜⺋㔾⺌小⺍小⺎兀⺏尣⺐尢⺑𡯂⺒巳⺓幺⺔彑"
    "⺕彐⺖忄⺗心⺘扌⺙攵⺛旡⺜日⺝月⺞歺⺟母⺠民⺡氵⺢氺⺣灬⺤爫⺥爫⺦丬⺧牛⺨犭⺩王"
    "⺪𤴔⺫目⺬示⺭礻⺮𥫗⺯糹⺰纟⺱罓⺲罒⺳㓁⺴冗⺵𦉫⺶羊⺷𦍌⺸𦍋⺹耂⺺肀⺻聿⺼肉⺽𦥑"
    "⺾艹⺿艹⻀艹⻁虎⻂衤⻃覀⻄西⻅见⻆角⻇𧢲⻈讠⻉贝⻊𧾷⻋车⻌辶⻍辶⻎辶⻏邑⻐钅⻑長"
    "⻒镸⻓长⻔门⻕𨸏⻖阝⻗雨⻘青⻙韦⻚页⻛风⻜飞⻝食⻞𩙿⻟飠⻠饣⻡𩠐⻢马⻣骨⻤鬼⻥鱼"
    "⻦鸟⻧卤⻨麦⻩黄⻪黾⻫斉⻬齐⻭歯⻮齿⻯竜⻰龙⻱龜⻲亀⻳龟"
)
_RADICAL_IDEOGRAPH = dict(zip(_SUPPLEMENT[0::2], _SUPPLEMENT[1::2], strict=True))
# The ideographs radicals stand for whose form differs between the scripts. A font shares
# one glyph between a radical and the character it looks like: printed in a simplified font,
# 用户 comes out as ⽤⼾, and ⼾ is 戶 in Unicode's tables. The simplified forms are what
# OpenCC's t2s gives (tests/test_documents.py checks); its s2t is not used: it makes 干 幹.
_TRADITIONAL_FORMS = "糹見訁貝車釒長門韋頁風飛飠馬魚鳥鹵麥黃黽齊齒龍龜戶鬥"
_SIMPLIFIED_FORMS = "纟见讠贝车钅长门韦页风飞饣马鱼鸟卤麦黄黾齐齿龙龟户斗"
_TO_SIMPLIFIED = dict(zip(_TRADITIONAL_FORMS, _SIMPLIFIED_FORMS, strict=True))
# In a traditional document only the radicals that are simplified forms change (⻓ 长 長);
# ⽃ (斗) and ⼾ (戶) are already right there.
_TO_TRADITIONAL = dict(zip(_SIMPLIFIED_FORMS[:-2], _TRADITIONAL_FORMS[:-2], strict=True))
# Radicals (both blocks), compatibility ideographs and Latin ligatures (ﬁ ﬂ): what fonts
# give for a glyph they share with a character. Full-width punctuation is left as it is.
_STAND_INS = re.compile("[\u2e80-\u2fdf\uf900-\ufaff\ufb00-\ufb06\U0002f800-\U0002fa1f]")
_RADICAL = re.compile("[\u2e80-\u2fdf]")
# A number between Chinese characters (or at a line's edge beside one) with spaces around
# it: the layout's gaps, "突破 900 万". One beside a Latin word keeps them ("Python 3.11 的").
_WIDE = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"  # what `_wide` calls wide
_SPACED_NUMBER = re.compile(rf"(?:(?<=[{_WIDE}])|^) *(\d+(?:[.,:/]\d+)*%?) *(?=[{_WIDE}]|$)")


def normalise_lines(lines: Sequence[str]) -> list[str]:
    """A PDF's lines as the document wrote them: radicals and compatibility ideographs as the
    ideographs they stand for, in the document's script (⽤⼾ is 用户 in simplified text,
    用戶 in traditional), ligatures as letters, no spaces between a number and Chinese."""
    traditional = any(_RADICAL.search(line) for line in lines) and _traditional(lines)

    def unified(match: re.Match) -> str:
        char = match.group()
        ideograph = _RADICAL_IDEOGRAPH.get(char) or unicodedata.normalize("NFKC", char)
        if not _RADICAL.match(char):
            return ideograph  # a compatibility ideograph is its ideograph in either script
        return (_TO_TRADITIONAL if traditional else _TO_SIMPLIFIED).get(ideograph, ideograph)

    return [_SPACED_NUMBER.sub(r"\1", _STAND_INS.sub(unified, line)) for line in lines]


def _traditional(lines: Sequence[str]) -> bool:
    """True when more of the text's characters are traditional-only than simplified-only."""
    from opencc import OpenCC

    counts = Counter(char for line in lines for char in line if "\u3400" <= char <= "\u9fff")
    to_simplified, to_traditional = OpenCC("t2s"), OpenCC("s2t")
    traditional = sum(n for char, n in counts.items() if to_simplified.convert(char) != char)
    simplified = sum(n for char, n in counts.items() if to_traditional.convert(char) != char)
    return traditional > simplified


def _drop_running_lines(pages: list[list[_Line]], heights: list[float]) -> list[list[_Line]]:
    """Pages without their running headers, footers and page numbers.

    A line in the top or bottom tenth of a page is dropped when it is a page number, or when
    (its digits aside) it recurs there on at least half of the pages (and two of them).
    """

    def key(line: _Line) -> str:
        return _DIGITS.sub("#", line.text.replace(" ", ""))

    def margin(line: _Line, height: float) -> bool:
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


def _reading_order(lines: list[_Line]) -> list[list[_Line]]:
    """The page as flows (a column, or a full-width stretch) in reading order, each a list
    of lines top to bottom, the cells of one table row joined into one line."""
    gutter = _gutter(lines)
    ordered = sorted(lines, key=lambda line: (-line.y0, line.x0))
    if gutter is None:
        return [_rows(ordered)]
    flows: list[list[_Line]] = []
    left: list[_Line] = []
    right: list[_Line] = []
    across: list[_Line] = []  # a title or a table over both columns

    def flush(*parts: list[_Line]) -> None:
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


def _gutter(lines: list[_Line]) -> float | None:
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


def _rows(lines: list[_Line]) -> list[_Line]:
    """`lines` (top to bottom) with the pieces of one baseline joined: a table row."""
    out: list[_Line] = []
    for line in sorted(lines, key=lambda line: (-line.y0, line.x0)):
        prev = out[-1] if out else None
        if prev is not None and abs(prev.y0 - line.y0) < 0.3 * max(prev.size, line.size):
            out[-1] = _Line(
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


def _paragraphs(pages: list[list[list[_Line]]]) -> tuple[list[str], list[int], str]:
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
    prev: _Line | None = None
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
    prev: _Line, line: _Line, first: bool, left: float, right: float, pitch: float, body: float
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


def _body_size(lines: list[_Line]) -> float:
    sizes = Counter()
    for line in lines:
        sizes[round(line.size)] += len(line.text)
    return float(sizes.most_common(1)[0][0]) if sizes else 10.0


def _pitch(flows: list[list[_Line]], body: float) -> float:
    """The usual distance between the baselines of two lines of body text."""
    gaps = [
        a.y0 - b.y0
        for flow in flows
        for a, b in zip(flow, flow[1:], strict=False)
        if abs(a.size - body) < 1 and abs(b.size - body) < 1 and a.y0 > b.y0
    ]
    return statistics.median(gaps) if gaps else 1.2 * body


# --- Word .docx ---------------------------------------------------------------------------


def read_docx(path: Path, seconds: float | None = None) -> Document:
    """Title (the title property, else the first heading), paragraphs and tables in order,
    one table row per line, read in a process of its own. Headers, footers, comments and
    notes are not body text."""
    _refuse_large(path)
    return _in_worker("docx", path, None, path.name, seconds)


def _read_docx(path: Path) -> Document:
    _check_size(path)
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            if "word/document.xml" not in archive.namelist():
                raise DocumentError("not a Word .docx file (no word/document.xml in it)")
    except zipfile.BadZipFile:
        raise DocumentError(
            "not a readable .docx (truncated or damaged zip); save or download it again"
        ) from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise DocumentError(
            f"unpacks to {unpacked / 1024 / 1024:.0f} MB, more than the "
            f"{MAX_UNPACKED_BYTES // 1024 // 1024} MB read"
        )
    import docx

    try:
        document = docx.Document(str(path))
        title = (document.core_properties.title or "").strip()
        heading = ""
        paragraphs: list[str] = []
        for block in document.iter_inner_content():
            if hasattr(block, "rows"):
                text = _table_text(block)
            else:
                text = block.text.strip()
                style = (block.style.name if block.style is not None else "") or ""
                if text and not heading and style.lower().startswith(("heading", "title")):
                    heading = text
            if text:
                paragraphs.append(text)
    except (DocumentError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - python-docx fails in many ways on a damaged file
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        raise DocumentError(f"damaged .docx ({reason}); save it again from Word") from None
    title = title or heading
    if paragraphs and paragraphs[0] == title:
        paragraphs = paragraphs[1:]  # the title is the article's title, not its first paragraph
    return Document(title, tuple(paragraphs))


def _table_text(table) -> str:
    """A table as one row per line, cells joined by ROW_SEPARATOR (a merged cell once)."""
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell appears once per grid column it spans
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(ROW_SEPARATOR.join(cells))
    return "\n".join(rows)


# --- web pages ----------------------------------------------------------------------------


def read_html(text: str) -> Document | None:
    """The main text of a web page by trafilatura: the article without navigation, ads,
    comments, related links and footers; its title, date and canonical http(s) URL.

    None when trafilatura finds no main text (a fragment, a near-empty page): the caller
    falls back to reading all visible text.
    """
    import trafilatura

    # Its complaints about a page it cannot use ("discarding data: None") would reach the
    # CLI's stderr; such a page is read by the reader's fallback instead.
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    tree = trafilatura.load_html(text)
    if tree is None:
        return None
    # Navigation, page headers, footers, asides and forms are never the article. trafilatura
    # drops them itself, but on a short page its fallback keeps all text: drop them first.
    for element in tree.xpath(_BOILERPLATE):
        element.drop_tree()
    # A page that marks its article (<article>, <main>) is read there only, as browsers'
    # reader modes do: trafilatura's fallback on a short page would keep an ad beside it.
    if tree.xpath("//body//article[normalize-space()] | //body//main[normalize-space()]"):
        for element in tree.xpath(_OUTSIDE_ARTICLE):
            element.drop_tree()
    found = trafilatura.bare_extraction(
        tree,
        include_comments=False,
        include_tables=True,
        include_images=False,
        with_metadata=True,
        deduplicate=False,
    )
    if found is None or not (found.text or "").strip():
        return None
    metadata = []
    if found.date:
        metadata.append(("date", found.date))
    if found.url and safe_url(found.url):
        metadata.append(("url", found.url))
    return Document(
        (found.title or "").strip(), _html_paragraphs(found.text), metadata=tuple(metadata)
    )


_BOILERPLATE = (
    "//nav | //footer | //aside | //form | //header[not(ancestor::article or ancestor::main)]"
)
_MARKED = "self::article or self::main"
# Elements of the body with no article or main around or inside them, topmost only.
_OUTSIDE_ARTICLE = (
    f"//body//*[not(ancestor-or-self::*[{_MARKED}] or descendant::*[{_MARKED}])]"
    f"[ancestor::*[1][self::body or descendant::*[{_MARKED}]]]"
)


def _html_paragraphs(text: str) -> tuple[str, ...]:
    """trafilatura's text (one paragraph per line, tables as "| a | b |" rows) as paragraphs,
    the rows of one table together, one row per line."""
    out: list[str] = []
    in_table = False
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            in_table = False
            continue
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue  # a markdown separator row
            row = ROW_SEPARATOR.join(cells)
            if in_table:
                out[-1] += "\n" + row
            else:
                out.append(row)
            in_table = True
        else:
            out.append(line[2:] if line.startswith("- ") else line)  # a list item's mark
            in_table = False
    return tuple(out)


def safe_url(url: str) -> bool:
    """True for an absolute http(s) URL: the only links the app shows."""
    return bool(re.match(r"https?://[^\s/?#]+", url, re.IGNORECASE)) and not any(
        c.isspace() for c in url
    )
