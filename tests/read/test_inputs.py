"""Bad input a build or a question must survive: odd files in the corpus (the rest of it is
still indexed and answered from) and odd questions (an answer or one clear message, never a
crash). Reader-level cases of each file are in test_reader.py; this file checks them through
a whole build and the answers a user gets.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from conftest import ANSWERABLE, ARTICLES, HASH, answer_key, write_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qa
from qa import cli
from qa.index.split import split_passages, split_sentences
from qa.read import UnreadableFileError, read_corpus, read_file
from qa.read.clean import clean
from qa.read.decode import decode
from ui.page import build_app
from ui.service import Service

LONG_LINE_FACT = "井冈山位于江西省西南部"
LONG_LINE = "数字化改革" * 2000 + LONG_LINE_FACT + "数字化改革" * 2000  # 20,011 chars, no stop
CONTROL_TEXT = "赣江\x07是江西省最大的河流\x1b，全长766公里，流域面积约占全省面积的一半。"

# name -> bytes of a file the corpus may hold besides the four fixture articles
ODD_FILES = {
    "gb18030.txt": "鄱阳湖简介\n\n鄱阳湖是中国第一大淡水湖，位于江西省北部。\n".encode("gb18030"),
    "big5.txt": "臺北捷運\n\n臺北捷運文湖線於一九九六年通車，是臺灣第一條捷運路線。\n".encode(
        "big5"
    ),
    "utf16.txt": "庐山\n\n庐山位于江西省九江市，以雄奇险秀闻名于世。\n".encode("utf-16"),
    "traditional.md": "# 澳門大學\n\n澳門大學創辦於一九八一年，是澳門第一所現代大學。\n".encode(),
    "emoji.txt": (
        "Python 大会 🐍\n\n2023年PyCon China 在上海举办 🎉，共有 1200 名开发者参加 👩‍💻。\n"
    ).encode(),
    "control.txt": f"赣江\x0c\n\n{CONTROL_TEXT}\n".encode(),
    "long-line.txt": f"无标点长行\n\n{LONG_LINE}\n".encode(),
    "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" * 50,
    "empty.txt": b"",
    "feed.jsonl": "\n".join(
        [
            json.dumps({"id": "j1", "title": "滕王阁", "text": "滕王阁始建于唐永徽四年。"}),
            '{"id": "j2", "title": "断行", "text": "没有写完',
            json.dumps({"id": "j3", "title": "八一起义", "text": "南昌起义发生于1927年8月1日。"}),
            "[1, 2, 3]",
        ]
    ).encode(),
    "copy-a.txt": "三清山\n\n三清山位于江西省上饶市，是世界自然遗产。\n".encode(),
    "copy-b.txt": "三清山\n\n三清山位于江西省上饶市，是世界自然遗产。\n".encode(),
}
INDEXED = {
    *ARTICLES,
    "gb18030.txt",
    "big5.txt",
    "utf16.txt",
    "traditional.md",
    "emoji.txt",
    "control.txt",
    "long-line.txt",
    "j1",
    "j3",
    "copy-a.txt",
    "copy-b.txt",
}
SKIPPED = (
    "binary.txt: binary file",
    "empty.txt: empty",
    "feed.jsonl line 2: not valid JSON",
    "feed.jsonl line 4: not a JSON object",
)
# (question, article it is answered from, fragment of the first cited sentence)
ODD_ANSWERS = [
    ("中国第一大淡水湖是哪个湖?", "gb18030.txt", "鄱阳湖是中国第一大淡水湖"),
    ("文湖線哪一年通車?", "big5.txt", "一九九六年"),
    ("庐山以什么闻名于世?", "utf16.txt", "九江市"),
    ("澳門大學創辦於哪一年?", "traditional.md", "一九八一年"),
    ("PyCon China 在哪里举办?", "emoji.txt", "上海"),
    ("赣江全长多少公里?", "control.txt", "766公里"),
    ("南昌起义发生于哪一年?", "j3", "1927年8月1日"),
    ("三清山位于江西省哪里?", "copy-a.txt", "上饶市"),
]


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> tuple[Path, qa.BuildStats, qa.Assistant]:
    """The fixture corpus plus every odd file and a symlink loop, built once."""
    root = tmp_path_factory.mktemp("odd")
    corpus = write_corpus(root / "corpus")
    for name, data in ODD_FILES.items():
        (corpus / name).write_bytes(data)
    if hasattr(os, "symlink"):
        os.symlink(corpus, corpus / "loop")
    stats = qa.build(corpus, root / "index", HASH)
    return corpus, stats, qa.load(root / "index", HASH)


# -- files ---------------------------------------------------------------------------------


def test_odd_files_are_indexed_or_skipped_with_a_reason(odd):
    _, stats, bot = odd
    assert {a.article.id for a in bot.passages.articles} == INDEXED
    assert len(stats.skipped) == len(SKIPPED)
    for line, start in zip(sorted(stats.skipped), sorted(SKIPPED), strict=True):
        assert line.startswith(start)


def test_the_fixture_articles_answer_as_without_the_odd_files(odd, bot):
    _, _, odd_bot = odd
    for question, (article, fragment) in ANSWERABLE.items():
        answer = odd_bot.ask(question)
        assert answer.found and answer.citations[0].article_id == article, question
        assert fragment in answer.citations[0].sentence


@pytest.mark.parametrize(("question", "article", "fragment"), ODD_ANSWERS)
def test_odd_but_readable_files_are_answered_from(odd, question, article, fragment):
    answer = odd[2].ask(question)
    assert answer.found, question
    assert answer.citations[0].article_id.startswith(article.removesuffix(".txt"))
    assert fragment in answer.citations[0].sentence


def test_control_characters_never_reach_the_index(odd):
    paragraphs = [p for a in odd[2].passages.articles for p in a.article.paragraphs]
    assert "赣江是江西省最大的河流，全长766公里，流域面积约占全省面积的一半。" in paragraphs
    assert not any(ch in p for p in paragraphs for ch in "\x07\x0c\x1b")


def test_line_without_punctuation_is_cut_into_passages_that_fit_the_model(odd):
    bot = odd[2]
    passages = bot.passages
    article = next(i for i, a in enumerate(passages.articles) if a.article.id == "long-line.txt")
    rows = [i for i in range(len(passages)) if passages.article[i] == article]
    assert len(rows) == -(-len(LONG_LINE) // HASH.passage_chars)
    assert all(passages.end[i] - passages.start[i] <= HASH.passage_chars for i in rows)
    assert bot.search("井冈山位于哪里?", k=1)[0].article_id == "long-line.txt"


def test_same_article_under_two_names_is_embedded_once_and_cited_once(odd):
    _, stats, bot = odd
    texts = [bot.passages.passage(i).text for i in range(len(bot.passages))]
    copy = "三清山位于江西省上饶市，是世界自然遗产。"
    assert texts.count(copy) == 2
    assert stats.embedded == len(set(texts))  # identical text is embedded once
    answer = bot.ask("三清山位于江西省哪里?")
    sentences = [c.sentence for c in answer.citations]
    assert len(sentences) == len(set(sentences))


@pytest.mark.slow
def test_fifty_megabyte_file_is_read_whole_beside_the_others(tmp_path):
    # Reading is what could run out of memory or hang; splitting is linear (test_split.py).
    write_corpus(tmp_path, {"small.txt": ARTICLES["metro.md"]})
    paragraph = "南昌地铁1号线于2015年12月26日开通试运营，是江西省第一条地铁线路。"
    block = ("\n\n".join([paragraph] * 1000) + "\n\n").encode()
    count = 50 * 1024 * 1024 // len(block) + 1
    (tmp_path / "big.txt").write_bytes("长文件\n\n".encode() + block * count)

    corpus = read_corpus(tmp_path)

    assert corpus.skipped == ()
    big = next(a for a in corpus.articles if a.id == "big.txt")
    assert len(big.paragraphs) == 1000 * count
    assert "small.txt" in {a.id for a in corpus.articles}


# -- questions -----------------------------------------------------------------------------

EMPTY_QUESTIONS = ["", "   ", "\n\t\u3000", "？！。，", "!!!...", "🙂🙂", "🐍🎉👩‍💻", "（）《》"]


@pytest.mark.parametrize("question", EMPTY_QUESTIONS)
def test_question_without_words_gets_one_clear_message(bot, built_index, capsys, question):
    with pytest.raises(qa.EmptyQuestionError) as raised:
        bot.ask(question)
    assert "\n" not in str(raised.value) and "question" in str(raised.value)
    assert cli.main(["ask", question, "--index", str(built_index)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa: error: The question is empty") and err.count("\n") == 1


def test_question_without_words_through_the_api_is_a_message_not_a_crash(built_index, corpus):
    import gradio as gr

    service = Service(corpus, built_index, HASH, qa.load(built_index, HASH))
    ask = {fn.api_name: fn for fn in build_app(service).fns.values()}["ask"].fn
    with pytest.raises(gr.Error, match="question is empty"):
        ask("🙂 ？")


ODD_QUESTIONS = {
    "long": "赣服通集成了多少项服务?" + "请详细说明。" * 1700,  # over 10,000 characters
    "english": "How many services does the Ganfutong app offer?",
    "english-mixed": "How many 服务 does 赣服通 offer?",
    "html": "<b>赣服通</b>集成了多少项服务?",
    "script": "<script>alert(1)</script>赣服通集成了多少项服务?",
    "sql": "'; DROP TABLE articles; -- 赣服通集成了多少项服务?",
    "sql-only": "1' OR '1'='1",
    "lone-surrogate": "赣服通\ud800集成了多少项服务?",  # JSON "\ud800" decodes to this
    "traditional": "贛服通集成了多少項服務?",
    "url": "https://www.gov.cn/s?id=3&x=4",
    "zero-width": "赣\u200b服\u200b通集成了多少项服务?",
}


@pytest.mark.parametrize("question", ODD_QUESTIONS.values(), ids=ODD_QUESTIONS.keys())
def test_odd_questions_get_an_answer_or_not_found_never_a_crash(bot, question):
    before = answer_key(bot.ask("赣服通集成了多少项服务?"))
    answer = bot.ask(question)
    assert len(answer.question) <= 1000
    assert_citations_are_real(bot, answer)
    if answer.found:  # then from the one article that holds the fact
        assert answer.citations[0].article_id == "ganfutong.txt", question
    assert answer_key(bot.ask("赣服通集成了多少项服务?")) == before  # nothing changed


def test_question_around_markup_is_still_answered(bot):
    for key in ("html", "lone-surrogate"):
        answer = bot.ask(ODD_QUESTIONS[key])
        assert answer.found and "6697项" in answer.citations[0].sentence, key


def assert_citations_are_real(bot: qa.Assistant, answer: qa.Answer) -> None:
    """Every cited sentence is exactly the source text at its offsets."""
    for c in answer.citations:
        assert bot.paragraph(c.article_id, c.paragraph)[c.start : c.end] == c.sentence
    for p in answer.passages:
        assert bot.paragraph(p.article_id, p.paragraph)[p.start : p.end] == p.text


QUESTION_CHARS = st.one_of(
    st.characters(),
    st.sampled_from(list("赣服通集成了多少项服务?地铁车站马拉松冠军<>'\";-- \n🙂")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.slow
@given(st.text(alphabet=QUESTION_CHARS, max_size=200))
def test_any_question_is_answered_or_refused_as_empty(bot, question):
    try:
        answer = bot.ask(question)
    except qa.EmptyQuestionError:
        return
    assert_citations_are_real(bot, answer)
    assert answer.found == bool(answer.citations)


# -- the splitter and reader, for any text -------------------------------------------------

TEXT_CHARS = st.one_of(
    st.characters(blacklist_categories=("Cs",)),  # a file holds no lone surrogates
    st.sampled_from(list("中文数字政府。！？!?；;，,.…“”「」 \n\n\n\t\u3000#>-*\r")),
)


@settings(max_examples=150, deadline=None)
@pytest.mark.slow
@given(st.text(alphabet=TEXT_CHARS, max_size=400))
def test_paragraphs_and_sentences_reproduce_the_file_by_their_offsets(text):
    data = text.encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "a.txt")
        path.write_bytes(data)
        try:
            (article,) = read_file(path, Path(tmp))
        except UnreadableFileError:
            return  # binary-looking, empty or title-only: skipped with a reason
    source = clean(decode(data))
    pos = 0
    # A title taken from the first line is not a paragraph: search the paragraphs after it
    # (else a paragraph with the same text as the title, as in "0\n0", is found in the title).
    line_end = source.find("\n") if "\n" in source else len(source)
    first_line = source[:line_end].strip().lstrip("#").strip()
    if first_line == article.title and source.find(article.paragraphs[0], line_end) >= 0:
        pos = line_end
    for n, paragraph in enumerate(article.paragraphs):
        assert paragraph and paragraph == paragraph.strip()
        found = source.find(paragraph, pos)
        assert found >= 0, "paragraphs are the file's text, in order"
        gap = source[pos:found]
        assert not gap.strip() or (n == 0 and article.title in gap)  # only the title line
        pos = found + len(paragraph)

        spans = split_sentences(paragraph)
        assert spans and all(paragraph[s.start : s.end].strip() for s in spans)  # none empty
        rebuilt, end = [], 0
        for s in spans:
            assert not paragraph[end : s.start].strip()
            rebuilt.append(paragraph[end : s.end])
            end = s.end
        assert "".join(rebuilt) + paragraph[end:] == paragraph
        for chunk in split_passages("a.txt", n, paragraph, 40):
            assert chunk.text == paragraph[chunk.start : chunk.end]
            assert all(paragraph[s.start : s.end].strip() for s in chunk.sentences)
    assert not source[pos:].strip()
