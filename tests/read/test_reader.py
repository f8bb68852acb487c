"""Reading a corpus folder: formats, titles, paragraphs, encodings and bad input."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from conftest import HASH

import qa
from qa.errors import EmptyCorpusError, IndexNotFoundError
from qa.read import UnreadableFileError, read_corpus, read_file

SIMPLIFIED = "长江是中国第一长河，全长约六千三百公里。"
TRADITIONAL = "臺灣的繁體中文使用大五碼編碼，我們今天討論問答系統。"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def only_article(root: Path):
    corpus = read_corpus(root)
    assert corpus.skipped == ()
    assert len(corpus.articles) == 1
    return corpus.articles[0]


# --- .txt and .md --------------------------------------------------------------------------


def test_markdown_heading_is_title_and_blank_lines_separate_paragraphs(tmp_path):
    write(tmp_path / "river.txt", f"## 长江简介\n\n{SIMPLIFIED}\n\n它流经十一个省区市。\n")
    article = only_article(tmp_path)
    assert (article.id, article.source) == ("river.txt", "river.txt")
    assert article.title == "长江简介"
    assert article.paragraphs == (SIMPLIFIED, "它流经十一个省区市。")


def test_short_first_line_is_title(tmp_path):
    write(tmp_path / "a.txt", f"长江\n{SIMPLIFIED}\n")
    article = only_article(tmp_path)
    assert article.title == "长江"
    assert article.paragraphs == (SIMPLIFIED,)


@pytest.mark.parametrize(
    "first_line",
    [
        "长江很长。",
        "长江很长，",
        "这是一个非常非常长的第一行文字，它超过了四十个字符所以不能算作标题而是正文的一部分呢",
    ],
)
def test_sentence_like_first_line_is_text_and_title_is_file_name(tmp_path, first_line):
    write(tmp_path / "长江介绍.txt", f"{first_line}\n\n{SIMPLIFIED}")
    article = only_article(tmp_path)
    assert article.title == "长江介绍"
    assert article.paragraphs == (first_line, SIMPLIFIED)


def test_single_short_line_is_text_not_title(tmp_path):
    write(tmp_path / "note.txt", "长江")
    article = only_article(tmp_path)
    assert (article.title, article.paragraphs) == ("note", ("长江",))


def test_each_line_is_a_paragraph_when_there_are_no_blank_lines(tmp_path):
    write(tmp_path / "a.txt", "\n第一句话。\n第二句话。\n第三句话。\n\n")
    assert only_article(tmp_path).paragraphs == ("第一句话。", "第二句话。", "第三句话。")


def test_block_of_several_lines_stays_one_paragraph(tmp_path):
    write(tmp_path / "a.txt", "第一行。\n第二行。\n \t\n　　第三段。  \n")
    assert only_article(tmp_path).paragraphs == ("第一行。\n第二行。", "第三段。")


def test_text_kept_exactly_apart_from_normalisation(tmp_path):
    body = 'Python 3.11 版本, 支持 (括号) 和 "引号"; 空格  保留\t制表符'
    write(tmp_path / "a.txt", f"{body}\r\n\r\n第二段\x07响铃\x1b[0m\rand CR")
    article = only_article(tmp_path)
    assert article.paragraphs == (body, "第二段响铃[0m\nand CR")


def test_markdown_marks_are_stripped(tmp_path):
    text = (
        "# 标题\n\n## 第一节\n\n> 引用的话\n>\n> 第二段引用\n\n"
        "- 甲\n- 乙\n\n---\n\n* 丙\n\n-5度很冷。"
    )
    write(tmp_path / "a.md", text)
    article = only_article(tmp_path)
    assert article.title == "标题"
    assert article.paragraphs == ("第一节", "引用的话", "第二段引用", "甲\n乙", "丙", "-5度很冷。")


# --- encodings and bad files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom", "title", "text"),
    [
        ("utf-8", b"", "标题", SIMPLIFIED),
        ("utf-8", b"\xef\xbb\xbf", "标题", SIMPLIFIED),
        ("utf-16-le", b"\xff\xfe", "标题", SIMPLIFIED),
        ("utf-16-be", b"\xfe\xff", "标题", SIMPLIFIED),
        ("gb18030", b"", "标题", SIMPLIFIED),
        ("gbk", b"", "標題", TRADITIONAL),  # GBK also holds traditional characters
        ("big5", b"", "標題", TRADITIONAL),
    ],
)
def test_encodings_are_detected(tmp_path, encoding, bom, title, text):
    (tmp_path / "a.txt").write_bytes(bom + f"{title}\r\n\r\n{text}\r\n".encode(encoding))
    article = only_article(tmp_path)
    assert (article.title, article.paragraphs) == (title, (text,))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
        (bytes(range(1, 9)) * 20 + b"ab", "binary"),
        (b"\xff\xfe\x00\xd8", "UTF-16"),
        (bytes([0x80, 0xFF, 0x80, 0xFF]), "not text in UTF-8, GB18030 or Big5"),
        (b"", "empty"),
        ("# 只有标题\n\n".encode(), "only a title"),
        (" \n\t\r\n\u3000".encode(), "empty"),
    ],
)
def test_unreadable_files_are_skipped_with_reason(tmp_path, content, reason):
    (tmp_path / "bad.txt").write_bytes(content)
    write(tmp_path / "good.txt", SIMPLIFIED)
    corpus = read_corpus(tmp_path)
    assert [a.id for a in corpus.articles] == ["good.txt"]
    assert len(corpus.skipped) == 1
    assert corpus.skipped[0].startswith("bad.txt: ")
    assert reason in corpus.skipped[0]


def test_read_file_raises_for_binary_file(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"abc\x00def")
    with pytest.raises(UnreadableFileError, match="data.txt.*binary"):
        read_file(path, tmp_path)
    with pytest.raises(ValueError):
        read_file(path, tmp_path)


def test_skips_are_logged(tmp_path, caplog):
    write(tmp_path / "empty.md", "")
    with caplog.at_level(logging.WARNING, logger="qa"):
        corpus = read_corpus(tmp_path)
    assert corpus.skipped == ("empty.md: empty",)
    assert "empty.md: empty" in caplog.text


# --- JSON and JSONL -----------------------------------------------------------------------


def test_jsonl_keeps_good_lines_and_reports_bad_ones_by_line(tmp_path):
    lines = [
        json.dumps({"id": "a1", "title": "长江", "text": SIMPLIFIED}, ensure_ascii=False),
        "{not json",
        "",
        json.dumps({"id": "a2", "title": "无正文"}, ensure_ascii=False),
        "[1, 2]",
        json.dumps({"text": "黄河是中国第二长河。"}, ensure_ascii=False),
    ]
    write(tmp_path / "news.jsonl", "\n".join(lines))
    corpus = read_corpus(tmp_path)
    assert [(a.id, a.title) for a in corpus.articles] == [
        ("a1", "长江"),
        ("news.jsonl#6", "news.jsonl#6"),
    ]
    assert corpus.articles[0].source == "news.jsonl"
    assert corpus.articles[1].paragraphs == ("黄河是中国第二长河。",)
    assert corpus.skipped[0] == "news.jsonl line 2: not valid JSON"
    assert corpus.skipped[1].startswith("news.jsonl line 4: no text")
    assert corpus.skipped[2] == "news.jsonl line 5: not a JSON object"
    assert len(corpus.skipped) == 3


def test_json_paragraph_list_order_and_metadata_kept(tmp_path):
    record = {
        "url": "https://example.cn/1",
        "paragraphs": ["第三。", "", "第一。", "  第二。  "],
        "id": 7,
        "date": "2019-11-16",
        "title": "顺序",
        "source": "新华社",
    }
    write(tmp_path / "one.json", json.dumps(record, ensure_ascii=False))
    article = only_article(tmp_path)
    assert (article.id, article.title, article.source) == ("7", "顺序", "one.json")
    assert article.paragraphs == ("第三。", "第一。", "第二。")
    assert article.metadata == (
        ("date", "2019-11-16"),
        ("source", "新华社"),
        ("url", "https://example.cn/1"),
    )


@pytest.mark.parametrize("wrap", [lambda items: items, lambda items: {"articles": items}])
def test_json_list_of_articles(tmp_path, wrap):
    items = [
        {"id": "b", "text": f"{SIMPLIFIED}\n\n第二段。"},
        {"title": "没有编号", "text": "第一行\n第二行"},
        "不是对象",
    ]
    write(tmp_path / "list.json", json.dumps(wrap(items), ensure_ascii=False))
    corpus = read_corpus(tmp_path)
    by_id = {a.id: a for a in corpus.articles}
    assert by_id["b"].paragraphs == (SIMPLIFIED, "第二段。")
    assert by_id["b"].title == "b"
    assert by_id["list.json#2"].paragraphs == ("第一行", "第二行")
    assert corpus.skipped == ("list.json item 3: not a JSON object",)


def test_broken_json_file_is_skipped(tmp_path):
    write(tmp_path / "broken.json", '{"id": "x", "text": ')
    corpus = read_corpus(tmp_path)
    assert corpus.articles == ()
    assert corpus.skipped[0].startswith("broken.json: not valid JSON")


def test_same_id_in_two_files_keeps_both_apart_under_their_file(tmp_path):
    write(tmp_path / "a.jsonl", json.dumps({"id": "x", "text": "第一篇。"}, ensure_ascii=False))
    write(tmp_path / "b.jsonl", json.dumps({"id": "x", "text": "第二篇。"}, ensure_ascii=False))
    corpus = read_corpus(tmp_path)
    assert [(a.id, a.paragraphs) for a in corpus.articles] == [
        ("a.jsonl/x", ("第一篇。",)),
        ("b.jsonl/x", ("第二篇。",)),
    ]
    assert corpus.skipped == ()
    assert corpus.notes == (
        "a.jsonl line 1: id 'x' is also the id of another article; indexed as 'a.jsonl/x'",
        "b.jsonl line 1: id 'x' is also the id of another article; indexed as 'b.jsonl/x'",
    )


def test_duplicate_ids_in_one_file_keep_the_first(tmp_path):
    lines = [json.dumps({"id": "x", "text": t}, ensure_ascii=False) for t in ("一篇。", "二篇。")]
    write(tmp_path / "a.jsonl", "\n".join(lines))
    corpus = read_corpus(tmp_path)
    assert [(a.id, a.paragraphs) for a in corpus.articles] == [("x", ("一篇。",))]
    assert corpus.skipped == ("a.jsonl line 2: duplicate id 'x' (kept the one in a.jsonl line 1)",)


# --- HTML ---------------------------------------------------------------------------------


def test_html_drops_scripts_and_unescapes_entities(tmp_path):
    html = """<!doctype html><html><head><title>安全 &amp; 页面</title>
    <style>p { color: red }</style></head><body>
    <nav>首页 | 新闻</nav>
    <p>正文说 &lt;script&gt; 是一个标签。</p>
    <script>alert(1)</script>
    <div>第二段<br>第三段</div>
    <footer>版权所有</footer></body></html>"""
    write(tmp_path / "page.html", html)
    article = only_article(tmp_path)
    assert article.title == "安全 & 页面"
    assert article.paragraphs == ("正文说 <script> 是一个标签。", "第二段", "第三段")
    assert not any("alert" in p or "首页" in p or "版权" in p for p in article.paragraphs)


def test_html_prefers_article_and_takes_title_from_h1(tmp_path):
    html = """<html><body><div>广告：点击这里</div>
    <article><h1>黄河</h1>
    <p>黄河是中国
       第二长河。</p><ul><li>甲</li><li>乙</li></ul>
    <pre>第一行
  缩进行</pre></article></body></html>"""
    write(tmp_path / "river.htm", html)
    article = only_article(tmp_path)
    assert article.title == "黄河"
    # trafilatura gives each line of a <pre> as a paragraph of its own.
    assert article.paragraphs == ("黄河", "黄河是中国 第二长河。", "甲", "乙", "第一行", "缩进行")


def test_html_without_title_uses_file_name_and_script_only_page_is_skipped(tmp_path):
    write(tmp_path / "a.html", "<p>只有正文。</p>")
    write(tmp_path / "b.html", "<html><script>var x = 1;</script></html>")
    corpus = read_corpus(tmp_path)
    assert [(a.title, a.paragraphs) for a in corpus.articles] == [("a", ("只有正文。",))]
    assert corpus.skipped == ("b.html: no visible text",)


# --- the folder -----------------------------------------------------------------------------


def test_nested_folders_give_slash_ids_sorted(tmp_path):
    write(tmp_path / "news" / "2019" / "b.txt", "乙。")
    write(tmp_path / "news" / "2019" / "a.md", "甲。")
    write(tmp_path / "top.txt", "顶。")
    corpus = read_corpus(tmp_path)
    assert [a.id for a in corpus.articles] == ["news/2019/a.md", "news/2019/b.txt", "top.txt"]
    assert corpus.articles[0].source == "news/2019/a.md"


def test_hidden_and_unsupported_files_are_ignored_silently(tmp_path):
    write(tmp_path / ".hidden.txt", "隐藏。")
    write(tmp_path / ".git" / "notes.txt", "隐藏。")
    write(tmp_path / "image.png", "不是文章。")
    write(tmp_path / "UPPER.TXT", "大写后缀。")
    corpus = read_corpus(tmp_path)
    assert [a.id for a in corpus.articles] == ["UPPER.TXT"]
    assert corpus.skipped == ()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loop_does_not_hang(tmp_path):
    write(tmp_path / "sub" / "a.txt", SIMPLIFIED)
    os.symlink(tmp_path, tmp_path / "loop")
    os.symlink(tmp_path / "sub", tmp_path / "sub" / "again")
    corpus = read_corpus(tmp_path)
    assert [a.id for a in corpus.articles] == ["sub/a.txt"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinked_folder_outside_the_corpus_is_read(tmp_path):
    write(tmp_path / "elsewhere" / "b.txt", SIMPLIFIED)
    (tmp_path / "corpus").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "corpus" / "linked")
    corpus = read_corpus(tmp_path / "corpus")
    assert [a.id for a in corpus.articles] == ["linked/b.txt"]


def test_missing_root_or_file_root_raises(tmp_path):
    with pytest.raises(EmptyCorpusError, match="does not exist"):
        read_corpus(tmp_path / "nowhere")
    file_root = write(tmp_path / "a.txt", SIMPLIFIED)
    with pytest.raises(EmptyCorpusError, match="not a folder"):
        read_corpus(file_root)


def test_folder_without_articles_gives_empty_corpus(tmp_path):
    write(tmp_path / "readme.rtf", "x")
    corpus = read_corpus(str(tmp_path))
    assert (corpus.articles, corpus.skipped) == ((), ())


def test_an_index_built_inside_the_corpus_is_not_read_as_articles(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("标题\n\n赣服通已突破900万用户。", encoding="utf-8")
    qa.build(corpus, corpus / "index", HASH)

    again = qa.build(corpus, corpus / "index", HASH)

    assert (again.articles, again.added, again.changed) == (1, 0, 0)
    assert any("index: an index folder" in s for s in again.skipped)


def test_asking_a_corpus_folder_for_an_index_says_it_holds_articles(tmp_path):
    (tmp_path / "a.txt").write_text("标题\n\n正文。", encoding="utf-8")

    with pytest.raises(IndexNotFoundError, match="holds articles, not an index"):
        qa.load(tmp_path, HASH)
