"""PDF, Word and web pages (issue 13), read from real files that tests/make_documents.py makes:
the same Chinese report in each format, a two-column notice, and broken PDFs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import unicodedata
from pathlib import Path

import make_documents as docs
import pytest
from conftest import HASH, run_python, write_corpus

import qa
from qa.read import limits, pdf, read_corpus
from qa.types import Article, page_runs
from ui import render
from ui.upload import save_uploads


@pytest.fixture(autouse=True)
def document_cache(tmp_path, monkeypatch) -> Path:
    """A cache of read documents of each test's own (tests change the readers' limits)."""
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "documents"


TABLE_TEXT = "\n".join(" | ".join(row) for row in docs.TABLE)
REPORT = (*docs.PARAGRAPHS, TABLE_TEXT)


def only(folder: Path) -> Article:
    corpus = read_corpus(folder)
    assert corpus.skipped == () and len(corpus.articles) == 1, corpus
    return corpus.articles[0]


@pytest.mark.parametrize("font", docs.fonts())
def test_pdf_paragraphs_are_rebuilt_from_the_layout_with_their_pages(tmp_path, font):
    docs.report_pdf(tmp_path / "report.pdf", font)
    article = only(tmp_path)
    assert article.title == docs.TITLE
    # Lines broken inside sentences joined, the running header and page numbers dropped,
    # paragraph 3 read whole across the page break, the table one row per line.
    assert article.paragraphs == REPORT
    pages = [article.page(i) for i in range(len(REPORT))]
    assert pages == [*docs.PAGES, docs.TABLE_PAGE]


def test_justified_lines_get_no_spaces_between_chinese_characters(tmp_path):
    docs.justified_pdf(tmp_path / "justified.pdf")
    article = only(tmp_path)
    assert article.paragraphs == (*docs.PARAGRAPHS[:3], docs.MIXED)


@pytest.mark.skipif("ttf" not in docs.fonts(), reason="needs fonts-wqy-microhei")
def test_pdf_that_only_forbids_copying_is_read(tmp_path):
    # Embedded font only: reportlab leaves the CID font's Registry and Ordering strings
    # unencrypted in an encrypted file, so no reader can decode its STSong-Light text.
    docs.report_pdf(tmp_path / "protected.pdf", "ttf", owner="owner-only")
    assert only(tmp_path).paragraphs == REPORT


def test_pdf_whose_fonts_give_no_characters_is_skipped_saying_so(tmp_path):
    docs.report_pdf(tmp_path / "glyphs.pdf", "cid", owner="owner-only")  # see above
    (line,) = read_corpus(tmp_path).skipped
    assert line.startswith("glyphs.pdf: its text cannot be decoded")


def test_a_pdf_whose_characters_are_mostly_lost_is_skipped_and_the_rest_indexed(tmp_path):
    # Digits and punctuation decoded, every letter lost: "1115, 900, 6697." is no article.
    corpus = write_corpus(tmp_path / "corpus")
    docs.lost_glyphs_pdf(corpus / "tofu.pdf", docs.MOSTLY_LOST)
    stats = qa.build(corpus, tmp_path / "index", HASH)
    (line,) = stats.skipped
    assert line.startswith("tofu.pdf: its text cannot be decoded (15 of 28 characters")
    assert stats.articles == 4


def test_a_glyph_without_a_character_is_never_joined_into_a_number(tmp_path):
    # The line reads 9(cid:129)00 and 6(cid:130)97 to pdfminer.six: not 900 and 697.
    docs.lost_glyphs_pdf(tmp_path / "lost.pdf", docs.LOST_GLYPH_NUMBERS)
    corpus = read_corpus(tmp_path)
    (text,) = corpus.articles[0].paragraphs
    assert text == "Users passed 9\ufffd00 in 2019 and it offers 6\ufffd97 services."
    note = "lost.pdf: 2 glyph(s) without a character on page(s) 1 shown as \ufffd"
    assert corpus.notes == (note,)


def test_a_paragraph_made_mostly_of_lost_glyphs_is_left_out_and_noted(tmp_path):
    kept = b"It passed 900 users in 2019 and offers 6697 services!"
    lost = b" ".join([bytes(range(0x81, 0x89))] * 5) + b" 12."  # 40 glyphs lost, then "12."
    docs.lost_glyphs_pdf(tmp_path / "part.pdf", kept, lost)
    corpus = read_corpus(tmp_path)
    assert corpus.articles[0].paragraphs == (kept.decode(),)
    assert corpus.notes == (
        "part.pdf: 40 glyph(s) without a character on page(s) 1 shown as \ufffd; "
        "1 paragraph(s) made mostly of them were not read",
    )


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # Kangxi radicals (U+2F00-U+2FDF), as Chromium prints 一, 目, 用, 户
        (["上线⼀周年⽬前已突破900万⽤⼾"], ["上线一周年目前已突破900万用户"]),
        # ⼾ is 戶 in Unicode's tables: 户 in simplified text, 戶 in traditional
        (["用⼾數量達到九百萬，這個應用"], ["用戶數量達到九百萬，這個應用"]),
        # CJK Radicals Supplement, which NFKC leaves as they are, in either script
        (["⻓江⼤桥的⻔⻛⻋"], ["长江大桥的门风车"]),
        (["⻓江⼤橋的⻔⻛⻋，這個應用"], ["長江大橋的門風車，這個應用"]),
        # a compatibility ideograph (U+F92C) and ligatures
        (["\uf92c君的 ﬁle ﬂow"], ["郎君的 file flow"]),
        # the layout's spaces around a number between Chinese characters, not beside a word
        (["第 3 季度突破 900 万，增长 12.5%。"], ["第3季度突破900万，增长12.5%。"]),
        (["2023 年", "新版 Python 3.11 的 asyncio"], ["2023年", "新版 Python 3.11 的 asyncio"]),
        # full-width punctuation, digits and spaces are the document's own
        (["（一）全角：，；！？　１２３"], ["（一）全角：，；！？　１２３"]),
    ],
)
def test_radicals_ligatures_and_layout_spaces_are_read_as_the_text_means(lines, expected):
    assert pdf.normalise_lines(lines) == expected


@pytest.mark.slow
def test_radicals_stand_for_the_simplified_form_opencc_gives():
    from opencc import OpenCC

    t2s = OpenCC("t2s")
    for code in range(0x2E80, 0x2FE0):
        radical = chr(code)
        if not unicodedata.name(radical, ""):
            continue
        (read,) = pdf.normalise_lines([radical])
        equivalent = pdf._RADICAL_IDEOGRAPH.get(radical)
        equivalent = equivalent or unicodedata.normalize("NFKC", radical)
        assert read == t2s.convert(equivalent), (radical, read)


@pytest.fixture(scope="module")
def chromium_sample(tmp_path_factory) -> Path:
    """A folder holding the sample article as headless Chromium prints it to PDF."""
    if not docs.CHROMIUM.exists():
        pytest.skip(f"no Chromium at {docs.CHROMIUM} (apt-get install chromium)")
    corpus = tmp_path_factory.mktemp("chromium") / "corpus"
    corpus.mkdir()
    page = docs.sample_html(corpus.parent / "article.html")
    docs.chromium_pdf(page, corpus / "article.pdf")
    return corpus


@pytest.mark.browser
def test_a_pdf_printed_by_chromium_is_cited_in_plain_characters_with_its_page(
    tmp_path, chromium_sample
):
    corpus = chromium_sample
    stats = qa.build(corpus, tmp_path / "index", HASH)
    assert stats.skipped == () and stats.articles == 1
    bot = qa.load(tmp_path / "index", HASH)
    first = bot.ask("赣服通集成了多少项服务?").citations[0]
    assert "6697项服务" in first.sentence
    # ⼀⽬⽤⼾ (Kangxi radicals) read as 一目用户: the sentence is what a reader typed
    assert first.sentence == unicodedata.normalize("NFKC", first.sentence)
    assert "突破900万用户" in first.sentence
    assert first.page == 1
    users = bot.ask("赣服通突破了多少万用户?")
    assert any("900万用户" in c.sentence for c in users.citations), users


@pytest.mark.browser
def test_a_title_set_over_two_lines_is_the_title_not_a_paragraph(chromium_sample):
    (article,) = read_corpus(chromium_sample).articles
    assert article.title == "「赣服通」上线一周年:数字政务服务的“中部崛起”"
    # Its second line, 起”, was the article's first paragraph.
    assert article.paragraphs[0].startswith("李克强总理11月15日上午")


@pytest.mark.browser
def test_a_pdf_printed_without_chinese_fonts_is_skipped_and_the_rest_indexed(tmp_path):
    if not docs.CHROMIUM.exists() or not docs.NO_CJK_FONTS.is_dir():
        pytest.skip(f"needs Chromium at {docs.CHROMIUM} and fonts in {docs.NO_CJK_FONTS}")
    corpus = write_corpus(tmp_path / "corpus")
    page = docs.sample_html(tmp_path / "article.html")
    docs.chromium_pdf(page, corpus / "tofu.pdf", cjk_fonts=False)
    stats = qa.build(corpus, tmp_path / "index", HASH)
    (line,) = stats.skipped
    assert line.startswith("tofu.pdf: its text cannot be decoded (")
    assert stats.articles == 4


@pytest.mark.parametrize("font", docs.fonts())
def test_two_columns_are_read_one_after_the_other(tmp_path, font):
    docs.columns_pdf(tmp_path / "notice.pdf", font)
    article = only(tmp_path)
    body = [p for column in docs.COLUMNS for p in column]
    assert article.paragraphs[-len(body) :] == tuple(body)
    assert docs.COLUMNS_TITLE in article.paragraphs
    assert all(article.page(i) == 1 for i in range(len(article.paragraphs)))


def test_docx_title_paragraphs_and_table_without_header_and_footer(tmp_path):
    docs.report_docx(tmp_path / "report.docx")
    article = only(tmp_path)
    assert article.title == docs.TITLE
    assert article.paragraphs == REPORT
    assert article.page(0) is None
    assert not any(docs.HEADER in p or "第 1 页" in p for p in article.paragraphs)


def test_docx_without_title_property_takes_its_first_heading(tmp_path):
    import docx

    document = docx.Document()
    document.add_paragraph("正文之前的一行。")
    document.add_heading("第一个标题", level=2)
    document.add_paragraph("正文。")
    document.save(str(tmp_path / "a.docx"))
    article = only(tmp_path)
    assert article.title == "第一个标题"
    assert article.paragraphs == ("正文之前的一行。", "第一个标题", "正文。")


def test_news_page_keeps_the_article_and_drops_the_rest(tmp_path):
    docs.report_html(tmp_path / "news.html")
    article = only(tmp_path)
    assert article.title == docs.TITLE
    assert article.paragraphs == REPORT  # no menu, ad, share bar, related links, comments
    assert dict(article.metadata) == {"date": "2023-12-20", "url": docs.NEWS_URL}
    assert article.url == docs.NEWS_URL and article.page(0) is None


def test_a_javascript_url_is_never_kept_or_linked(tmp_path):
    page = docs.report_html().replace(docs.NEWS_URL, "javascript:alert(1)")
    (tmp_path / "news.html").write_text(page, encoding="utf-8")
    assert "url" not in dict(only(tmp_path).metadata)
    assert render.source_link("javascript:alert(1)") == ""
    link = render.source_link('https://a.example/?q="><script>')
    assert 'href="https://a.example/?q=&quot;&gt;&lt;script&gt;"' in link and "<script>" not in link


BROKEN = {
    "scan.pdf": "no text layer",
    "locked.pdf": "encrypted",
    "cut.pdf": "truncated",
    "empty.docx": "not a readable .docx",
}


def broken_corpus(folder: Path) -> Path:
    write_corpus(folder)
    docs.scanned_pdf(folder / "scan.pdf")
    docs.report_pdf(folder / "locked.pdf", encrypt="口令")
    docs.truncated_pdf(folder / "cut.pdf")
    docs.report_docx(folder / "whole.docx")
    (folder / "empty.docx").write_bytes((folder / "whole.docx").read_bytes()[:3000])
    docs.report_pdf(folder / "report.pdf")
    return folder


def test_scanned_encrypted_and_truncated_files_are_skipped_in_one_line_each(tmp_path):
    corpus = read_corpus(broken_corpus(tmp_path))
    assert len(corpus.skipped) == len(BROKEN)
    for line in corpus.skipped:
        name = line.split(":")[0]
        assert BROKEN[name] in line and "\n" not in line
    ids = {a.id for a in corpus.articles}
    assert {"report.pdf", "whole.docx", "ganfutong.txt"} <= ids


def test_scanned_pages_of_a_readable_pdf_are_named_in_a_note(tmp_path):
    docs.scanned_pdf(tmp_path / "annex.pdf", text_pages=2)
    corpus = read_corpus(tmp_path)
    assert [a.id for a in corpus.articles] == ["annex.pdf"] and corpus.skipped == ()
    assert corpus.articles[0].paragraphs == (docs.PARAGRAPHS[1], docs.PARAGRAPHS[2])
    assert corpus.notes == (
        "annex.pdf: page(s) 3, 4 of 4 have no text layer (scanned?) and were not read",
    )


def test_build_cites_the_pdf_page_and_the_app_shows_it(tmp_path):
    corpus = broken_corpus(tmp_path / "corpus")
    stats = qa.build(corpus, tmp_path / "index", HASH)
    assert len(stats.skipped) == len(BROKEN)
    bot = qa.load(tmp_path / "index", HASH)
    answer = bot.ask("保护区内观测到的白鹤数量超过多少只?")
    cited = [c for c in answer.citations if docs.ANSWER_FRAGMENT in c.sentence]
    assert cited, answer
    for c in cited:
        expected = docs.ANSWER_PAGE if c.article_id.endswith(".pdf") else None
        assert c.page == expected
    pdf = next(c for c in cited if c.article_id == "report.pdf")
    n = answer.citations.index(pdf) + 1
    card = render.source_card(answer, n, pdf, bot.paragraph(pdf.article_id, pdf.paragraph), None, 1)
    assert f"第{docs.ANSWER_PAGE}页" in card and f"第{pdf.paragraph + 1}段" in card
    assert any(p.page == docs.ANSWER_PAGE for p in answer.passages if p.article_id == "report.pdf")


def test_cli_names_the_page_of_a_pdf_citation(tmp_path, capsys):
    from qa import cli

    corpus = write_corpus(tmp_path / "corpus")
    docs.report_pdf(corpus / "report.pdf")
    index = str(tmp_path / "index")
    assert cli.main(["build", "--corpus", str(corpus), "--index", index, "--model", "hash"]) == 0
    capsys.readouterr()
    assert cli.main(["ask", "--index", index, "保护区内观测到的白鹤数量超过多少只?"]) == 0
    out = capsys.readouterr().out
    assert f"report.pdf, 第{docs.ANSWER_PAGE}页 第" in out


@pytest.mark.milvus
def test_milvus_index_keeps_the_pages_too(tmp_path):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from qa.stores.milvus import release

    corpus = write_corpus(tmp_path / "corpus")
    docs.report_pdf(corpus / "report.pdf")
    uri = f"milvus://{tmp_path}/index.db"
    try:
        qa.build(corpus, uri, HASH)
        answer = qa.load(uri, HASH).ask("保护区内观测到的白鹤数量超过多少只?")
    finally:
        release(uri)
    pdf = [c for c in answer.citations if c.article_id == "report.pdf"]
    assert [c.page for c in pdf if docs.ANSWER_FRAGMENT in c.sentence] == [docs.ANSWER_PAGE]


def test_a_changed_pdf_is_noticed_by_the_next_build(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    docs.report_pdf(corpus / "report.pdf")
    qa.build(corpus, tmp_path / "index", HASH)
    docs.columns_pdf(corpus / "report.pdf")  # the same name, other content
    stats = qa.build(corpus, tmp_path / "index", HASH)
    assert (stats.changed, stats.unchanged) == (1, 4)


def test_long_pdf_reports_progress_page_by_page(tmp_path, monkeypatch):
    docs.filler_report_pdf(tmp_path / "long.pdf")
    monkeypatch.setattr(limits, "PROGRESS_PAGES", 5)
    heard = []
    read_corpus(tmp_path, lambda what, done, total: heard.append((what, done, total)))
    assert heard[0] == ("reading long.pdf", 0, 12) and heard[-1] == ("reading long.pdf", 12, 12)


def test_pdf_over_the_page_limit_is_skipped(tmp_path, monkeypatch):
    docs.filler_report_pdf(tmp_path / "long.pdf")
    monkeypatch.setattr(limits, "MAX_PAGES", 10)
    corpus = read_corpus(tmp_path)
    assert corpus.skipped == ("long.pdf: more than 10 pages: split it",)


def test_pdf_that_takes_too_long_is_skipped_and_read_again_next_time(tmp_path, monkeypatch):
    docs.report_pdf(tmp_path / "slow.pdf")
    monkeypatch.setattr(limits, "MAX_READ_SECONDS", -1.0)
    (line,) = read_corpus(tmp_path).skipped
    assert line.startswith("slow.pdf: still not read after -1 s (page 1 of 3)")
    monkeypatch.setattr(limits, "MAX_READ_SECONDS", 300.0)
    assert [a.id for a in read_corpus(tmp_path).articles] == ["slow.pdf"]


def test_uploads_accept_pdf_and_docx_and_refuse_an_encrypted_pdf(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    docs.report_pdf(source / "report.pdf")
    docs.report_docx(source / "report.docx")
    docs.report_pdf(source / "locked.pdf", encrypt="x")
    corpus = tmp_path / "corpus"
    names = ("report.pdf", "report.docx", "locked.pdf")
    result = save_uploads([(source / n, n) for n in names], corpus)
    assert [p.name for p in result.saved] == ["report.pdf", "report.docx"]
    assert len(result.rejected) == 1 and "locked.pdf" in result.rejected[0]
    assert "encrypted" in result.rejected[0]


def test_page_runs_round_trip():
    pages = (1, 1, 2, 2, 2, 4, 5)
    article = Article("a.pdf", "a", ("x",) * 7, metadata=(("pages", page_runs(pages)),))
    assert page_runs(pages) == "0:1 2:2 5:4 6:5"
    assert tuple(article.page(i) for i in range(7)) == pages
    assert Article("a.txt", "a", ("x",)).page(0) is None


TIMED_READ = """
import json, re, sys, time
from pathlib import Path
from qa.read import read_corpus
began = time.perf_counter()
corpus = read_corpus(Path(sys.argv[1]))
print(json.dumps({
    "seconds": time.perf_counter() - began,
    "skipped": list(corpus.skipped),
    "ids": [a.id for a in corpus.articles],
}))
"""


def test_the_html_bomb_is_read_in_seconds_with_the_rest(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "bomb.html").write_text("<p>x</p>" + "<a" * 40000, encoding="utf-8")
    docs.report_html(corpus / "news.html")
    run = run_python(TIMED_READ, str(corpus), timeout=60)
    assert run["seconds"] < 5, run  # generous: milliseconds here (benchmarks/readers.py)
    assert {"bomb.html", "news.html", "ganfutong.txt"} <= set(run["ids"])


# -- the same article in three formats, the real model ------------------------------------


@pytest.mark.model
def test_pdf_docx_and_html_versions_answer_with_the_same_sentence(tmp_path):
    makers = {
        "report.pdf": docs.report_pdf,
        "report.docx": docs.report_docx,
        "report.html": docs.report_html,
    }
    settings = qa.Settings(progress=False)
    cited = {}
    for name, make in makers.items():
        corpus = write_corpus(tmp_path / name / "corpus")
        make(corpus / name)
        qa.build(corpus, tmp_path / name / "index", settings)
        answer = qa.load(tmp_path / name / "index", settings).ask(docs.QUESTION)
        assert answer.found, (name, answer)
        first = answer.citations[0]
        assert first.article_id == name and docs.ANSWER_FRAGMENT in first.sentence, answer
        cited[name] = (first.sentence, first.page)
    assert len({sentence for sentence, _ in cited.values()}) == 1, cited
    pages = {name: page for name, (_, page) in cited.items()}
    assert pages == {"report.pdf": docs.ANSWER_PAGE, "report.docx": None, "report.html": None}
    print(json.dumps(cited, ensure_ascii=False))


def test_a_document_read_once_is_not_parsed_again_until_it_changes(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_pdf(corpus / "report.pdf")
    docs.scanned_pdf(corpus / "scan.pdf")
    first = read_corpus(corpus)
    parsed = []
    real = pdf.read_pdf
    monkeypatch.setattr(pdf, "read_pdf", lambda *a: parsed.append(a[0].name) or real(*a))
    assert read_corpus(corpus) == first and parsed == []  # the scan's refusal is kept too
    docs.columns_pdf(corpus / "report.pdf")
    changed = read_corpus(corpus)
    assert parsed == ["report.pdf"] and changed.articles != first.articles


# A page is read whole by pdfminer.six: a limit checked between pages cannot stop it.
HOSTILE_READ = r"""
import json, re, sys, time
from pathlib import Path
from qa.read import limits, read_corpus
limits.MAX_READ_SECONDS = float(sys.argv[2])
began = time.monotonic()
corpus = read_corpus(Path(sys.argv[1]))
print(json.dumps({
    "seconds": time.monotonic() - began,
    # This process's peak (getrusage would also count the pytest process it was forked from).
    "rss_mb": int(re.search(r"VmHWM:\s*(\d+)", open("/proc/self/status").read())[1]) // 1024,
    "ids": [a.id for a in corpus.articles],
    "skipped": list(corpus.skipped),
}))
"""


@pytest.mark.slow
def test_a_pdf_page_that_inflates_to_gigabytes_is_skipped_without_the_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    docs.inflating_pdf(tmp_path / "bomb.pdf", 2500)  # 2.5 MB on disk
    (tmp_path / "ok.txt").write_text("标题\n\n正文。", encoding="utf-8")
    run = run_python(HOSTILE_READ, str(tmp_path), "300", timeout=300)
    assert run["ids"] == ["ok.txt"], run
    (line,) = run["skipped"]
    assert line.startswith("bomb.pdf: ") and "memory" in line, run
    assert run["rss_mb"] < 1000, run  # it took 4 GB per 2 GB inflated


@pytest.mark.slow
def test_a_pdf_page_with_millions_of_operators_is_stopped_by_the_time_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    docs.operator_flood_pdf(tmp_path / "flood.pdf", 8_000_000)  # 3 minutes to interpret
    (tmp_path / "ok.txt").write_text("标题\n\n正文。", encoding="utf-8")
    run = run_python(HOSTILE_READ, str(tmp_path), "5", timeout=300)
    assert run["ids"] == ["ok.txt"], run
    (line,) = run["skipped"]
    assert line.startswith("flood.pdf: still not read after 5 s"), run
    assert run["seconds"] < 60, run  # generous: the limit is 5 s


@pytest.mark.slow
def test_a_docx_part_that_inflates_past_its_declared_size_is_skipped_without_the_memory(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    docs.inflating_docx(tmp_path / "bomb.docx", 1024)  # 1 MB on disk, claims 20 KB unpacked
    (tmp_path / "ok.txt").write_text("标题\n\n正文。", encoding="utf-8")
    run = run_python(HOSTILE_READ, str(tmp_path), "300", timeout=300)
    assert run["ids"] == ["ok.txt"], run
    (line,) = run["skipped"]
    assert line.startswith("bomb.docx: "), run
    assert run["rss_mb"] < 1000, run  # python-docx took 2.1 GB for it


@pytest.mark.parametrize(
    ("member", "entity"),
    [
        ("word/document.xml", '<!ENTITY x SYSTEM "file:///etc/passwd">'),
        ("docProps/core.xml", '<!ENTITY x SYSTEM "file:///etc/passwd">'),
        (
            "word/document.xml",
            '<!ENTITY a "haha">'
            + "".join(
                f'<!ENTITY {b} "{("&" + a + ";") * 10}">'
                for a, b in zip("abcdefgh", "bcdefghi", strict=True)
            ),
        ),
    ],
)
def test_docx_entities_are_never_expanded_from_files_or_exponentially(tmp_path, member, entity):
    import zipfile

    base = docs.report_docx(tmp_path / "base.docx")
    last = entity.rsplit("<!ENTITY ", 1)[1].split()[0]
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(tmp_path / "x.docx", "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == member:
                head, rest = data.split(b"?>", 1)
                root = rest.split(b"<", 2)[1].split()[0].decode()
                target = docs.PARAGRAPHS[0][:4] if "document" in member else docs.TITLE
                rest = rest.replace(target.encode(), f"&{last};".encode(), 1)
                data = head + f"?><!DOCTYPE {root} [{entity}]>".encode() + rest
            dst.writestr(info.filename, data)
    base.unlink()
    corpus = read_corpus(tmp_path)
    text = " ".join(a.title + " ".join(a.paragraphs) for a in corpus.articles)
    assert "root:" not in text and "hahahaha" not in text, corpus


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "not utf-8",
        "paragraphs a string",
        "error not a string",
        "pages of another length",
        "a list",
        "names another file",
    ],
)
def test_a_damaged_cache_entry_is_read_again_never_served(tmp_path, document_cache, damage):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_docx(corpus / "report.docx")
    first = read_corpus(corpus)
    (entry,) = document_cache.glob("*.json")
    kept = json.loads(entry.read_text(encoding="utf-8"))
    damaged = {
        "truncated": entry.read_bytes()[:40],
        "not utf-8": b"\xff\xfe\x00garbage",
        "paragraphs a string": json.dumps({**kept, "paragraphs": "一二三"}).encode(),
        "error not a string": json.dumps({"sha256": kept["sha256"], "error": 5}).encode(),
        "pages of another length": json.dumps({**kept, "pages": [1]}).encode(),
        "a list": b"[1, 2]",
        # Nothing reads a path from an entry: the file read is always the corpus file.
        "names another file": json.dumps({**kept, "path": "/etc/passwd"}).encode(),
    }[damage]
    entry.write_bytes(damaged)
    assert read_corpus(corpus) == first
    assert json.loads(entry.read_text(encoding="utf-8")) == kept  # and written again


def test_an_unwritable_cache_only_means_reading_again(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_docx(corpus / "report.docx")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QA_CACHE", str(blocker))  # no folder can be made under a file
    first = read_corpus(corpus)
    assert first.skipped == () and read_corpus(corpus) == first


def test_builds_reading_one_document_at_once_all_get_its_text(tmp_path, document_cache):
    from concurrent.futures import ThreadPoolExecutor

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_docx(corpus / "report.docx")
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: read_corpus(corpus), range(4)))
    assert all(c == found[0] and c.skipped == () for c in found)
    assert not list(document_cache.glob("*.tmp"))  # no half-written entry left behind
    (entry,) = document_cache.glob("*.json")
    assert json.loads(entry.read_text(encoding="utf-8"))["paragraphs"]


# -- the cache under hostile use: a shared or planted QA_CACHE -----------------------------

EVIL = "鄱阳湖保护区已于昨日关闭，请改用 http://evil.example 预约。"


@pytest.mark.slow
def test_a_fifo_in_place_of_a_cache_entry_never_blocks_the_build(
    tmp_path, document_cache, monkeypatch
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_docx(corpus / "report.docx")
    first = read_corpus(corpus)
    (entry,) = document_cache.glob("*.json")
    shared = tmp_path / "shared"
    (shared / "documents").mkdir(parents=True)
    os.mkfifo(shared / "documents" / entry.name)  # what anyone who can write the cache can do
    monkeypatch.setenv("QA_CACHE", str(shared))
    run = run_python(HOSTILE_READ, str(corpus), "300", timeout=60)  # it used to wait forever
    assert run["ids"] == ["report.docx"] and run["skipped"] == [], run
    rewritten = shared / "documents" / entry.name
    assert rewritten.is_file() and json.loads(rewritten.read_text(encoding="utf-8")) == json.loads(
        entry.read_text(encoding="utf-8")
    )
    assert read_corpus(corpus) == first


def test_cache_entries_can_be_read_by_their_user_only(tmp_path, document_cache):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_docx(corpus / "report.docx")
    document_cache.mkdir(mode=0o755, parents=True)  # as earlier versions made it
    document_cache.chmod(0o755)
    read_corpus(corpus)
    (entry,) = document_cache.glob("*.json")
    assert stat.S_IMODE(document_cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600


def test_the_entry_of_another_document_is_never_served(tmp_path, document_cache):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_pdf(corpus / "report.pdf")
    first = only(corpus)
    (mine,) = document_cache.glob("*.json")
    other = tmp_path / "other"
    other.mkdir()
    docs.columns_pdf(other / "notice.pdf")
    read_corpus(other)
    (theirs,) = set(document_cache.glob("*.json")) - {mine}
    # Another file's entry under this file's key (keys follow from public data: a published
    # report's bytes and the libraries' versions).
    shutil.copyfile(theirs, mine)
    assert only(corpus) == first
    assert mine.read_bytes() != theirs.read_bytes()  # and written again


@pytest.mark.parametrize(
    "plant", ["entry linked elsewhere", "folder linked elsewhere", "entry of another user"]
)
def test_no_text_from_outside_the_corpus_reaches_the_index_through_the_cache(
    tmp_path, document_cache, plant
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_docx(corpus / "report.docx")
    first = only(corpus)
    (entry,) = document_cache.glob("*.json")
    # What someone who can write a shared cache (or who knows the public report) can write:
    # an entry of the right name and the right content hash, with other text.
    evil = {**json.loads(entry.read_text(encoding="utf-8")), "paragraphs": [EVIL]}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / entry.name).write_text(json.dumps(evil, ensure_ascii=False), encoding="utf-8")
    if plant == "entry linked elsewhere":
        entry.unlink()
        entry.symlink_to(elsewhere / entry.name)
    elif plant == "folder linked elsewhere":
        shutil.rmtree(document_cache)
        document_cache.symlink_to(elsewhere)
    else:
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to another user")
        shutil.copyfile(elsewhere / entry.name, entry)
        os.chown(entry, 65534, 65534)  # nobody
    planted = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    assert only(corpus) == first
    # Nothing read from there, nothing written there.
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == planted


@pytest.mark.slow
def test_two_build_processes_sharing_the_cache_both_get_the_text(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs.report_docx(corpus / "report.docx")
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    builds = [
        subprocess.Popen(
            [sys.executable, "-c", HOSTILE_READ, str(corpus), "300"],
            stdout=subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    runs = [json.loads(b.communicate(timeout=120)[0].splitlines()[-1]) for b in builds]
    assert all(r["ids"] == ["report.docx"] and r["skipped"] == [] for r in runs), runs
    folder = tmp_path / "cache" / "documents"
    (entry,) = folder.iterdir()  # one entry, no temporary file left behind
    assert entry.suffix == ".json" and json.loads(entry.read_text(encoding="utf-8"))["paragraphs"]


def test_empty_and_misnamed_documents_each_get_their_own_reason(tmp_path):
    (tmp_path / "empty.docx").write_bytes(b"")
    (tmp_path / "empty.pdf").write_bytes(b"")  # the same bytes: once served the .docx reason
    (tmp_path / "page.pdf").write_text("<!DOCTYPE html><html><p>正文。</p></html>")
    assert read_corpus(tmp_path).skipped == (
        "empty.docx: empty file (0 bytes)",
        "empty.pdf: empty file (0 bytes)",
        "page.pdf: not a PDF but a web page (HTML): save it as .html",
    )
