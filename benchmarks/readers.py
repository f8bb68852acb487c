"""Which PDF library and which HTML main-text extractor qa uses, measured (issue 13).

PDF: pypdf, pdfplumber and pdfminer.six on generated Chinese PDFs (tests/make_documents.py): a
three-page report with a running header, page numbers, lines broken inside sentences and a
table, a two-column notice, and a page set with stretched character spacing (justified),
each in a non-embedded CID font (STSong-Light) and an embedded TrueType subset (WenQuanYi
Micro Hei, when installed); plus a 12-page report for speed. Each library's own plain-text
call is scored, then qa's reader (pdfminer.six layout plus qa/read/pdf_layout.py's paragraph
rebuilding).

HTML: the built-in extractor (qa/read/html.py `parse_html`) against trafilatura as qa
uses it (qa/read/html.py `read_html`) on three saved-news-page layouts, and both on the
security review's "<a" bomb.

    python benchmarks/readers.py [--out benchmarks/readers.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import make_documents as docs  # noqa: E402

from qa.read import html  # noqa: E402
from qa.read.pdf import read_pdf  # noqa: E402

SENTENCES = [s + "。" for p in docs.PARAGRAPHS for s in p.split("。") if s]
COLUMN_SENTENCES = [s + "。" for col in docs.COLUMNS for p in col for s in p.split("。") if s]


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def recall(text: str, sentences: list[str]) -> float:
    """Share of the sentences found whole, in order of characters, whitespace ignored: a
    sentence broken by an interleaved column or a stray header line is not found."""
    flat = _squeeze(text)
    return sum(_squeeze(s) in flat for s in sentences) / len(sentences)


def stray_spaces(text: str) -> int:
    """Spaces between two Chinese characters or digits: none belongs in this text."""
    return len(re.findall(r"(?<=[\u4e00-\u9fff0-9]) +(?=[\u4e00-\u9fff0-9])", text))


def noise(text: str) -> int:
    """How many running headers and page numbers the text still holds."""
    return text.count(docs.HEADER.split(" ")[0]) + len(re.findall(r"—\s*\d+\s*—", text))


def pypdf_text(path: Path) -> str:
    import pypdf

    return "\n".join(page.extract_text() or "" for page in pypdf.PdfReader(path).pages)


def pdfplumber_text(path: Path) -> str:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def pdfminer_text(path: Path) -> str:
    from pdfminer.high_level import extract_text

    return extract_text(path)


def qa_text(path: Path) -> str:
    return "\n".join(read_pdf(path).paragraphs)


LIBRARIES = {
    "pypdf": pypdf_text,
    "pdfplumber": pdfplumber_text,
    "pdfminer.six": pdfminer_text,
    "qa (pdfminer.six + layout)": qa_text,
}


def timed(fn, *args, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        began = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - began)
    return out, best


def measure_pdf(work: Path) -> list[dict]:
    rows = []
    for font in docs.fonts():
        files = {
            f"report ({font})": (docs.report_pdf(work / f"report-{font}.pdf", font), SENTENCES, 3),
            f"two columns ({font})": (
                docs.columns_pdf(work / f"columns-{font}.pdf", font),
                COLUMN_SENTENCES,
                1,
            ),
            f"justified ({font})": (
                docs.justified_pdf(work / f"justified-{font}.pdf", font),
                SENTENCES[:8],
                1,
            ),
            f"12 pages ({font})": (
                docs.filler_report_pdf(work / f"long-{font}.pdf", font),
                SENTENCES[:8],
                12,
            ),
        }
        for name, (path, sentences, pages) in files.items():
            for library, extract in LIBRARIES.items():
                text, seconds = timed(extract, path)
                rows.append(
                    {
                        "document": name,
                        "library": library,
                        "sentences_whole": round(recall(text, sentences), 3),
                        "headers_and_page_numbers_left": noise(text),
                        "stray_spaces": stray_spaces(text),
                        "ms_per_page": round(1000 * seconds / pages, 1),
                    }
                )
    report = docs.report_pdf(work / "report-check.pdf")
    found = read_pdf(report)
    expected = (*docs.PARAGRAPHS, "\n".join(" | ".join(r) for r in docs.TABLE))
    rows.append(
        {
            "document": "report (cid)",
            "library": "qa: paragraphs and pages exact",
            "paragraphs_exact": sum(
                a == b for a, b in zip(found.paragraphs, expected, strict=False)
            ),
            "paragraphs_expected": len(expected),
            "pages_right": list(found.pages) == [*docs.PAGES, docs.TABLE_PAGE],
        }
    )
    return rows


# -- HTML ----------------------------------------------------------------------------------

BOILERPLATE = {
    "navigation": "客户端",
    "ad": "新人大礼包",
    "related links": "招商推介会",
    "comments": "带孩子去看了候鸟",
    "share bar": "QQ空间",
    "footer": "版权所有",
    "editor line": "责任编辑",
}


def news_pages() -> dict[str, str]:
    """Three layouts of the same article: classed divs (tests/make_documents.py), a <article>
    page whose comments are longer than nothing else, and a table-layout portal page with
    <br>-separated paragraphs and no semantic markup at all."""
    first = docs.report_html()
    body = "".join(f"<p>{p}</p>" for p in docs.PARAGRAPHS)
    comments = "".join(
        f"<li class='reply'><b>网友{n}</b>：鄱阳湖真美，去年冬天带孩子去看了候鸟，"
        f"希望保护得越来越好！我们还会再去的，第{n}次留言。</li>"
        for n in range(12)
    )
    second = f"""<html><head><title>{docs.TITLE}</title></head><body>
