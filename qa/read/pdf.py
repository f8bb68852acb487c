"""PDF (pdfminer.six): a PDF's paragraphs with the page each starts on.

Its paragraphs are rebuilt from its layout (qa/read/pdf_layout.py): running headers and page
numbers dropped, two columns read one after the other, lines broken inside a sentence
joined, and every paragraph remembers the page it starts on. Its characters are read as the
text means them (radicals a font shares with ideographs as those ideographs,
`normalise_lines`), and a glyph without a character is shown as U+FFFD, never left out of
the word or number it is in. benchmarks/readers.py measured the PDF libraries (README,
"Articles").

`read_pdf` parses in the reading process (qa/read/sandbox.py), which runs `parse_pdf`.
pdfminer.six is imported inside the functions that use it: `import qa` stays cheap.
"""

from __future__ import annotations

import io
import logging
import re
import statistics
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from itertools import islice
from pathlib import Path

from . import limits
from .document import Document, DocumentError, Progress, TooSlow, check_size, refuse_large
from .pdf_layout import Line, drop_running_lines, paragraphs_of, reading_order
from .sandbox import read_in_sandbox

_CID = re.compile(r"\(cid:\d+\)")
# One glyph without a character standing apart (a bullet, a symbol between spaces): no
# letter or digit lost. A run of them is a word lost, shown.
_LONE_CID = re.compile(r"(?<!\S)\(cid:\d+\)(?!\S)")
LOST = "\ufffd"  # shown for a glyph without a character inside a word or number


def read_pdf(
    path: Path, progress: Progress | None = None, name: str = "", seconds: float | None = None
) -> Document:
    """The paragraphs of a PDF with the page each starts on, read in a process of its own.

    Raises DocumentError for an encrypted, truncated, damaged or scanned (no text) file, one
    most of whose glyphs have no character, or one over MAX_PAGES pages, MAX_READ_SECONDS or
    MAX_READ_MEMORY (qa/read/limits.py).
    """
    refuse_large(path)
    return read_in_sandbox("pdf", path, progress, name or path.name, seconds)


def parse_pdf(path: Path, progress: Progress | None, name: str) -> Document:
    """`read_pdf` in this process: what the reading process runs (qa/read/sandbox_worker.py)."""
    data = check_size(path)
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
    body = drop_running_lines(lines, heights)
    paragraphs, starts, heading = paragraphs_of([reading_order(page) for page in body])
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
) -> tuple[list[list[Line]], int, list[float], int]:
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
    pages: list[list[Line]] = []
    heights: list[float] = []
    undecoded = [0]
    try:
        with io.BytesIO(data) as f:
            pages_found = PDFPage.get_pages(f, check_extractable=False)
            found = list(islice(pages_found, limits.MAX_PAGES + 1))
            if len(found) > limits.MAX_PAGES:
                raise DocumentError(f"more than {limits.MAX_PAGES} pages: split it")
            manager = PDFResourceManager()
            device = PDFPageAggregator(manager, laparams=LAParams())
            interpreter = PDFPageInterpreter(manager, device)
            began = time.monotonic()
            for number, page in enumerate(found, 1):
                if time.monotonic() - began > limits.MAX_READ_SECONDS:
                    raise TooSlow(
                        f"still not read after {limits.MAX_READ_SECONDS:.0f} s (page {number} of "
                        f"{len(found)}): split it or print it to a new PDF"
                    )
                if progress is not None and len(found) > limits.PROGRESS_PAGES:
                    progress(f"reading {name}", number - 1, len(found))
                interpreter.process_page(page)
                layout = device.get_result()
                heights.append(float(layout.height))
                pages.append(list(_layout_lines(layout, number, undecoded)))
            if progress is not None and len(found) > limits.PROGRESS_PAGES:
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
                yield Line(page, item.x0, item.x1, item.y0, item.y1, size, text)
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


# --- what a PDF's characters stand for ----------------------------------------------------

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
# OpenCC's t2s gives (tests/read/test_documents.py checks); its s2t is not used: it makes 干 幹.
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
