"""Web pages (.html, .htm): the main text by trafilatura (`read_html`), or, for a page where
it finds none (a fragment, a bare list of paragraphs), all visible text by the built-in
extractor (`parse_html`); `parse_page` tries one, then the other.

Both run in time linear in the page's size: trafilatura parses with lxml (libxml2); the
built-in extractor first rewrites the markup in one pass (`_simple_markup`) because
Python's html.parser is quadratic on malformed markup. benchmarks/readers.py measured the
extractors; tests/app/test_hostile.py times the known bad cases.
"""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from pathlib import Path

from ..types import Article
from . import limits
from .clean import clean, cut, one_line
from .document import ROW_SEPARATOR, Document
from .parsed import BadInput, FileRead, Found, from_document
from .text import split_paragraphs


def parse_page(text: str, rel: str) -> FileRead:
    """A web page's main text by trafilatura (`read_html`); a page where it finds none
    (a fragment, a bare list of paragraphs) is read whole by the built-in extractor
    (`parse_html`).

    trafilatura parses with lxml (libxml2), linear in the input: the "<a" * 40,000 page of the
    security review takes milliseconds (benchmarks/readers.py).
    """
    try:
        doc = read_html(text)
    except Exception:  # noqa: BLE001 - a third-party parser on any page: the fallback reads it
        logging.getLogger("qa.reader").debug("%s: trafilatura failed", rel, exc_info=True)
        doc = None
    if doc is not None:
        return from_document(doc, rel)
    title, paragraphs = parse_html(text, Path(rel).stem)
    article = Article(rel, cut(title, limits.MAX_TITLE_CHARS), paragraphs, rel)
    return FileRead((Found(article, rel),))


# --- the main text, by trafilatura --------------------------------------------------------


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


# --- all visible text, by the built-in extractor ------------------------------------------


_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
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


def parse_html(text: str, fallback_title: str) -> tuple[str, tuple[str, ...]]:
    extractor = _HtmlText()
    extractor.feed(_simple_markup(text))
    extractor.close()
    paragraphs = split_paragraphs(clean(extractor.body()).split("\n"))
    if not paragraphs:
        raise BadInput("no visible text")
    return extractor.title() or fallback_title, paragraphs


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
        return one_line(_HTML_SPACE.sub(" ", "".join(self._title or self._h1)))

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