<header><a href='/'>首页</a> <a href='/app'>客户端</a></header>
<article><h1>{docs.TITLE}</h1>{body}<p class='editor'>责任编辑：张伟</p></article>
<section class='comments'><h2>评论</h2><ul>{comments}</ul></section>
<aside>相关阅读：赣江新区举办招商推介会，签约项目总投资超过三百亿元</aside>
<footer>版权所有 © 江西网 分享到 QQ空间</footer></body></html>"""
    lines = "<br><br>".join(docs.PARAGRAPHS)
    third = f"""<html><head><title>{docs.TITLE}-江西网</title></head><body>
<table width=960><tr><td><a href='/'>首页</a> | <a href='/app'>客户端</a> |
限时优惠！点击领取新人大礼包</td></tr>
<tr><td><font size=5>{docs.TITLE}</font><br>2023-12-20<br><br>{lines}<br><br>责任编辑：张伟</td>
<td width=200>相关阅读<br>赣江新区举办招商推介会，签约项目总投资超过三百亿元<br>
网友评论：鄱阳湖真美，去年冬天带孩子去看了候鸟，希望保护得越来越好！</td></tr>
<tr><td>版权所有 © 江西网 分享到 QQ空间</td></tr></table></body></html>"""
    return {"classed divs": first, "<article> + long comments": second, "table layout": third}


def old_extractor(page: str) -> str:
    try:
        return "\n".join(html.parse_html(page, "x")[1])
    except ValueError:
        return ""


def trafilatura_extractor(page: str) -> str:
    try:
        return "\n".join(html.parse_page(page, "page.html").found[0].article.paragraphs)
    except ValueError:
        return ""


EXTRACTORS = {"hand-written (before)": old_extractor, "trafilatura (qa now)": trafilatura_extractor}


def measure_html() -> list[dict]:
    rows = []
    for name, page in news_pages().items():
        for extractor, extract in EXTRACTORS.items():
            text, seconds = timed(extract, page)
            rows.append(
                {
                    "page": name,
                    "extractor": extractor,
                    "article_sentences_kept": round(recall(text, SENTENCES), 3),
                    "boilerplate_kept": sorted(k for k, v in BOILERPLATE.items() if v in text),
                    "ms": round(1000 * seconds, 1),
                }
            )
    return rows


def measure_bomb() -> list[dict]:
    rows = []
    for label, page in (
        ("80 KB: <p>x</p> + '<a' * 40000", "<p>x</p>" + "<a" * 40000),
        ("1 MB: <p>x</p> + '<a' * 500000", "<p>x</p>" + "<a" * 500000),
        ('80 KB: <p>x</p> + "<a b=\'" * 13000', "<p>x</p>" + "<a b='" * 13000),
    ):
        for extractor, extract in EXTRACTORS.items():
            _, seconds = timed(extract, page, repeat=1)
            rows.append({"input": label, "extractor": extractor, "seconds": round(seconds, 3)})
    return rows


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "readers.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        results = {
            "pdf": measure_pdf(Path(work)),
            "html": measure_html(),
            "html_bomb": measure_bomb(),
        }
    for part, rows in results.items():
        print(f"\n## {part}\n\n{table(rows)}")
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
